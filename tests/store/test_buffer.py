"""The write buffer on real PostgreSQL: order, idempotency, outages, refused rows."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.buffer import (
    REFUSED_FILE,
    SPILL_FILE,
    Refusal,
    Write,
    WriteBuffer,
    on_refusal,
)
from telephony.store.models import Call, CallEvent
from tests.store.conftest import Database

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CALLS = Call.__table__
EVENTS = CallEvent.__table__


class Hooks:
    """BufferHooks that remember."""

    def __init__(self) -> None:
        self.depths: list[tuple[int, int]] = []
        self.overflows = 0
        self.tables: list[str] = []

    def depth(self, memory: int, spilled: int) -> None:
        self.depths.append((memory, spilled))

    def overflow(self) -> None:
        self.overflows += 1

    def refused(self, table: str) -> None:
        self.tables.append(table)


class Outage:
    """An engine whose database can be made unreachable (any server, no restart needed)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.down = False
        self.attempts = 0

    def connect(self) -> Any:
        self.attempts += 1
        if self.down:
            raise OperationalError("connect", {}, ConnectionRefusedError("database is down"))
        return self.engine.connect()

    def as_engine(self) -> AsyncEngine:
        return cast(AsyncEngine, self)


def _call(call_uuid: uuid.UUID, **extra: object) -> Write:
    row = {"uuid": call_uuid, "caller": "13800138000", "hotline": "12345", "arrived_at": T0}
    row.update(extra)
    return Write(CALLS, row, update=tuple(k for k in extra))  # type: ignore[arg-type]


def _event(call_uuid: uuid.UUID, n: int) -> Write:
    return Write(
        EVENTS,
        {
            "id": uuid.uuid4(),
            "call_uuid": call_uuid,
            "at": T0 + timedelta(milliseconds=n),
            "kind": f"step-{n}",
            "detail": {"n": n},
        },
    )


async def _timeline(engine: AsyncEngine, call_uuid: uuid.UUID) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(EVENTS.c.kind).where(EVENTS.c.call_uuid == call_uuid).order_by(EVENTS.c.at)
        )
        return list(rows.scalars())


async def test_writes_commit_in_order_and_upserts_overwrite(engine: AsyncEngine) -> None:
    buffer = WriteBuffer(engine, max_batch=7)
    buffer.start()
    call = uuid.uuid4()
    buffer.put(_call(call))
    for n in range(20):
        buffer.put(_event(call, n))
    buffer.put(_call(call, outcome="answered", agent_id="a1"))
    buffer.put(_call(call, outcome="answered", talk_seconds=42.0))
    await asyncio.wait_for(buffer.flushed(), 10)
    await buffer.close()
    assert await _timeline(engine, call) == [f"step-{n}" for n in range(20)]
    async with engine.connect() as connection:
        row = (await connection.execute(select(CALLS).where(CALLS.c.uuid == call))).one()
    assert (row.outcome, row.agent_id, row.talk_seconds) == ("answered", "a1", 42.0)


async def test_a_write_sent_twice_is_stored_once(engine: AsyncEngine) -> None:
    buffer = WriteBuffer(engine)
    buffer.start()
    call = uuid.uuid4()
    event = _event(call, 1)
    for _ in range(3):
        buffer.put(_call(call))
        buffer.put(event)
    await buffer.close()
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("select count(*) from call_events where call_uuid = :u"), {"u": call}
        )
    assert count == 1


@pytest.mark.allow_db_refusal
async def test_a_refused_row_is_reported_loudly_and_the_rest_written(
    engine: AsyncEngine, tmp_path: Path, _no_refused_writes: list[Refusal]
) -> None:
    hooks = Hooks()
    heard: list[Refusal] = []
    stop = on_refusal(heard.append)
    buffer = WriteBuffer(engine, spill_dir=tmp_path, hooks=hooks)
    call = uuid.uuid4()
    bad = uuid.uuid4()
    buffer.put(_event(call, 1))
    buffer.put(Write(CALLS, {"uuid": bad, "arrived_at": None}))  # NOT NULL violated
    buffer.put(_event(call, 2))
    buffer.start()
    await buffer.close()
    stop()
    assert buffer.refused == 1 and hooks.tables == ["calls"]
    assert await _timeline(engine, call) == ["step-1", "step-2"]
    # every listener of the process heard it, with the row and the database's error
    assert heard == _no_refused_writes
    ((refusal),) = heard
    assert refusal.table == "calls" and refusal.row["uuid"] == bad
    assert "arrived_at" in refusal.error and "null" in refusal.error.lower()
    # and it is kept on disk for a replay by hand
    (kept,) = (tmp_path / REFUSED_FILE).read_bytes().splitlines()
    line = orjson.loads(kept)
    assert line["row"]["uuid"] == str(bad) and "arrived_at" in line["error"]
    assert not (tmp_path / SPILL_FILE).exists()


async def test_database_outage_loses_and_duplicates_nothing(
    database: Database, engine: AsyncEngine
) -> None:
    if database.server is None:
        pytest.skip("only the embedded server can be stopped by the test")
    depths: list[int] = []
    buffer = WriteBuffer(
        engine, max_batch=50, retry_initial=0.05, retry_max=0.2, on_depth=depths.append
    )
    buffer.start()
    call = uuid.uuid4()
    for n in range(100):
        buffer.put(_event(call, n))
    await asyncio.wait_for(buffer.flushed(), 10)

    await asyncio.to_thread(database.server.stop)
    for n in range(100, 400):
        buffer.put(_event(call, n))
        if n % 50 == 0:
            await asyncio.sleep(0.05)  # calls keep flowing while the database is down
    await asyncio.sleep(0.5)
    assert buffer.depth > 0 and buffer.outages > 0
    await asyncio.to_thread(database.server.restart)

    await asyncio.wait_for(buffer.flushed(), 30)
    await buffer.close()
    assert await _timeline(engine, call) == [f"step-{n}" for n in range(400)]
    assert max(depths) >= 300 - 50


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("57P03", True),  # the database system is starting up
        ("57P01", True),  # terminating connection due to administrator command
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("40001", True),  # serialization failure
        ("23502", False),  # not-null violation: the row itself is wrong
        ("22P02", False),  # invalid text representation
    ],
)
def test_not_now_is_told_apart_from_not_this_row(sqlstate: str, transient: bool) -> None:
    from sqlalchemy.exc import DBAPIError

    from telephony.store.buffer import _is_outage

    error = DBAPIError("insert", {}, _Orig(sqlstate))
    assert _is_outage(error) is transient


async def test_past_its_bound_the_buffer_spills_to_disk_and_replays_in_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A long outage: memory stays at its bound, the rest waits on disk, nothing is lost."""
    outage = Outage(engine)
    hooks = Hooks()
    depths: list[int] = []
    buffer = WriteBuffer(
        outage.as_engine(),
        max_batch=20,
        retry_initial=0.02,
        retry_max=0.05,
        max_depth=50,
        spill_dir=tmp_path,
        hooks=hooks,
        on_depth=depths.append,
    )
    buffer.start()
    call = uuid.uuid4()
    buffer.put(_call(call))
    await asyncio.wait_for(buffer.flushed(), 10)

    outage.down = True
    for n in range(300):
        buffer.put(_event(call, n))
        if n % 60 == 0:
            await asyncio.sleep(0.02)  # calls keep flowing while the database is down
    buffer.put(_call(call, outcome="answered", talk_seconds=12.5))  # the CDR's last word
    await asyncio.sleep(0.2)
    assert outage.attempts > 2
    assert buffer.depth == 301 and buffer.spilled == 251 and hooks.overflows == 251
    assert max(memory for memory, _ in hooks.depths) <= 50
    assert max(depths) == 301
    assert len((tmp_path / SPILL_FILE).read_bytes().splitlines()) == 251

    outage.down = False
    await asyncio.wait_for(buffer.flushed(), 30)
    assert buffer.depth == 0 and hooks.depths[-1] == (0, 0)
    assert not (tmp_path / SPILL_FILE).exists()
    assert await _timeline(engine, call) == [f"step-{n}" for n in range(300)]
    async with engine.connect() as connection:
        row = (await connection.execute(select(CALLS).where(CALLS.c.uuid == call))).one()
    assert (row.outcome, row.talk_seconds) == ("answered", 12.5)

    # back to memory: the next write does not touch the disk
    buffer.put(_event(call, 300))
    assert buffer.spilled == 0 and not (tmp_path / SPILL_FILE).exists()
    await buffer.close()
    assert await _timeline(engine, call) == [f"step-{n}" for n in range(301)]


async def test_closing_during_an_outage_keeps_everything_for_the_next_start(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    outage = Outage(engine)
    outage.down = True
    first = WriteBuffer(
        outage.as_engine(), retry_initial=0.02, retry_max=0.05, max_depth=10, spill_dir=tmp_path
    )
    first.start()
    call = uuid.uuid4()
    first.put(_call(call))
    for n in range(40):
        first.put(_event(call, n))
    await first.close(timeout=0.2)  # the database is still down
    assert len((tmp_path / SPILL_FILE).read_bytes().splitlines()) == 41

    second = WriteBuffer(engine, max_batch=7, max_depth=10, spill_dir=tmp_path)
    assert second.depth == 41  # found at once, before anything new
    second.put(_event(call, 40))  # new writes go behind the old ones
    second.start()
    await asyncio.wait_for(second.flushed(), 30)
    await second.close()
    assert await _timeline(engine, call) == [f"step-{n}" for n in range(41)]
    assert not (tmp_path / SPILL_FILE).exists()


async def test_every_kind_of_value_is_stored_as_it_was_put(engine: AsyncEngine) -> None:
    """A batch goes to PostgreSQL as JSON (json_to_recordset): nothing is lost on the way."""
    call = uuid.uuid4()
    beijing = timezone(timedelta(hours=8))
    awkward = 'a "quoted", back\\slash\nnew line, 北京 \U0001f4de'
    values: dict[str, Any] = {
        "node": awkward[:64],
        "ivr_path": awkward * 40,
        "arrived_at": datetime(2026, 11, 23, 16, 0, 0, 123456, tzinfo=beijing),
        "ended_at": None,
        "wait_seconds": 0.1 + 0.2,
        "talk_seconds": float("inf"),
        "hold_seconds": float("nan"),
        "survey_score": -(2**31),
        "recording_id": uuid.UUID(int=2**128 - 1),
    }
    detail = {"keys": "12#", 5: [1.5, True, None, {"深": "层"}], "empty": {}}
    buffer = WriteBuffer(engine)
    buffer.start()
    buffer.put(Write(CALLS, {"uuid": call, "caller": "13800138000", **values}))
    step = {"id": uuid.uuid4(), "call_uuid": call, "at": T0, "kind": "dtmf", "detail": detail}
    buffer.put(Write(EVENTS, step))
    await buffer.close()
    async with engine.connect() as connection:
        row = (await connection.execute(select(CALLS).where(CALLS.c.uuid == call))).one()
        stored = (
            await connection.execute(select(EVENTS.c.detail).where(EVENTS.c.call_uuid == call))
        ).scalar_one()
    got = row._asdict()
    assert math.isnan(got.pop("hold_seconds"))
    assert {k: got[k] for k in values if k != "hold_seconds"} == {
        k: v for k, v in values.items() if k != "hold_seconds"
    }
    assert stored == {"keys": "12#", "5": [1.5, True, None, {"深": "层"}], "empty": {}}


@pytest.mark.allow_db_refusal
async def test_a_value_too_long_for_its_column_is_refused_not_cut(engine: AsyncEngine) -> None:
    buffer = WriteBuffer(engine)
    buffer.start()
    call = uuid.uuid4()
    buffer.put(_call(call, node="n" * 65))  # String(64)
    await buffer.close()
    assert buffer.refused == 1
    async with engine.connect() as connection:
        assert (await connection.scalar(select(CALLS.c.node).where(CALLS.c.uuid == call))) is None
