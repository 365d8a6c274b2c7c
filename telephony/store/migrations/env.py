"""Alembic environment: runs migrations on the async engine the control plane uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import URL, Connection

from telephony.store.database import create_engine
from telephony.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url: URL | str | None = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("no database URL given to the migrations")
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; give a database")
connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
