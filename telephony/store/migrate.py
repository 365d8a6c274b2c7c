"""Apply the schema migrations (``telephony db upgrade``, and ``serve`` on start)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: URL | str | None = None) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in step."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.attributes["url"] = url
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to ``revision`` on the given engine, logging each step."""

    def run(connection: object) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    log.info("migrating database", extra={"revision": revision})
    async with engine.begin() as connection:
        await connection.run_sync(run)
    log.info("database migrated", extra={"revision": revision})
