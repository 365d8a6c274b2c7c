"""The ``telephony`` command: one entry point for operators, developers and CI."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

import click

from telephony import __version__
from telephony.config import ConfigError, Settings, describe_settings
from telephony.ivr.cli import ivr
from telephony.logs import configure_logging
from telephony.recording.cli import recordings
from telephony.reports.cli import report

log = logging.getLogger("telephony.cli")


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="telephony")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="How much to log (logs are JSON lines on stderr).",
)
def main(log_level: str) -> None:
    """Control plane for 12345 government-service hotlines on FreeSWITCH.

    \b
    Start here:
      telephony sim            run the FreeSWITCH simulator (no switch needed)
      telephony sim --help     its options and the `api sim ...` commands
      telephony users create admin --role admin
                               make an API token (printed once)
      telephony serve          run the control plane (API, engine, ESL)
      telephony serve --help   its settings (environment variables)
      telephony ivr check ivr_flows
                               check the IVR flow files (file:line for each error)
    """
    configure_logging(log_level.upper())


@main.command()
@click.option(
    "--listen",
    default="127.0.0.1:8021",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the simulated Event Socket listens.",
)
@click.option(
    "--password",
    default="ClueCon",
    show_default=True,
    help="The Event Socket password clients must send with `auth`.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Simulated seconds per real second for prompts, ringing and DTMF "
    "(10 runs ten times faster).",
)
def sim(listen: str, password: str, time_scale: float) -> None:
    """Run the FreeSWITCH simulator: a TCP server speaking the real Event Socket protocol.

    It is a test double and a demo engine: every call it carries is simulated.
    Clients authenticate with `auth PASSWORD`, subscribe with `event plain ...`,
    and drive calls with `api`, `bgapi` and `sendmsg` as on a real FreeSWITCH.
    Simulated citizens and agent phones are started with one extra api command:

    \b
      api sim call DEST CALLER [dtmf=DIGITS] [dtmf_delay_ms=N] [hangup_after_s=N]
      api sim phone EXT [answer_after_ms=N|never|reject]
      api sim help

    \b
    Example (from another terminal, any ESL client or plain netcat):
      printf 'auth ClueCon\\n\\nevent plain ALL\\n\\napi sim call 12345 13800138000\\n\\n' \\
        | nc 127.0.0.1 8021
    """
    host, port = _host_port(listen, 8021)
    from telephony.sim.server import run

    try:
        run(host, port, password, time_scale=time_scale)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("simulator stopped")


def _config_option(function: Any) -> Any:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="TELEPHONY_CONFIG",
        metavar="FILE.toml",
        help="Read settings from this TOML file: its keys are the settings listed below "
        "without the TELEPHONY_ prefix, in lower case (freeswitch = \"esl://...\", "
        "wrap_up_seconds = 15); environment variables override it.",
    )(function)


def _settings(config_file: Path | None) -> Settings:
    try:
        return Settings.load(config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _settings_help() -> str:
    lines = ["\b", "Settings (environment variable, default, meaning):"]
    for name, default, meaning in describe_settings():
        lines.append(f"  {name}  [{default}]")
        lines.append(f"      {meaning}")
    return "\n".join(lines)


@main.command(epilog=_settings_help())
@_config_option
def serve(config_file: Path | None) -> None:
    """Run the control plane: HTTP API, call engine and ESL connections.

    Uses the PostgreSQL at DATABASE_URL, or starts an embedded one in
    TELEPHONY_DATA_DIR/postgres when DATABASE_URL is unset, and applies the
    migrations. Stop it with Ctrl-C or SIGTERM: requests in progress finish,
    buffered database writes are flushed, then it exits.

    \b
    Check it:  curl http://127.0.0.1:8080/readyz
    API docs:  http://127.0.0.1:8080/docs
    """
    settings = _settings(config_file)
    from telephony import runtime
    from telephony.api.server import serve as run_server

    try:
        runtime.run(run_server(settings))
    except Exception as exc:
        log.exception("control plane failed")
        raise click.ClickException(f"control plane failed: {exc}") from exc


@main.command(name="esl-api", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True)
@_config_option
def esl_api(words: tuple[str, ...], config_file: Path | None) -> None:
    """Run one `api` command on the first FreeSWITCH node (TELEPHONY_FREESWITCH) and print it.

    \b
    Examples:
      telephony esl-api status
      telephony esl-api show channels
      telephony esl-api sim phone 1001 answer_after_ms=1000     (simulator only)
      telephony esl-api sim call 12345 13800138000 hangup_after_s=20
    """
    from telephony.esl.commands import UnsafeValue
    from telephony.esl.oneshot import run_api
    from telephony.esl.port import EslError

    node = _settings(config_file).nodes[0]
    try:
        body = asyncio.run(run_api(node, list(words)))
    except (UnsafeValue, EslError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(body.rstrip("\n"))
    if body.startswith("-ERR"):
        sys.exit(1)


@main.group()
def users() -> None:
    """API principals (who may call the HTTP API) and their bearer tokens.

    \b
    Commands:
      create NAME --role ROLE   make a principal and print its token (once)
      revoke NAME               stop its token from working

    \b
    Roles:
      agent       acts on its own agent only (--agent ID)
      supervisor  agents, calls and reports of its areas (--area, comma-separated)
      admin       everything, configuration
      auditor     reports and recordings, read-only
    """


@users.command("create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["agent", "supervisor", "admin", "auditor"]),
    help="What the principal may do.",
)
@click.option("--area", help="The area(s) a supervisor oversees, comma-separated.")
@click.option("--agent", "agent_id", metavar="ID", help="The agent an agent principal acts as.")
@_config_option
def create_user(
    name: str, role: str, area: str | None, agent_id: str | None, config_file: Path | None
) -> None:
    """Create the API principal NAME and print its bearer token (once; only its hash is stored).

    The token alone goes to stdout, so a script can capture it:

    \b
      TOKEN=$(telephony users create ops --role admin)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/agents
    """
    settings = _settings(config_file)
    from telephony.auth import (
        PrincipalError,
        Role,
        check_principal,
        check_principal_name,
        parse_areas,
    )

    try:
        check_principal_name(name)
        check_principal(Role(role), parse_areas(area), agent_id)
        token = asyncio.run(_create_user(settings, name, Role(role), area, agent_id))
    except PrincipalError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        log.exception("cannot create the principal")
        raise click.ClickException(f"cannot create the principal: {exc}") from exc
    click.echo(token)
    click.echo(f"token for {name} ({role}); store it now, it is not shown again", err=True)


async def _create_user(
    settings: Settings, name: str, role: Any, area: str | None, agent_id: str | None
) -> str:
    from sqlalchemy import select

    from telephony.auth import PrincipalError, create_principal, record_audit
    from telephony.services import open_database
    from telephony.store.migrate import upgrade
    from telephony.store.models import Agent, table_of

    engine, _ = await open_database(settings)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            if agent_id is not None:
                agents = table_of(Agent)
                known = await connection.scalar(select(agents.c.id).where(agents.c.id == agent_id))
                if known is None:
                    raise PrincipalError(
                        f"no agent {agent_id!r}: create it first (POST /v1/agents)"
                    )
            caller, token = await create_principal(
                connection, name, role, area=area, agent_id=agent_id
            )
            await record_audit(
                connection,
                f"cli:{getpass.getuser()}",
                "principal.create",
                "principal",
                name,
                detail={
                    "role": caller.role.value,
                    "areas": sorted(caller.areas),
                    "agent": agent_id,
                },
            )
    finally:
        await engine.dispose()
    return token


@users.command("revoke")
@click.argument("name")
@_config_option
def revoke_user(name: str, config_file: Path | None) -> None:
    """Revoke the API principal NAME: its bearer token stops working.

    A running control plane re-checks the tokens it has cached against the
    database every TELEPHONY_AUTH_REVALIDATE_SECONDS (default 30), so it
    rejects this one within that time. The principal's row and its audit
    history stay; to give access again, create a new principal (a new token).

    \b
      telephony users revoke lina
    """
    settings = _settings(config_file)
    from telephony.auth import PrincipalError

    try:
        changed = asyncio.run(_revoke_user(settings, name))
    except PrincipalError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        log.exception("cannot revoke the principal")
        raise click.ClickException(f"cannot revoke the principal: {exc}") from exc
    if changed:
        click.echo(
            f"revoked {name}; a running server rejects its token within "
            f"{settings.auth_revalidate_seconds:g} s",
            err=True,
        )
    else:
        click.echo(f"{name} was already revoked", err=True)


async def _revoke_user(settings: Settings, name: str) -> bool:
    from telephony.auth import record_audit, revoke_principal
    from telephony.services import open_database
    from telephony.store.migrate import upgrade

    engine, _ = await open_database(settings)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            _, changed = await revoke_principal(connection, name)
            if changed:
                await record_audit(
                    connection, f"cli:{getpass.getuser()}", "principal.revoke", "principal", name
                )
    finally:
        await engine.dispose()
    return changed


@main.group()
def db() -> None:
    """The database: DATABASE_URL, or the embedded PostgreSQL in TELEPHONY_DATA_DIR/postgres."""


@db.command("upgrade")
@_config_option
def db_upgrade(config_file: Path | None) -> None:
    """Apply the schema migrations (serve also does this when it starts)."""
    settings = _settings(config_file)
    try:
        asyncio.run(_upgrade(settings))
    except Exception as exc:
        log.exception("migration failed")
        raise click.ClickException(f"migration failed: {exc}") from exc


async def _upgrade(settings: Settings) -> None:
    from telephony.services import open_database
    from telephony.store.migrate import upgrade

    where = "DATABASE_URL" if settings.database_url else str(settings.embedded_postgres_dir)
    log.info("connecting to the database", extra={"database": where})
    engine, _ = await open_database(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


main.add_command(ivr)
main.add_command(report)
main.add_command(recordings)

if __name__ == "__main__":
    sys.exit(main())
