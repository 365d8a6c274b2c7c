"""``WS /v1/events`` on the whole control plane: screen pop, scope, replay, refusals."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from websockets.exceptions import ConnectionClosed

from telephony.auth import Role
from telephony.store.models import BlockedNumber, table_of
from telephony.store.models import Call as CallRow
from tests.live.client import EventsClient
from tests.live.stack import LiveStack

CALLER = "13800138000"
PRESS_0 = ("dtmf=0", "dtmf_delay_ms=5000")


async def seed_history(stack: LiveStack, caller: str) -> uuid.UUID:
    """Two earlier calls of ``caller``: 3 days ago (answered by a1) and 40 days ago."""
    recent = uuid.uuid4()
    now = datetime.now(UTC)
    rows = [
        {
            "uuid": recent,
            "caller": caller,
            "hotline": "12345",
            "arrived_at": now - timedelta(3),
            "outcome": "answered",
            "agent_id": "a1",
        },
        {
            "uuid": uuid.uuid4(),
            "caller": caller,
            "hotline": "12345",
            "arrived_at": now - timedelta(40),
            "outcome": "abandoned_in_queue",
            "agent_id": None,
        },
    ]
    async with stack.services.database.begin() as connection:
        await connection.execute(insert(table_of(CallRow)), rows)
    return recent


def _is(kind: str, **fields: Any) -> Any:
    def test(message: dict[str, Any]) -> bool:
        return message["type"] == kind and all(message.get(k) == v for k, v in fields.items())

    return test


async def test_an_agent_gets_its_state_and_a_screen_pop_before_it_answers(
    stack: LiveStack,
) -> None:
    await stack.add_agent("a1", "1001", area="east")
    await stack.add_agent("b1", "1002", area="west")
    recent = await seed_history(stack, CALLER)
    agent = await EventsClient.open(
        stack.ws_url, await stack.token("lina", Role.AGENT, agent_id="a1")
    )
    welcome = await agent.next()
    assert welcome["type"] == "welcome" and welcome["resumed"] is False
    assert welcome["principal"] == {"name": "lina", "role": "agent", "agent_id": "a1", "areas": []}
    snapshot = await agent.next()
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == welcome["seq"]
    assert [a["id"] for a in snapshot["agents"]] == ["a1"]  # not b1
    assert snapshot["calls"] == [] and snapshot["screen_pop"] is None

    await stack.sign_in("a1")
    signed = await agent.until(_is("agent"))
    assert signed["agent"]["state"] == "available" and signed["change"]["event"] == "sign_in"
    assert signed["seq"] > welcome["seq"]

    await stack.sim_api("phone", "1001", "answer_after_ms=4000")
    call_uuid = await stack.call(CALLER, *PRESS_0, "hangup_after_s=30")
    pop = await agent.until(_is("screen_pop"))
    assert pop["call_uuid"] == call_uuid and pop["agent_id"] == "a1"
    assert (pop["caller"], pop["hotline"], pop["ivr_path"]) == (CALLER, "12345", "0")
    assert pop["blocked"] is False and pop["history_error"] is None
    assert [(h["uuid"], h["outcome"], h["agent_id"], h["agent_name"]) for h in pop["history"]] == [
        (str(recent), "answered", "a1", "A1")
    ]
    talking = await agent.until(lambda m: m["type"] == "agent" and m["agent"]["state"] == "in_call")
    assert pop["seq"] < talking["seq"]  # the pop came while the phone rang
    call = await agent.until(lambda m: m["type"] == "call" and m["call"]["state"] == "talking")
    assert call["call"]["uuid"] == call_uuid and call["call"]["agent_id"] == "a1"

    await stack.sim_api("hangup", call_uuid)
    ended = await agent.until(lambda m: m["type"] == "call" and m["call"]["state"] == "ended")
    assert ended["outcome"] == "answered"
    seqs = [m["seq"] for m in agent.received if m["type"] not in ("welcome", "snapshot")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert not any(m["type"] in ("queue",) for m in agent.received)
    await agent.close()


async def test_a_supervisor_gets_its_areas_agents_and_calls_only(stack: LiveStack) -> None:
    await stack.add_agent("a1", "1001", area="east")
    await stack.add_agent("b1", "1002", area="west")
    token = await stack.token("boss", Role.SUPERVISOR, area="east")
    supervisor = await EventsClient.open(stack.ws_url + f"?token={token}", token)
    await supervisor.until(_is("welcome"))
    snapshot = await supervisor.until(_is("snapshot"))
    assert [a["id"] for a in snapshot["agents"]] == ["a1"]
    await stack.sign_in("b1")
    await stack.sign_in("a1")  # b1 is idle longer, but only a1 answers the phone below
    await stack.sim_api("phone", "1002", "reject")
    await stack.sim_api("phone", "1001", "answer_after_ms=1000")
    call_uuid = await stack.call(CALLER, *PRESS_0, "hangup_after_s=20")
    await supervisor.until(lambda m: m["type"] == "call" and m["call"]["state"] == "talking")
    await stack.sim_api("hangup", call_uuid)
    await supervisor.until(lambda m: m["type"] == "call" and m["call"]["state"] == "ended")
    agents = {m["agent"]["id"] for m in supervisor.received if m["type"] == "agent"}
    assert agents == {"a1"}
    assert not any(m["type"] == "screen_pop" for m in supervisor.received)
    calls = [m for m in supervisor.received if m["type"] == "call"]
    assert calls and all(m["call"]["uuid"] == call_uuid for m in calls)
    await supervisor.close()


async def test_a_client_that_reconnects_with_its_last_number_loses_nothing(
    stack: LiveStack,
) -> None:
    await stack.add_agent("a1", "1001", area="east")
    token = await stack.token("boss", Role.SUPERVISOR, area="east")
    first = await EventsClient.open(stack.ws_url, token)
    welcome = await first.until(_is("welcome"))
    await stack.sign_in("a1")
    seen = await first.until(_is("agent"))
    await first.close()

    for path in ("busy", "idle", "busy"):
        body = {"reason": "meeting"} if path == "busy" else None
        reply = await stack.http.post(f"/v1/agents/a1/{path}", headers=stack.admin, json=body)
        assert reply.status_code == 200, reply.text

    again = await EventsClient.open(stack.ws_url, token, since=seen["seq"], epoch=welcome["epoch"])
    back = await again.next()
    assert back["type"] == "welcome" and back["resumed"] is True and back["replayed"] == 3
    missed = [await again.next() for _ in range(3)]
    assert [m["change"]["event"] for m in missed] == ["set_busy", "set_idle", "set_busy"]
    assert [m["seq"] for m in missed] == sorted(m["seq"] for m in missed)
    assert missed[0]["seq"] > seen["seq"] and missed[-1]["seq"] <= back["seq"]
    await again.close()

    other = await EventsClient.open(stack.ws_url, token, since=seen["seq"], epoch="another-run")
    assert (await other.next())["resumed"] is False
    snapshot = await other.next()
    assert snapshot["type"] == "snapshot" and "epoch" in snapshot["reason"]
    assert snapshot["agents"][0]["state"] == "busy"
    await other.close()


@pytest.mark.parametrize(
    ("first", "code"),
    [('{"token": "tel_nope"}', 4401), ("not json", 4400), ('{"token": "x", "since": "a"}', 4400)],
)
async def test_a_bad_first_message_is_refused_with_its_code(
    stack: LiveStack, first: str, code: int
) -> None:
    from websockets.asyncio.client import connect

    async with connect(stack.ws_url) as connection:
        await connection.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_the_history_says_blocked_and_keeps_to_30_days_and_other_calls(
    stack: LiveStack,
) -> None:
    await stack.add_agent("a1", "1001")
    recent = await seed_history(stack, "13900000000")
    async with stack.services.database.begin() as connection:
        await connection.execute(
            insert(table_of(BlockedNumber)).values(number="13900000000", reason="abuse")
        )
    blocked, calls = await stack.services.live_feed.history("13900000000", uuid.uuid4())
    assert blocked is True and [c["uuid"] for c in calls] == [str(recent)]
    assert await stack.services.live_feed.history("13900000000", recent) == (True, [])
    assert await stack.services.live_feed.history("10000", uuid.uuid4()) == (False, [])
