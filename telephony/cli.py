"""The ``telephony`` command: one entry point for operators, developers and CI."""

from __future__ import annotations

import logging
import sys

import click

from telephony import __version__
from telephony.logs import configure_logging


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


if __name__ == "__main__":
    sys.exit(main())
