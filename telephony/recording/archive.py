"""The recordings' lifecycle after the switch wrote them: off-site copy, verification, removal.

Theory of operation. A recording's row (``recordings``, written by the engine
when RECORD_STOP found audio) carries its off-site copy's state,
``copy_status`` (:class:`CopyStatus`)::

    pending  --copy read back with the original's SHA-256-->  verified
    pending  --copy failed (store down, mismatch)--> pending (copy_attempts+1,
                                                      copy_next_at = now + backoff)
    verified --`verify` finds the copy missing or corrupt--> pending, copied again
    any      --deleted (API or retention)--> remove --copy removed--> removed

* **Copy** (:meth:`RecordingArchive.copy_due`): claims up to ``batch`` due
  rows (``FOR UPDATE SKIP LOCKED``, then a lease in ``copy_next_at``, so two
  processes never copy the same row at once), copies them with at most
  ``concurrency`` at a time, reads every copy back from the second store,
  and marks it ``verified`` only when the SHA-256 read back equals the
  original's. The original's SHA-256 (``recordings.sha256``) is taken at its
  first copy and is the reference from then on. A failed attempt is retried
  after an exponential backoff capped at ``retry_max_seconds``, for ever:
  until verified.
* **Verify** (:meth:`RecordingArchive.verify`, ``telephony recordings
  verify``): re-reads both copies of every recording. A missing or corrupt
  off-site copy is copied again (and read back); a missing or corrupt
  original is restored from a good off-site copy.
* **Remove** (:meth:`RecordingArchive.remove`): the API's delete and the
  retention policy. The row is marked deleted (with its reason) in the same
  transaction as its audit row, then the file is removed and the off-site
  copy after it; a copy that cannot be removed now stays ``remove`` and the
  copy loop removes it later.
* **Retention** (:meth:`RecordingArchive.expire`): a recording older than its
  hotline's days (``recording_retention``, else ``retention_days``; 0 keeps
  it) is removed, each one audited as ``recording.expire``.

``telephony_recordings_not_safe`` is the number of recordings without a
verified off-site copy. Every blocking call (hashing, the store) runs in a
thread; every loop is bounded by ``batch``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Row, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telephony.auth import record_audit
from telephony.config import Settings
from telephony.metrics import Metrics
from telephony.recording.stores import CopyStore, file_sha256, open_store
from telephony.store.models import Call, Recording, RecordingRetention, table_of

log = logging.getLogger(__name__)
_RECORDINGS = table_of(Recording)
_CALLS = table_of(Call)
_RETENTION = table_of(RecordingRetention)
ERROR_CHARS = 256  # recordings.copy_error
REASON_CHARS = 256  # recordings.delete_reason
RETENTION_ACTOR = "retention"


class CopyStatus(StrEnum):
    """Where a recording's off-site copy stands (see the module docstring)."""

    PENDING = "pending"
    VERIFIED = "verified"
    REMOVE = "remove"
    REMOVED = "removed"


class Check(StrEnum):
    """What :meth:`RecordingArchive.verify` found for one recording."""

    OK = "ok"
    RECOPIED = "recopied"  # the off-site copy was missing or corrupt, and is good again
    RESTORED = "restored"  # the original was missing or corrupt, restored from the copy
    COPY_FAILED = "copy_failed"  # the copy is bad and could not be made again now
    LOST = "lost"  # neither copy is good


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """How the archive copies and keeps recordings."""

    concurrency: int = 4
    batch: int = 200
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    lease_seconds: float = 600.0
    retention_days: int = 0


@dataclass(frozen=True, slots=True)
class CopyPass:
    """One pass of the copy loop: how many rows it claimed and what became of them."""

    claimed: int = 0
    verified: int = 0
    failed: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """One recording as :meth:`RecordingArchive.verify` found it."""

    recording_id: uuid.UUID
    check: Check
    detail: str = ""


@dataclass(slots=True)
class VerifyReport:
    """Counts per :class:`Check`, and the recordings that were not ``ok`` (at most 1,000)."""

    checked: int = 0
    counts: dict[Check, int] = field(default_factory=lambda: dict.fromkeys(Check, 0))
    problems: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        """Count one finding."""
        self.checked += 1
        self.counts[finding.check] += 1
        if finding.check is not Check.OK and len(self.problems) < 1000:
            self.problems.append(finding)

    @property
    def all_safe(self) -> bool:
        """Whether every recording checked has two good copies now."""
        return self.counts[Check.COPY_FAILED] == 0 and self.counts[Check.LOST] == 0


@dataclass(frozen=True, slots=True)
class SafetyReport:
    """How many recordings are safe off-site, and the oldest ones that are not (at most 100)."""

    store: str | None
    total: int
    verified: int
    not_safe: int
    failing: int  # not safe, and at least one attempt failed
    oldest_not_safe: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RemovedRecording:
    """A recording removed by the API or the retention policy."""

    recording_id: uuid.UUID
    call_uuid: uuid.UUID
    path: str
    started_at: datetime
    reason: str
    hotline: str | None = None


#: Writes the audit row of a removal on the removal's own connection.
AuditWriter = Callable[[AsyncConnection, RemovedRecording], Awaitable[None]]


class NotFound(LookupError):
    """No such recording, or it was removed already."""


def copy_key(recording_id: uuid.UUID, started_at: datetime, path: str) -> str:
    """The off-site name of a recording: ``YYYY/MM/DD/<id><suffix>`` (the day it began, UTC)."""
    day = started_at.astimezone(UTC)
    return f"{day:%Y/%m/%d}/{recording_id}{Path(path).suffix or '.wav'}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


class RecordingArchive:
    """Copies, verifies and removes recordings (see the module docstring)."""

    def __init__(
        self,
        database: AsyncEngine,
        store: CopyStore | None,
        metrics: Metrics,
        settings: ArchiveSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.store = store
        self.metrics = metrics
        self.settings = settings or ArchiveSettings()
        self.clock = clock
        self._slots = asyncio.Semaphore(self.settings.concurrency)

    # -- the copy loop ---------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        s = self.settings
        return float(min(s.retry_max_seconds, s.retry_base_seconds * 2 ** min(attempts - 1, 30)))

    async def _claim(self) -> list[Row[Any]]:
        now = _utc(self.clock())
        r = _RECORDINGS.c
        due = (
            select(r.id)
            .where(
                r.copy_status.in_([CopyStatus.PENDING.value, CopyStatus.REMOVE.value]),
                r.ended_at.is_not(None),
                or_(r.copy_next_at.is_(None), r.copy_next_at <= now),
            )
            .order_by(r.copy_next_at.nulls_first(), r.started_at)
            .limit(self.settings.batch)
            .with_for_update(skip_locked=True)
        )
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        claim = (
            update(_RECORDINGS)
            .where(r.id.in_(due.scalar_subquery()))
            .values(copy_next_at=lease)
            .returning(
                r.id,
                r.path,
                r.started_at,
                r.sha256,
                r.copy_status,
                r.copy_attempts,
                r.copy_location,
            )
        )
        async with self.database.begin() as connection:
            return list((await connection.execute(claim)).all())

    async def copy_due(self) -> CopyPass:
        """Copy (or remove) every due recording, at most ``batch`` of them; then the gauge."""
        if self.store is None:
            await self.refresh_gauge()
            return CopyPass()
        rows = await self._claim()
        results = await asyncio.gather(*(self._slot(self._one, row) for row in rows))
        await self.refresh_gauge()
        outcome = CopyPass(
            claimed=len(rows),
            verified=sum(1 for x in results if x == CopyStatus.VERIFIED),
            failed=sum(1 for x in results if x is None),
            removed=sum(1 for x in results if x == CopyStatus.REMOVED),
        )
        if rows:
            log.info(
                "recordings copy pass",
                extra={
                    "claimed": outcome.claimed,
                    "verified": outcome.verified,
                    "failed": outcome.failed,
                    "removed": outcome.removed,
                },
            )
        return outcome

    async def _slot(self, work: Callable[[Any], Awaitable[Any]], row: Any) -> Any:
        async with self._slots:
            return await work(row)

    async def _one(self, row: Row[Any]) -> CopyStatus | None:
        assert self.store is not None
        key = copy_key(row.id, row.started_at, row.path)
        try:
            if row.copy_status == CopyStatus.REMOVE:
                await asyncio.to_thread(self.store.remove, key)
                await self._set(row.id, copy_status=CopyStatus.REMOVED.value, copy_next_at=None)
                return CopyStatus.REMOVED
            original = await asyncio.to_thread(file_sha256, Path(row.path))
            if row.sha256 is not None and original != row.sha256:
                raise CopyError("the original differs from its SHA-256: run `recordings verify`")
            copied = await self._copy(key, Path(row.path), original)
        except Exception as exc:
            await self._failed(row, _describe(exc))
            return None
        await self._set(
            row.id,
            sha256=original,
            copy_status=CopyStatus.VERIFIED.value,
            copy_location=self.store.location(key),
            copy_sha256=copied,
            copy_attempts=row.copy_attempts + 1,
            copy_error=None,
            copy_next_at=None,
            copy_verified_at=_utc(self.clock()),
        )
        self.metrics.recording_copies.labels("verified").inc()
        log.info(
            "recording copied off-site and verified",
            extra={"recording": str(row.id), "location": self.store.location(key)},
        )
        return CopyStatus.VERIFIED

    async def _copy(self, key: str, source: Path, original: str) -> str:
        """Copy ``source`` to ``key`` and read it back; its SHA-256, or CopyError."""
        assert self.store is not None
        await asyncio.to_thread(self.store.put, key, source)
        copied = await asyncio.to_thread(self.store.sha256, key)
        if copied != original:
            raise CopyError(f"the copy read back has SHA-256 {copied}, not {original}")
        return copied

    async def _failed(self, row: Row[Any], error: str) -> None:
        attempts = row.copy_attempts + 1
        delay = self._backoff(attempts)
        await self._set(
            row.id,
            copy_attempts=attempts,
            copy_error=_clip(error, ERROR_CHARS),
            copy_next_at=_utc(self.clock() + delay),
        )
        self.metrics.recording_copies.labels("failed").inc()
        log.warning(
            "recording off-site copy failed; retrying",
            extra={
                "recording": str(row.id),
                "attempts": attempts,
                "retry_in_s": delay,
                "error": error,
            },
        )

    async def _set(self, recording_id: uuid.UUID, **values: Any) -> None:
        async with self.database.begin() as connection:
            await connection.execute(
                update(_RECORDINGS).where(_RECORDINGS.c.id == recording_id).values(**values)
            )

    async def refresh_gauge(self) -> int:
        """Set ``telephony_recordings_not_safe``; returns it."""
        async with self.database.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(_RECORDINGS).where(*self._not_safe())
            )
        self.metrics.recordings_not_safe.set(count or 0)
        return count or 0

    @staticmethod
    def _not_safe() -> tuple[Any, ...]:
        r = _RECORDINGS.c
        return (r.deleted_at.is_(None), r.copy_status != CopyStatus.VERIFIED.value)

    async def report(self, *, oldest: int = 100) -> SafetyReport:
        """How many recordings are not yet safe off-site, and the oldest of them."""
        r = _RECORDINGS.c
        live = r.deleted_at.is_(None)
        async with self.database.connect() as connection:
            total = await connection.scalar(select(func.count()).where(live)) or 0
            verified = (
                await connection.scalar(
                    select(func.count()).where(live, r.copy_status == CopyStatus.VERIFIED.value)
                )
                or 0
            )
            failing = (
                await connection.scalar(
                    select(func.count()).where(*self._not_safe(), r.copy_error.is_not(None))
                )
                or 0
            )
            rows = (
                await connection.execute(
                    select(r.id, r.started_at, r.copy_attempts, r.copy_error, r.copy_next_at)
                    .where(*self._not_safe())
                    .order_by(r.started_at)
                    .limit(oldest)
                )
            ).all()
        self.metrics.recordings_not_safe.set(total - verified)
        return SafetyReport(
            store=self.store.describe() if self.store else None,
            total=total,
            verified=verified,
            not_safe=total - verified,
            failing=failing,
            oldest_not_safe=[
                {
                    "id": str(row.id),
                    "started_at": row.started_at.isoformat(),
                    "attempts": row.copy_attempts,
                    "error": row.copy_error,
                    "next_attempt_at": row.copy_next_at.isoformat() if row.copy_next_at else None,
                }
                for row in rows
            ],
        )

    # -- verification ----------------------------------------------------------------------

    async def verify(
        self, progress: Callable[[int, int, Finding], None] | None = None
    ) -> VerifyReport:
        """Re-check both copies of every recording not removed; repair what can be repaired.

        ``progress(done, total, finding)`` is called after each recording.
        """
        r = _RECORDINGS.c
        report = VerifyReport()
        async with self.database.connect() as connection:
            total = await connection.scalar(select(func.count()).where(r.deleted_at.is_(None)))
        after = uuid.UUID(int=0)
        while True:
            async with self.database.connect() as connection:
                rows = (
                    await connection.execute(
                        select(r.id, r.path, r.started_at, r.sha256, r.copy_status)
                        .where(r.deleted_at.is_(None), r.ended_at.is_not(None), r.id > after)
                        .order_by(r.id)
                        .limit(self.settings.batch)
                    )
                ).all()
            if not rows:
                break
            after = rows[-1].id
            for finding in await asyncio.gather(*(self._slot(self._check, row) for row in rows)):
                report.add(finding)
                if finding.check is not Check.OK:
                    log.warning(
                        "recording verified: %s",
                        finding.check.value,
                        extra={"recording": str(finding.recording_id), "detail": finding.detail},
                    )
                if progress is not None:
                    progress(report.checked, total or 0, finding)
        await self.refresh_gauge()
        log.info(
            "recordings verified",
            extra={"checked": report.checked, **{k.value: v for k, v in report.counts.items()}},
        )
        return report

    async def _hash(self, work: Callable[..., str | None], *args: Any) -> str | None:
        try:
            return await asyncio.to_thread(work, *args)
        except FileNotFoundError:
            return None

    async def _check(self, row: Row[Any]) -> Finding:
        path = Path(row.path)
        key = copy_key(row.id, row.started_at, row.path)
        try:
            local = await self._hash(file_sha256, path)
            remote = None if self.store is None else await self._hash(self.store.sha256, key)
        except Exception as exc:
            return Finding(row.id, Check.COPY_FAILED, f"cannot read a copy: {_describe(exc)}")
        expected = row.sha256 or local
        local_ok = local is not None and local == expected
        if self.store is None:
            return Finding(row.id, Check.OK if local_ok else Check.LOST, "no off-site store")
        remote_ok = remote is not None and remote == expected
        if local_ok and remote_ok:
            if row.copy_status != CopyStatus.VERIFIED or row.sha256 is None:
                await self._verified(row.id, expected, key, remote)
            return Finding(row.id, Check.OK)
        if local_ok:
            assert local is not None
            detail = "the off-site copy is missing" if remote is None else "the copy is corrupt"
            self.metrics.recording_verify_problems.labels("offsite").inc()
            await self._set(row.id, copy_status=CopyStatus.PENDING.value, copy_error=detail)
            try:
                copied = await self._copy(key, path, local)
            except Exception as exc:
                await self._set(row.id, copy_next_at=_utc(self.clock()))
                return Finding(row.id, Check.COPY_FAILED, f"{detail}; {_describe(exc)}")
            await self._verified(row.id, local, key, copied)
            return Finding(row.id, Check.RECOPIED, detail)
        if remote_ok and row.sha256 is not None:
            detail = "the original is missing" if local is None else "the original is corrupt"
            self.metrics.recording_verify_problems.labels("original").inc()
            try:
                await asyncio.to_thread(self.store.get, key, path)
                restored = await asyncio.to_thread(file_sha256, path)
            except Exception as exc:
                return Finding(row.id, Check.LOST, f"{detail}; {_describe(exc)}")
            if restored != row.sha256:
                return Finding(row.id, Check.LOST, f"{detail}; the restored file differs")
            return Finding(row.id, Check.RESTORED, detail)
        self.metrics.recording_verify_problems.labels("both").inc()
        return Finding(row.id, Check.LOST, f"original {local}, copy {remote}, expected {expected}")

    async def _verified(
        self, recording_id: uuid.UUID, sha256: str | None, key: str, copied: str | None
    ) -> None:
        assert self.store is not None
        await self._set(
            recording_id,
            sha256=sha256,
            copy_status=CopyStatus.VERIFIED.value,
            copy_location=self.store.location(key),
            copy_sha256=copied,
            copy_error=None,
            copy_next_at=None,
            copy_verified_at=_utc(self.clock()),
        )

    # -- removal and retention -------------------------------------------------------------

    async def remove(
        self,
        recording_id: uuid.UUID,
        reason: str,
        audit: AuditWriter,
        *,
        kind: str = "deleted",
    ) -> RemovedRecording:
        """Mark the recording deleted with its audit row, then remove both copies.

        Raises :class:`NotFound` when there is no such recording or it was removed.
        """
        r = _RECORDINGS.c
        async with self.database.begin() as connection:
            row = (
                await connection.execute(
                    select(r.id, r.call_uuid, r.path, r.started_at, _CALLS.c.hotline)
                    .select_from(_RECORDINGS.outerjoin(_CALLS, _CALLS.c.uuid == r.call_uuid))
                    .where(r.id == recording_id, r.deleted_at.is_(None))
                    .with_for_update(of=_RECORDINGS)
                )
            ).one_or_none()
            if row is None:
                raise NotFound(str(recording_id))
            removed = RemovedRecording(
                row.id,
                row.call_uuid,
                row.path,
                row.started_at,
                _clip(reason, REASON_CHARS),
                row.hotline,
            )
            await connection.execute(
                update(_RECORDINGS)
                .where(r.id == recording_id)
                .values(
                    deleted_at=_utc(self.clock()),
                    delete_reason=removed.reason,
                    copy_status=CopyStatus.REMOVE.value,
                    copy_next_at=None,
                )
            )
            await audit(connection, removed)
        self.metrics.recordings_removed.labels(kind).inc()
        try:
            await asyncio.to_thread(Path(row.path).unlink, missing_ok=True)
        except OSError as exc:
            log.error(
                "recording file not removed",
                extra={"recording": str(recording_id), "path": row.path, "error": _describe(exc)},
            )
        if self.store is not None:
            key = copy_key(row.id, row.started_at, row.path)
            try:
                await asyncio.to_thread(self.store.remove, key)
                await self._set(recording_id, copy_status=CopyStatus.REMOVED.value)
            except Exception as exc:  # the copy loop removes it later (status `remove`)
                log.warning(
                    "off-site copy not removed yet",
                    extra={"recording": str(recording_id), "error": _describe(exc)},
                )
        else:
            await self._set(recording_id, copy_status=CopyStatus.REMOVED.value)
        log.info(
            "recording removed",
            extra={"recording": str(recording_id), "kind": kind, "reason": removed.reason},
        )
        return removed

    def _expired_query(self, now: datetime) -> Any:
        r = _RECORDINGS.c
        days = func.coalesce(_RETENTION.c.days, literal(self.settings.retention_days))
        return (
            select(r.id, r.call_uuid, r.path, r.started_at, _CALLS.c.hotline, days.label("days"))
            .select_from(
                _RECORDINGS.outerjoin(_CALLS, _CALLS.c.uuid == r.call_uuid).outerjoin(
                    _RETENTION, _RETENTION.c.hotline == _CALLS.c.hotline
                )
            )
            .where(
                r.deleted_at.is_(None),
                days > 0,
                r.started_at + func.make_interval(0, 0, 0, days) < now,
            )
        )

    async def expire(
        self,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int, RemovedRecording], None] | None = None,
    ) -> list[RemovedRecording]:
        """Remove every recording past its retention; ``progress(done, total, removed)``.

        Each removal is audited (``recording.expire``, by ``retention``) and logged;
        ``dry_run`` lists what would be removed and removes nothing.
        """
        query = self._expired_query(_utc(self.clock()))
        async with self.database.connect() as connection:
            total = await connection.scalar(select(func.count()).select_from(query.subquery()))
        total = total or 0
        log.info("retention run", extra={"expired": total, "dry_run": dry_run})
        done: list[RemovedRecording] = []
        after = uuid.UUID(int=0)
        while True:
            async with self.database.connect() as connection:
                rows = (
                    await connection.execute(
                        query.where(_RECORDINGS.c.id > after)
                        .order_by(_RECORDINGS.c.id)
                        .limit(self.settings.batch)
                    )
                ).all()
            if not rows:
                break
            after = rows[-1].id
            for row in rows:
                reason = f"retention: older than {row.days} days"
                removed = RemovedRecording(
                    row.id, row.call_uuid, row.path, row.started_at, reason, row.hotline
                )
                if not dry_run:
                    try:
                        await self.remove(
                            row.id, reason, _retention_audit(row.days), kind="expired"
                        )
                    except NotFound:  # removed meanwhile
                        continue
                done.append(removed)
                if progress is not None:
                    progress(len(done), total, removed)
        log.info("retention run finished", extra={"removed": len(done), "dry_run": dry_run})
        return done

    # -- retention policies ----------------------------------------------------------------

    async def policies(self) -> dict[str, int]:
        """Each hotline's retention in days (hotlines not listed: ``retention_days``)."""
        async with self.database.connect() as connection:
            rows = (await connection.execute(select(_RETENTION.c.hotline, _RETENTION.c.days))).all()
        return {row.hotline: row.days for row in rows}

    async def set_policy(self, hotline: str, days: int | None, by: str) -> None:
        """Keep ``hotline``'s recordings ``days`` days (None: back to the default); audited."""
        from sqlalchemy.dialects.postgresql import insert

        async with self.database.begin() as connection:
            if days is None:
                await connection.execute(_RETENTION.delete().where(_RETENTION.c.hotline == hotline))
            else:
                statement = insert(_RETENTION).values(hotline=hotline, days=days, updated_by=by)
                await connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["hotline"],
                        set_={"days": days, "updated_by": by, "updated_at": func.now()},
                    )
                )
            await record_audit(
                connection, by, "recording.retention", "hotline", hotline, detail={"days": days}
            )


def _retention_audit(days: int) -> AuditWriter:
    async def write(connection: AsyncConnection, removed: RemovedRecording) -> None:
        await record_audit(
            connection,
            RETENTION_ACTOR,
            "recording.expire",
            "recording",
            str(removed.recording_id),
            detail={
                "call": str(removed.call_uuid),
                "hotline": removed.hotline,
                "path": removed.path,
                "started_at": removed.started_at.isoformat(),
                "retention_days": days,
            },
        )

    return write


class CopyError(RuntimeError):
    """A copy that was not made, or does not read back as the original."""


class RecordingJobs:
    """The copy loop and the retention job of ``telephony serve``, as one component.

    Copies whatever is due every ``copy_interval`` seconds (at once again after a
    full batch), and applies the retention policy every ``retention_interval``
    seconds (0: never; ``telephony recordings expire`` does it by hand).
    """

    def __init__(
        self,
        archive: RecordingArchive,
        *,
        copy_interval: float = 5.0,
        retention_interval: float = 3600.0,
    ) -> None:
        self.archive = archive
        self.copy_interval = copy_interval
        self.retention_interval = retention_interval
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the loops."""
        self._tasks = [asyncio.create_task(self._copy_loop(), name="recordings copy")]
        if self.retention_interval > 0:
            self._tasks.append(
                asyncio.create_task(self._retention_loop(), name="recordings retention")
            )

    async def stop(self) -> None:
        """Stop the loops (a copy in flight is retried at the next start: its lease ends)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _copy_loop(self) -> None:
        while True:
            full = False
            try:
                done = await self.archive.copy_due()
                full = done.claimed >= self.archive.settings.batch
            except Exception as exc:  # the database is down: try again next time
                log.warning("recordings copy pass failed", extra={"error": _describe(exc)})
            if not full:
                await asyncio.sleep(self.copy_interval)

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.archive.expire()
            except Exception as exc:
                log.warning("retention run failed", extra={"error": _describe(exc)})
            await asyncio.sleep(self.retention_interval)


def open_archive(settings: Settings, database: AsyncEngine, metrics: Metrics) -> RecordingArchive:
    """The archive ``settings`` describe (its store is opened lazily: no connection here)."""
    store = open_store(
        settings.recordings_offsite,
        endpoint_url=settings.recordings_s3_endpoint,
        region=settings.recordings_s3_region,
    )
    return RecordingArchive(
        database,
        store,
        metrics,
        ArchiveSettings(
            concurrency=settings.recordings_copy_concurrency,
            retry_max_seconds=settings.recordings_copy_retry_max_seconds,
            retention_days=settings.recordings_retention_days,
        ),
    )


def recording_jobs(settings: Settings, archive: RecordingArchive) -> RecordingJobs:
    """``serve``'s copy loop and retention job over ``archive``."""
    return RecordingJobs(archive, retention_interval=settings.recordings_retention_interval_seconds)
