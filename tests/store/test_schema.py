"""Migrations build the schema on real PostgreSQL and seed what API.md promises."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.models import Base

NEEDED = {
    "freeswitch_nodes",
    "hotlines",
    "agents",
    "skill_groups",
    "agent_skills",
    "calls",
    "call_legs",
    "call_events",
    "queue_entries",
    "recordings",
    "principals",
    "audit_log",
}


async def test_migrations_create_every_table_of_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert tables >= NEEDED


async def test_general_skill_group_exists_from_the_first_start(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        groups = (await connection.execute(text("select id from skill_groups"))).scalars().all()
    assert groups == ["general"]
