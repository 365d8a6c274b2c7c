"""The write buffer across a real database stop: its pooled connections die with the server,
are dropped, and every write put meanwhile is committed once the server is back."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from telephony.store.buffer import Write, WriteBuffer, _is_outage
from telephony.store.database import EmbeddedPostgres, create_engine, writer_engine
from telephony.store.migrate import upgrade
from telephony.store.models import Call, CallEvent, table_of

CALLS = table_of(Call)
EVENTS = table_of(CallEvent)


def _cdr(call: uuid.UUID) -> Write:
    row = {
        "uuid": call,
        "caller": "13800138000",
        "hotline": "12345",
        "arrived_at": datetime(2026, 12, 1, tzinfo=UTC),
    }
    return Write(CALLS, row)


def _step(call: uuid.UUID) -> Write:
    row = {
        "id": uuid.uuid4(),
        "call_uuid": call,
        "at": datetime(2026, 12, 1, tzinfo=UTC),
        "kind": "arrived",
        "detail": {"caller": "13800138000", "keys": [1, 2]},
    }
    return Write(EVENTS, row)


@pytest.fixture
def own_server() -> object:
    # Its own server: stopping the session's shared one would pull it from other tests.
    folder = Path(tempfile.mkdtemp(prefix="telephony-stop-", dir="/tmp"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(folder / "pg")
    url = server.start()
    try:
        yield server, url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def test_writes_put_while_the_database_is_stopped_are_committed_after_it_restarts(
    own_server: tuple[EmbeddedPostgres, object],
) -> None:
    server, url = own_server
    database = create_engine(url)  # type: ignore[arg-type]
    await upgrade(database)
    writer = writer_engine(database)
    buffer = WriteBuffer(writer, retry_initial=0.05, retry_max=0.2)
    buffer.start()
    calls = [uuid.uuid4() for _ in range(40)]
    try:
        for call in calls[:20]:
            buffer.put(_cdr(call))
            buffer.put(_step(call))
        await asyncio.wait_for(buffer.flushed(), 10)  # the pool now holds live connections
        await asyncio.to_thread(server.stop)
        for call in calls[20:]:
            buffer.put(_cdr(call))
            buffer.put(_step(call))
        for _ in range(200):
            if buffer.outages:
                break
            await asyncio.sleep(0.05)
        assert buffer.outages > 0 and buffer.depth == 40  # kept, not dropped
        await asyncio.to_thread(server.restart)
        await asyncio.wait_for(buffer.flushed(), 30)
    finally:
        await buffer.close()
    async with database.connect() as connection:
        stored = await connection.scalar(text("select count(*) from calls"))
        steps = await connection.scalar(text("select count(*) from call_events"))
        detail = await connection.scalar(text("select detail from call_events limit 1"))
    assert (stored, steps, buffer.refused) == (40, 40, 0)
    assert detail == {"caller": "13800138000", "keys": [1, 2]}  # JSON as SQLAlchemy stores it
    await writer.dispose()
    await database.dispose()


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (asyncpg.exceptions.AdminShutdownError, True),  # 57P01
        (asyncpg.exceptions.CannotConnectNowError, True),  # 57P03
        (asyncpg.exceptions.ConnectionFailureError, True),  # 08006
        (asyncpg.exceptions.TooManyConnectionsError, True),  # 53300
        (asyncpg.exceptions.SerializationError, True),  # 40001
        (asyncpg.exceptions.ConnectionDoesNotExistError, True),  # the socket died
        (asyncpg.exceptions.NotNullViolationError, False),  # 23502: the row is wrong
        (asyncpg.exceptions.StringDataRightTruncationError, False),  # 22001
    ],
)
def test_the_drivers_own_errors_are_told_apart_too(
    error: type[Exception], transient: bool
) -> None:
    assert _is_outage(error("x")) is transient
