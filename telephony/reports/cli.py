"""``telephony report kpi --month YYYY-MM``: the contracts' KPIs as CSV or XLSX."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from telephony.config import Settings
from telephony.reports import export, kpis
from telephony.reports.periods import DEFAULT_TIME_ZONE, Interval, Window


@click.group()
def report() -> None:
    """Reports from the stored rows."""


@report.command("kpi")
@click.option("--month", required=True, metavar="YYYY-MM", help="The local calendar month.")
@click.option("--format", "kind", type=click.Choice(["csv", "xlsx"]), default="csv")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="File (else stdout).")
@click.option("--interval", type=click.Choice(["month", "day"]), default="month")
@click.option("--tz", default=DEFAULT_TIME_ZONE, show_default=True, help="IANA time zone.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TELEPHONY_CONFIG",
    help="Settings TOML file.",
)
def report_kpi(
    month: str, kind: str, out: Path | None, interval: str, tz: str, config_file: Path | None
) -> None:
    """The KPIs of MONTH for the whole system, each hotline, skill group and agent."""
    try:
        window = Window.of_month(month, tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    body = asyncio.run(
        _render(Settings.load(config_file), window, Interval(interval), export.Format(kind))
    )
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)


async def _render(
    settings: Settings, window: Window, interval: Interval, kind: export.Format
) -> bytes:
    from telephony.services import open_database

    engine, _ = await open_database(
        settings
    )  # an embedded server is left running, as by `db upgrade`
    try:
        async with engine.connect() as connection:
            rows = await kpis.compute_scopes(
                connection,
                window,
                list(kpis.Scope),
                interval=interval,
                now=datetime.now(UTC),
            )
    finally:
        await engine.dispose()
    return await asyncio.to_thread(export.render, rows, window.zone, kind)
