"""``telephony recordings``: verify both copies, report the off-site copy, apply the retention.

Registered in :mod:`telephony.cli` with ``main.add_command(recordings)``. Each
command opens the database from the settings (``DATABASE_URL`` or the embedded
PostgreSQL), migrates it, and works through :class:`RecordingArchive`, as
``serve`` does; it can run while ``serve`` runs (the copy claims rows with
``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from telephony.config import ConfigError, Settings
from telephony.recording.archive import (
    Check,
    Finding,
    RecordingArchive,
    RemovedRecording,
    open_archive,
)

T = TypeVar("T")
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TELEPHONY_CONFIG",
    metavar="FILE.toml",
    help="Read settings from this TOML file; environment variables override it.",
)


def _run(config_file: Path | None, work: Callable[[RecordingArchive], Awaitable[T]]) -> T:
    try:
        settings = Settings.load(config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return asyncio.run(_with_archive(settings, work))


async def _with_archive(settings: Settings, work: Callable[[RecordingArchive], Awaitable[T]]) -> T:
    from telephony.metrics import Metrics
    from telephony.services import open_database
    from telephony.store.migrate import upgrade

    engine, _ = await open_database(settings)
    try:
        await upgrade(engine)
        return await work(open_archive(settings, engine, Metrics()))
    finally:
        await engine.dispose()


def _every(total: int) -> int:
    return max(1, total // 20)


@click.group()
def recordings() -> None:
    """Recordings: their off-site copy (话务语音异地灾备), verification and retention.

    \b
    Commands:
      verify      re-check every recording and its off-site copy; repair what can be
      report      recordings not yet safe off-site (JSON)
      copy        copy what is due now (serve does it every few seconds)
      expire      remove the recordings past their retention
      retention   show or set the days a hotline's recordings are kept
    """


@recordings.command()
@config_option
def verify(config_file: Path | None) -> None:
    """Re-read both copies of every recording and compare their SHA-256.

    A missing or corrupt off-site copy is copied again and read back; a missing
    or corrupt original is restored from a good off-site copy. Progress goes to
    stderr, one line per recording that was not ok to stdout. Exits 1 when a
    recording is left without two good copies.
    """

    def progress(done: int, total: int, finding: Finding) -> None:
        if finding.check is not Check.OK:
            click.echo(f"{finding.recording_id} {finding.check.value}: {finding.detail}")
        if done % _every(total) == 0 or done == total:
            click.echo(f"verified {done}/{total}", err=True)

    report = _run(config_file, lambda archive: archive.verify(progress))
    counts = ", ".join(f"{check.value} {n}" for check, n in report.counts.items())
    click.echo(f"checked {report.checked}: {counts}", err=True)
    if not report.all_safe:
        sys.exit(1)


@recordings.command()
@config_option
def report(config_file: Path | None) -> None:
    """Print how many recordings are safe off-site, and the oldest that are not (JSON)."""
    result = _run(config_file, lambda archive: archive.report())
    click.echo(json.dumps(asdict(result), ensure_ascii=False, indent=2))


@recordings.command()
@config_option
def copy(config_file: Path | None) -> None:
    """Copy every recording due now to the off-site store and verify it."""

    async def work(archive: RecordingArchive) -> tuple[int, int]:
        verified = failed = 0
        while True:
            done = await archive.copy_due()
            verified, failed = verified + done.verified, failed + done.failed
            click.echo(f"copied {verified}, failed {failed}", err=True)
            if done.claimed < archive.settings.batch:
                return verified, failed

    _, failed = _run(config_file, work)
    if failed:
        sys.exit(1)


@recordings.command()
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@config_option
def expire(dry_run: bool, config_file: Path | None) -> None:
    """Remove the recordings older than their hotline's retention (and their off-site copies).

    One line per recording removed goes to stdout; each is audited
    (``recording.expire``). Progress goes to stderr.
    """

    def progress(done: int, total: int, removed: RemovedRecording) -> None:
        verb = "would remove" if dry_run else "removed"
        click.echo(
            f"{verb} {removed.recording_id} call {removed.call_uuid} hotline"
            f" {removed.hotline or '-'} started {removed.started_at.isoformat()}: {removed.reason}"
        )
        if done % _every(total) == 0 or done == total:
            click.echo(f"retention {done}/{total}", err=True)

    removed = _run(config_file, lambda archive: archive.expire(dry_run=dry_run, progress=progress))
    click.echo(f"{'would remove' if dry_run else 'removed'} {len(removed)}", err=True)


@recordings.command()
@click.argument("hotline", required=False)
@click.argument("days", required=False, type=click.IntRange(min=0, max=36_500))
@config_option
def retention(hotline: str | None, days: int | None, config_file: Path | None) -> None:
    """Show the retention of every hotline, or set HOTLINE's to DAYS (0: the default).

    \b
      telephony recordings retention              every hotline's days
      telephony recordings retention 12345 180    keep 12345's recordings 180 days
      telephony recordings retention 12345 0      12345 back to the default
    """
    if hotline is not None and days is None:
        raise click.UsageError("give DAYS with HOTLINE")
    if hotline is not None and not 0 < len(hotline) <= 32:
        raise click.BadParameter("a hotline number of at most 32 characters", param_hint="HOTLINE")

    async def work(archive: RecordingArchive) -> dict[str, Any]:
        if hotline is not None:
            await archive.set_policy(hotline, days or None, f"cli:{getpass.getuser()}")
        return {
            "default_days": archive.settings.retention_days,
            "hotlines": await archive.policies(),
        }

    click.echo(json.dumps(_run(config_file, work), indent=2))
