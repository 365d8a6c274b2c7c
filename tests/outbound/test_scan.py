"""The missed-call scan takes only the CDRs it will turn into missed calls, so rows it must
leave (anonymous callers, outcomes another hotline's rules count) never crowd out the rest."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.outbound.model import Rules
from telephony.outbound.store import SCAN_BATCH, RuleBook, scan_missed, utc
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401


async def _cdrs(db: AsyncEngine, rows: list[tuple[str, str, str]], at: dt.datetime) -> None:
    async with db.begin() as connection:
        await connection.execute(
            text(
                "insert into calls (uuid, hotline, caller, arrived_at, ended_at, outcome,"
                " direction) values (gen_random_uuid(), :h, :c, :a, :a, :o, 'inbound')"
            ),
            [{"h": h, "c": c, "o": o, "a": at} for h, c, o in rows],
        )


async def _never(number: str) -> bool:
    return False


async def test_rows_the_scan_leaves_do_not_hide_a_missed_call_behind_them(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    now = dt.datetime.now(dt.UTC)
    crowd = SCAN_BATCH + 100
    early = now - dt.timedelta(hours=1)
    await _cdrs(engine, [("12345", "", "abandoned_in_queue")] * crowd, early)  # anonymous
    await _cdrs(engine, [("12345", "13800000001", "abandoned_in_queue")] * crowd, early)
    await _cdrs(engine, [("12345", "13800000002", "lost")], now - dt.timedelta(minutes=1))
    book = RuleBook({"12345": Rules(outcomes=("lost",))})  # 12345 counts only system losses
    async with engine.begin() as connection:
        added = await scan_missed(connection, book, utc(0), now, _never)
        missed = (await connection.execute(text("select caller, outcome from missed_calls"))).all()
    assert added == 1
    assert [(m.caller, m.outcome) for m in missed] == [("13800000002", "lost")]


def test_by_default_a_citizen_who_hangs_up_in_the_ivr_is_not_a_missed_call() -> None:
    book = RuleBook()
    assert "abandoned_in_ivr" not in book.of("12345").outcomes
    assert {"abandoned_in_queue", "refused", "lost", "voicemail"} <= set(book.of("12345").outcomes)
