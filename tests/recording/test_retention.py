"""Retention: recordings older than their hotline's days are removed, both copies, each audited."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.metrics import Metrics
from telephony.recording.archive import ArchiveSettings, CopyStatus, RecordingArchive, copy_key
from telephony.recording.stores import DirectoryStore
from telephony.store.models import AuditEntry, Recording, table_of
from tests.recording.seed import T0, seed_areas, seed_recordings

_RECORDINGS = table_of(Recording)
_AUDIT = table_of(AuditEntry)
NOW = (T0 + timedelta(days=100)).timestamp()


async def test_expire_applies_each_hotlines_days_with_progress_and_audit(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed_areas(engine)
    folder = tmp_path / "recordings"
    old_east = await seed_recordings(engine, folder, 3, started_at=T0)  # 100 days old
    new_east = await seed_recordings(engine, folder, 2, started_at=T0 + timedelta(days=95))
    old_west = await seed_recordings(engine, folder, 2, hotline="12315", agent_id="w1")
    dr = tmp_path / "dr"
    archive = RecordingArchive(
        engine,
        DirectoryStore(dr),
        Metrics(),
        ArchiveSettings(retention_days=365, batch=2),
        clock=lambda: NOW,
    )
    while (await archive.copy_due()).claimed:
        pass
    await archive.set_policy("12345", 30, "ops")

    dry = await archive.expire(dry_run=True)
    assert {r.recording_id for r in dry} == {s.id for s in old_east}
    assert all(s.path.exists() for s in old_east)

    seen: list[tuple[int, int]] = []
    removed = await archive.expire(progress=lambda done, total, r: seen.append((done, total)))

    assert {r.recording_id for r in removed} == {s.id for s in old_east}
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for s in old_east:
        assert not s.path.exists()
        assert not (dr / copy_key(s.id, s.started_at, str(s.path))).exists()
    for s in new_east + old_west:  # 12345 within 30 days; 12315 by the default 365
        assert s.path.exists()
    async with engine.connect() as connection:
        rows = {r.id: r for r in (await connection.execute(select(_RECORDINGS))).all()}
        audit = (
            await connection.execute(select(_AUDIT).where(_AUDIT.c.action == "recording.expire"))
        ).all()
    for s in old_east:
        assert rows[s.id].deleted_at is not None
        assert rows[s.id].delete_reason == "retention: older than 30 days"
        assert rows[s.id].copy_status == CopyStatus.REMOVED
    assert {a.target_id for a in audit} == {str(s.id) for s in old_east}
    assert all(a.principal == "retention" and a.detail["retention_days"] == 30 for a in audit)
    assert archive.metrics.recordings_removed.labels("expired")._value.get() == 3
    assert await archive.expire() == []


async def test_nothing_expires_with_no_retention(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed_areas(engine)
    await seed_recordings(engine, tmp_path / "recordings", 2)
    archive = RecordingArchive(engine, None, Metrics(), ArchiveSettings(), clock=lambda: NOW)
    assert await archive.expire() == []
