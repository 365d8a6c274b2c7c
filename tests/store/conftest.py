"""Real PostgreSQL for the storage tests: embedded always; ``DATABASE_URL`` too when it is set."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.database import EmbeddedPostgres, create_engine, normalize_url
from telephony.store.migrate import upgrade


@dataclass
class Database:
    """A freshly created, migrated database, and the embedded server behind it (if any)."""

    url: URL
    server: EmbeddedPostgres | None


def _connect_args(url: URL) -> dict[str, object]:
    host = url.query.get("host") or url.host
    return {"user": url.username, "password": url.password, "host": host, "port": url.port}


async def _create_database(url: URL) -> URL:
    name = "telephony_test_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(database=url.database or "postgres", **_connect_args(url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    target = url.set(database=name)
    engine = create_engine(target, pool_size=1)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return target


# Not under pytest's tmp_path: pytest resets its folder to mode 0700, and the embedded server
# runs as its own system user when the tests run as root, so it must be able to traverse the path.
TEST_DATA_DIR = Path(__file__).resolve().parents[2] / ".data" / "test-postgres"


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[tuple[EmbeddedPostgres, URL]]:
    """The session's server. Its folder is locked for the session: a second pytest session on
    the same working tree gets a folder of its own (removed at its end), so that one session's
    exit, or an outage test that stops its server, never pulls the database from under another.
    """
    base = Path(os.environ.get("TELEPHONY_TEST_PG_DIR", TEST_DATA_DIR))
    base.parent.mkdir(parents=True, exist_ok=True)
    lock = (base.parent / (base.name + ".lock")).open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        folder, own = base, False
    except BlockingIOError:
        folder, own = base.parent / f"{base.name}-{os.getpid()}", True
    server = EmbeddedPostgres(folder)
    try:
        yield server, server.start()  # the shared folder's server is stopped at exit
    finally:
        if own:
            with contextlib.suppress(Exception):
                server.stop()
            shutil.rmtree(folder, ignore_errors=True)
        lock.close()


async def _drop_database(url: URL) -> None:
    admin = await asyncpg.connect(database="postgres", **_connect_args(url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["embedded", "DATABASE_URL"])
def database(
    request: pytest.FixtureRequest, embedded_server: tuple[EmbeddedPostgres, URL]
) -> Iterator[Database]:
    if request.param == "embedded":
        server, url = embedded_server
        yield Database(asyncio.run(_create_database(url)), server)
        return
    external = os.environ.get("DATABASE_URL")
    if not external:
        pytest.skip("DATABASE_URL is not set")
    created = asyncio.run(_create_database(normalize_url(external)))
    yield Database(created, None)
    asyncio.run(_drop_database(created))


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.url)
    yield engine
    await engine.dispose()
