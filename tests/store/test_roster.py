"""Agent changes made on the roster are stored: the current state and the history."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.acd.agent_state import Agent, AgentEvent
from telephony.acd.roster import Roster, UnknownAgent
from telephony.store.buffer import WriteBuffer
from telephony.store.models import AgentStateChange


async def test_changes_are_stored_and_the_distributor_woken(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "insert into agents (id, name, extension, state)"
                " values ('a1', 'Li', '1001', 'logged_out')"
            )
        )
    buffer = WriteBuffer(engine)
    buffer.start()
    ticks = itertools.count(100)
    woken: list[str] = []
    roster = Roster(buffer, lambda: float(next(ticks)), on_available=lambda a: woken.append(a.id))
    roster.load([Agent("a1", "1001", name="Li")])

    roster.apply("a1", AgentEvent.SIGN_IN)
    roster.apply("a1", AgentEvent.OFFER)
    roster.apply("a1", AgentEvent.NO_ANSWER)
    await buffer.close()

    assert woken == ["a1"]
    table = AgentStateChange.__table__
    async with engine.connect() as connection:
        history = (
            await connection.execute(
                select(table.c.from_state, table.c.event, table.c.to_state, table.c.reason)
                .where(table.c.agent_id == "a1")
                .order_by(table.c.at)
            )
        ).all()
        state = (
            await connection.execute(text("select state, state_reason from agents where id='a1'"))
        ).one()
    assert [tuple(r) for r in history] == [
        ("logged_out", "sign_in", "available", None),
        ("available", "offer", "ringing", None),
        ("ringing", "no_answer", "busy", "no answer"),
    ]
    assert tuple(state) == ("busy", "no answer")


def test_unknown_agent_is_a_clear_error() -> None:
    roster = Roster(buffer=None, clock=lambda: 0.0)  # type: ignore[arg-type]
    with pytest.raises(UnknownAgent):
        roster.apply("nobody", AgentEvent.SIGN_IN)
