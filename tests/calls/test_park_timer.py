"""FreeSWITCH's park timer never releases a call the control plane has taken.

The simulator's dialplan parks hotline calls with ``park_timeout=60`` as the
shipped one does, and models ``switch_ivr_park``: the timer fires on the first
park loop with no nested application running after the deadline (after a
``*`` stops the music, after music ends, between ``uuid_break`` and
``uuid_bridge``). These tests fail on an engine that leaves calls in the
dialplan's park.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telephony.esl.transport import EslConnection
from telephony.sim import api as sim_api
from telephony.sim import dialplan as sim_dialplan
from tests.calls.conftest import TIME_SCALE, Rig, start_controller


async def sim_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds / TIME_SCALE)


async def test_a_star_in_the_queue_and_an_agent_at_75_s_is_answered_not_dropped(
    rig: Rig,
) -> None:
    await rig.add_agent("a1", "1001")
    await rig.sim_api("phone", "1001", "answer_after_ms=1000")
    call = await rig.call("13800138000", "hangup_after_s=120")
    await sim_sleep(5)
    await rig.sim_api("dtmf", call, "*")  # FreeSWITCH's default playback_terminators is `*`
    await sim_sleep(70)
    assert await rig.ended_cdr(call) is None  # past the dialplan's 60 s park_timeout
    rig.sign_in("a1")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call), timeout=20)
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a1"
    assert cdr["hung_up_by"] == "caller"


async def test_a_call_older_than_60_s_survives_a_failed_bridge_and_reaches_the_next_agent(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_bridge = sim_api._HANDLERS["uuid_bridge"]
    failed: list[str] = []

    async def bridge_fails_once(*args: Any) -> Any:
        if not failed:
            failed.append(args[2])  # (switch, scripts, arg, words)
            return "-ERR no such channel\n", None
        return await real_bridge(*args)

    monkeypatch.setitem(sim_api._HANDLERS, "uuid_bridge", bridge_fails_once)
    for agent, extension in (("a1", "1001"), ("a2", "1002")):
        await rig.add_agent(agent, extension)
        await rig.sim_api("phone", extension, "answer_after_ms=1000")
    call = await rig.call("13800138000", "hangup_after_s=150")
    await sim_sleep(65)
    rig.sign_in("a1")
    rig.sign_in("a2")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call), timeout=20)
    assert failed, "the first bridge was not attempted"
    assert cdr["outcome"] == "answered" and cdr["hung_up_by"] == "caller"
    steps = await rig.fetch(
        "select kind from call_events where call_uuid = cast(:u as uuid) order by at", u=call
    )
    assert "offer_failed" in [s["kind"] for s in steps]


async def test_music_that_ends_in_the_queue_does_not_let_the_timer_drop_the_call(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_dialplan, "HOLD_MUSIC", "local_stream://moh")
    await rig.sim_api("set", "local_stream_ms", "3000")  # an empty or broken local_stream
    await rig.add_agent("a1", "1001")
    await rig.sim_api("phone", "1001", "answer_after_ms=1000")
    call = await rig.call("13800138000", "hangup_after_s=120")
    await sim_sleep(75)
    assert await rig.ended_cdr(call) is None
    rig.sign_in("a1")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call), timeout=20)
    assert cdr["outcome"] == "answered"


async def test_a_call_no_controller_takes_still_gets_the_dialplan_fallback(rig: Rig) -> None:
    await rig.controller.crash()
    async with EslConnection(f"esl://:ClueCon@127.0.0.1:{rig.sim_port}") as outsider:
        reply = await outsider.api("sim", "call", "12345", "13800138004")
        call = reply.body.strip().removeprefix("+OK ")
        await sim_sleep(55)
        assert (await outsider.api("uuid_exists", call)).body.strip() == "true"
        await sim_sleep(7)
        assert (await outsider.api("uuid_exists", call)).body.strip() == "false"
    rig.controller = await start_controller(rig.sim_port, rig.db, rig.recordings)
