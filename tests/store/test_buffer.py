"""The write buffer on real PostgreSQL: order, idempotency, outages, refused rows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.buffer import Write, WriteBuffer
from telephony.store.models import Call, CallEvent
from tests.store.conftest import Database

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CALLS = Call.__table__
EVENTS = CallEvent.__table__


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


async def test_a_refused_row_is_dropped_and_the_rest_written(engine: AsyncEngine) -> None:
    buffer = WriteBuffer(engine)
    call = uuid.uuid4()
    buffer.put(_event(call, 1))
    buffer.put(Write(CALLS, {"uuid": uuid.uuid4(), "arrived_at": None}))  # NOT NULL violated
    buffer.put(_event(call, 2))
    buffer.start()
    await buffer.close()
    assert buffer.rejected == 1
    assert await _timeline(engine, call) == ["step-1", "step-2"]


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
