"""Migration 0003: the CDR says why a call or a voice message has no recording."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.migrate import upgrade
from telephony.store.models import Call

COLUMNS = {"recording_failed": 128, "voicemail_path": 255, "voicemail_failed": 128}


def _columns(connection: Any) -> dict[str, Any]:
    return {c["name"]: c for c in inspect(connection).get_columns("calls")}


async def test_calls_has_the_recording_failure_and_voice_message_columns(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        columns = await connection.run_sync(_columns)
    for name, length in COLUMNS.items():
        assert columns[name]["nullable"], name
        assert columns[name]["type"].length == length, name
        model = Call.__table__.c[name]
        assert model.nullable and getattr(model.type, "length", None) == length, name


async def test_0003_downgrades_and_upgrades(engine: AsyncEngine) -> None:
    def downgrade(connection: Any) -> None:
        from alembic import command

        from telephony.store.migrate import alembic_config

        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with engine.connect() as connection:
        assert not set(COLUMNS) & set(await connection.run_sync(_columns))
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "insert into calls (uuid, arrived_at, recording_failed, voicemail_path,"
                " voicemail_failed) values (gen_random_uuid(), now(),"
                " '-ERR Cannot record session!', '/r/voicemail/m-1.wav', 'no audio')"
            )
        )
        row = (await connection.execute(text("select recording_failed from calls"))).one()
    assert row.recording_failed == "-ERR Cannot record session!"
