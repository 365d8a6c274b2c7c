"""``telephony ivr``: check flow files and simulate calls through them, without a switch.

Registered in :mod:`telephony.cli` with ``main.add_command(ivr)``; tests drive
the group directly with click's ``CliRunner``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from telephony.ivr.check import check_paths, check_set
from telephony.ivr.interpreter import (
    Blocked,
    Hangup,
    Queue,
    Step,
    Transfer,
    Voicemail,
    run_flow,
    run_survey,
)
from telephony.ivr.loader import FlowSet, LoadedFlow, load_folder
from telephony.ivr.schema import render_json_schema
from telephony.ivr.simulated import SimulatedChannel, parse_digits

DEFAULT_FLOWS = "ivr_flows/"


def flows_folder() -> Path:
    """The flows folder: ``TELEPHONY_IVR_FLOWS``, default ``ivr_flows/``."""
    return Path(os.environ.get("TELEPHONY_IVR_FLOWS") or DEFAULT_FLOWS)


@click.group(name="ivr")
def ivr() -> None:
    """IVR flows: check flow files and simulate calls through them.

    Flows are YAML files in the flows folder (TELEPHONY_IVR_FLOWS, default
    ivr_flows/), one flow a file; ivr_flows/README.md explains the format.
    """


@ivr.command(name="check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--skill-group",
    "skill_groups",
    multiple=True,
    metavar="ID",
    help="A skill group that exists besides those in skill_groups.yaml (repeatable).",
)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only, no warnings or summary.")
def check_command(
    paths: tuple[Path, ...], skill_groups: tuple[str, ...], strict: bool, quiet: bool
) -> None:
    """Check flow files (or whole flows folders) for mistakes.

    Prints one line per problem as FILE:LINE: MESSAGE (unknown or unreachable
    nodes, loops with no way out, missing prompt files, bad patterns, unknown
    skill groups...) and exits with status 1 if there is any error. Warnings
    (dead ends, variables never set) are printed but do not fail unless
    --strict is given. With no PATHS, the flows folder is checked.

    \b
    Examples:
      telephony ivr check
      telephony ivr check ivr_flows/hotline-12345.yaml
    """
    targets = list(paths) or [flows_folder()]
    diagnostics, checked = check_paths(targets, skill_groups)
    errors = [d for d in diagnostics if d.is_error]
    warnings = [d for d in diagnostics if not d.is_error]
    for d in diagnostics:
        if d.is_error or not quiet:
            click.echo(str(d))
    if not quiet:
        click.echo(
            f"{checked} file(s) checked: {len(errors)} error(s), {len(warnings)} warning(s)",
            err=True,
        )
    if errors or (strict and warnings):
        sys.exit(1)


@ivr.command(name="schema")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: flow.schema.json in the flows folder).",
)
@click.option("--check", "check_only", is_flag=True, help="Only check that the file is current.")
def schema_command(output: Path | None, check_only: bool) -> None:
    """Write the JSON Schema of flow files, for editors that validate YAML.

    Run it after changing the flow language (telephony/ivr/schema.py); with
    --check it exits with status 1 when the file is stale (for CI).
    """
    target = output or flows_folder() / "flow.schema.json"
    text = render_json_schema()
    if check_only:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            click.echo(f"{target} is stale: run `telephony ivr schema`", err=True)
            sys.exit(1)
        click.echo(f"{target} is up to date")
        return
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}")


def _find_flow(flow_set: FlowSet, name: str) -> LoadedFlow | None:
    if name in flow_set.flows:
        return flow_set.flows[name]
    by_number = flow_set.for_hotline(name)
    if by_number is not None:
        return by_number
    path = Path(name)
    for loaded in flow_set.flows.values():
        if path.exists() and loaded.path.resolve() == path.resolve():
            return loaded
    return None


def _parse_at(value: str | None, timezone: str) -> dt.datetime:
    zone = ZoneInfo(timezone)
    if value is None:
        return dt.datetime.now(zone).replace(microsecond=0)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO time: {value!r}", param_hint="--at") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


@ivr.command(name="simulate")
@click.argument("flow")
@click.option(
    "--digits",
    default="",
    metavar="KEYS",
    help="The caller's keys, one comma-separated entry per prompt that waits for keys: "
    "'1,2,3#' answers three prompts; an empty entry (or 't') is silence (a timeout).",
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="When the call happens, ISO format, in the flow's time zone unless given: "
    "2026-02-10T22:00 (default: now).",
)
@click.option("--caller", default="13800138000", show_default=True, help="The caller's number.")
@click.option("--blocked", is_flag=True, help="Treat the caller's number as blocked.")
@click.option(
    "--survey",
    "survey",
    metavar="KEYS",
    help="After the flow queues the call, let the agent hang up first and answer the "
    "satisfaction survey with these keys (same format as --digits).",
)
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The flows folder (default: TELEPHONY_IVR_FLOWS or ivr_flows/).",
)
def simulate_command(
    flow: str,
    digits: str,
    at: str | None,
    caller: str,
    blocked: bool,
    survey: str | None,
    flows_dir: Path | None,
) -> None:
    """Run a call through FLOW without a switch and print every step.

    FLOW is a flow file, a flow id (file name without .yaml) or a hotline
    number. Each step is printed: prompts played, keys taken, variables set,
    branches chosen, and at the end the action (queue, transfer, voice
    message, hang-up).

    \b
    Examples:
      telephony ivr simulate 12345 --digits 1,2
      telephony ivr simulate ivr_flows/hotline-12345.yaml --digits 1,1,202601150001# \\
          --at 2026-03-10T10:00
      telephony ivr simulate 12345 --at 2026-02-10T22:00
    """
    path = Path(flow)
    root = flows_dir or (path.parent if path.is_file() else flows_folder())
    flow_set, diagnostics = load_folder(root)
    loaded = _find_flow(flow_set, flow)
    if loaded is None:
        for d in diagnostics:
            click.echo(str(d), err=True)
        raise click.ClickException(f"no flow {flow!r} in {root}")
    problems = [
        d for d in check_set(flow_set, [loaded.id]) if d.is_error and d.path == loaded.display
    ]
    for d in problems:
        click.echo(str(d), err=True)
    if problems:
        raise click.ClickException(f"{loaded.display} has errors; fix them first (ivr check)")
    when = _parse_at(at, loaded.flow.timezone)
    hotline = loaded.flow.hotlines[0] if loaded.flow.hotlines else flow
    channel = SimulatedChannel(
        parse_digits(digits), at=when, caller=caller, hotline=hotline, blocked=blocked
    )
    click.echo(
        f"flow {loaded.id} (version {loaded.version}) at {when.isoformat()}, "
        f"caller {caller} -> {hotline}"
    )
    result = asyncio.run(run_flow(flow_set, loaded.id, channel, on_step=_print_step))
    click.echo(f"=> {describe_action(result.action)}")
    click.echo(f"   keys pressed: {result.keys or '(none)'}")
    shown = {k: v for k, v in result.variables.items() if k not in ("uuid", "flow")}
    click.echo("   variables: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    if channel.remaining:
        click.echo(f"   keys not used: {','.join(channel.remaining)}")
    if survey is not None:
        if not isinstance(result.action, Queue):
            click.echo("survey: skipped (the call did not reach an agent)")
            return
        survey_channel = SimulatedChannel(
            parse_digits(survey), at=when, caller=caller, hotline=hotline
        )
        click.echo("agent hangs up first: satisfaction survey")
        score = asyncio.run(run_survey(flow_set, loaded.id, survey_channel, on_step=_print_step))
        click.echo(
            f"=> survey score {score.score} (scale {score.min_score}-{score.max_score})"
            if score is not None
            else "=> survey: no answer"
        )


def _print_step(step: Step) -> None:
    click.echo(f"  {step.node:<16} {step.kind:<9} {step.detail}")


def describe_action(action: Queue | Transfer | Voicemail | Hangup | Blocked) -> str:
    """The final action in words."""
    if isinstance(action, Queue):
        return f"queue in skill group {action.group!r} with priority {action.priority}"
    if isinstance(action, Transfer):
        return f"transfer to {action.number}"
    if isinstance(action, Voicemail):
        return f"voice message for mailbox {action.mailbox!r} ({action.recording}), then hang up"
    if isinstance(action, Blocked):
        return "blocked caller: hang up"
    return f"hang up ({action.reason})"
