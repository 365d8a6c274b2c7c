"""The engine's rules at the orders of events a real switch gives only sometimes.

Each test drives the engine through a scripted port (tests/calls/scripted.py),
so the order of replies and events is the test's, not the simulator's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from telephony.acd.agent_state import AgentEvent, AgentState
from telephony.calls.adoption import on_connect
from telephony.calls.engine import CallEngine
from telephony.calls.flows import FlowOutcome
from telephony.calls.model import CallState, Outcome
from telephony.esl.port import NodeConnected
from tests.calls.scripted import CALLER, Rig, ScriptedFlows

SECOND = "0f8e6a9e-1111-4c1e-9a6b-000000000002"


async def test_a_new_call_is_taken_out_of_the_dialplan_park_before_anything_else(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.park()
    await rig.until(lambda: rig.port.sent("uuid_park"))
    assert rig.port.apis[0] == ("uuid_park", CALLER)
    assert rig.port.executes == []  # nothing runs in the park that has the timer
    await rig.queued_call()
    assert rig.port.executes[0] == (CALLER, "answer", "")
    marks = dict(
        item.split("=", 1) for c in rig.port.sent("uuid_setvar_multi") for item in c[2].split(";")
    )
    assert marks["playback_terminators"] == "none"  # a `*` does not stop the music
    assert marks["park_after_bridge"] == "true"


async def test_hold_music_that_ends_is_started_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.queued_call()
    rig.port.music_ends(CALLER)
    await rig.until(lambda: rig.port.playing(CALLER), timeout=3)
    music = [e for e in rig.port.executes if e[2] == "local_stream://moh"]
    assert len(music) == 2
    await rig.engine.close()


async def test_a_one_agent_group_serves_its_call_again_after_a_missed_offer(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, "a1")
    rig.sign_in("a1")
    await rig.queued_call()
    first = rig.offered_leg()
    rig.port.job(first, "-ERR NO_ANSWER\n")
    await rig.until(lambda: rig.engine.calls[CALLER].state is CallState.QUEUED)
    assert rig.roster.get("a1").state is AgentState.BUSY  # a missed offer
    rig.roster.apply("a1", AgentEvent.SET_IDLE)
    await rig.settle()
    assert rig.engine.calls[CALLER].state is CallState.QUEUED  # not at once to the same agent
    rig.now += 11  # past reoffer_after_s
    rig.engine.route()
    assert rig.engine.calls[CALLER].state is CallState.OFFERING
    assert rig.offered_leg() != first
    await rig.engine.close()


async def test_calls_behind_a_call_that_failed_every_agent_are_still_served(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, "a1", "a2")
    rig.sign_in("a1")
    await rig.queued_call(CALLER)
    await rig.queued_call(SECOND, "13900139000")
    leg = rig.offered_leg(CALLER)
    rig.port.job(leg, "+OK " + leg)
    rig.port.replies["uuid_bridge"] = lambda _: "-ERR no such channel\n"
    await rig.until(lambda: rig.engine.calls[SECOND].state is CallState.OFFERING)
    # a1 is available again (a bridge failure is not their miss), the head call is not
    # offered to a1 again yet, so a1 takes the next call instead of sitting idle.
    assert rig.engine.calls[CALLER].state is CallState.QUEUED
    assert rig.engine.calls[SECOND].offered_agent == "a1"
    await rig.engine.close()


async def test_a_lost_connection_is_not_a_missed_offer_and_nothing_is_offered_meanwhile(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, "a1", "a2")
    rig.sign_in("a1", "a2")
    await rig.queued_call()
    offered = rig.engine.calls[CALLER].offered_agent
    rig.port.drop()
    await rig.until(lambda: rig.engine.calls[CALLER].state is CallState.QUEUED)
    await rig.settle()
    states = {a.id: a.state for a in rig.roster.agents.values()}
    assert states == {"a1": AgentState.AVAILABLE, "a2": AgentState.AVAILABLE}
    assert offered is not None and len(rig.port.sent("originate")) == 1  # no offer while down
    await rig.engine.close()


async def test_uuid_bridge_ok_is_not_a_bridge_until_the_bridge_event(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "a1")
    rig.sign_in("a1")
    await rig.queued_call()
    leg = await rig.answered()
    await rig.settle()
    assert rig.engine.calls[CALLER].state is CallState.OFFERING  # +OK alone is no bridge
    rig.hangup_complete(leg, "recv_bye")  # the agent's leg dies before CHANNEL_BRIDGE
    call = rig.engine.calls[CALLER]
    assert call.state is CallState.QUEUED and call.agent_answered_at is None
    await rig.until(lambda: rig.port.playing(CALLER))  # the music is back
    assert rig.roster.get("a1").state is AgentState.AVAILABLE
    await rig.engine.close()


async def test_the_bridge_event_connects_the_call(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "a1")
    rig.sign_in("a1")
    await rig.queued_call()
    await rig.connected()
    call = rig.engine.calls[CALLER]
    assert call.state is CallState.CONNECTED and call.agent_id == "a1"
    assert rig.roster.get("a1").state is AgentState.IN_CALL
    await rig.engine.close()


async def test_the_survey_plays_when_the_re_park_comes_before_the_agents_hangup(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, "a1")
    flows = rig.engine.flows = ScriptedFlows(score=5)
    rig.sign_in("a1")
    await rig.queued_call()
    leg = await rig.connected()
    rig.park(CALLER, state="CS_PARK")  # park_after_bridge re-parks the caller first...
    rig.hangup_complete(leg, "recv_bye")  # ...then the agent's leg completes
    await rig.until(lambda: flows.surveyed)
    await rig.until(lambda: rig.port.sent("hangup"))
    rig.hangup_complete(CALLER, "send_bye")
    cdr = rig.rows.last("calls", "uuid", CALLER)
    assert cdr is not None
    assert (cdr["outcome"], cdr["hung_up_by"], cdr["survey_score"]) == ("answered", "agent", 5)
    await rig.engine.close()


@pytest.mark.parametrize("first", ["flow", "hangup"])
async def test_a_caller_who_hangs_up_in_the_ivr_abandoned_it_whatever_the_order(
    tmp_path: Path, first: str
) -> None:
    rig = Rig(tmp_path)
    done = asyncio.Event()

    async def caller_left(uuid: str) -> FlowOutcome:
        await done.wait()
        return FlowOutcome("hangup", reason="caller_hung_up")

    rig.engine.flows = ScriptedFlows(caller_left)
    await rig.taken_call()
    await rig.until(lambda: rig.engine.calls[CALLER].state is CallState.IVR)
    if first == "flow":  # the flow's end is handled before the hangup, or after it
        done.set()
        await rig.settle()
        rig.hangup_complete(CALLER, "recv_bye")
    else:
        rig.hangup_complete(CALLER, "recv_bye")
        done.set()
        await rig.settle()
    cdr = rig.rows.last("calls", "uuid", CALLER)
    assert cdr is not None and cdr["outcome"] == Outcome.ABANDONED_IN_IVR.value


async def test_a_call_the_park_timer_released_is_a_system_loss(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.park()
    await rig.until(lambda: rig.port.sent("uuid_park"))
    rig.hangup_complete(CALLER, "send_bye", "NORMAL_TEMPORARY_FAILURE")
    cdr = rig.rows.last("calls", "uuid", CALLER)
    assert cdr is not None and (cdr["outcome"], cdr["hung_up_by"]) == ("lost", "system")


async def test_an_ivr_transfer_out_does_not_keep_the_citizen_parked_afterwards(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)

    async def transfer(uuid: str) -> FlowOutcome:
        return FlowOutcome("transfer", number="96777")

    rig.engine.flows = ScriptedFlows(transfer)
    await rig.taken_call()
    await rig.until(lambda: rig.port.sent("uuid_transfer"))
    transfer = rig.port.apis.index(rig.port.sent("uuid_transfer")[0])
    before = [
        dict(i.split("=", 1) for i in c[2].split(";"))
        for c in rig.port.apis[:transfer]
        if c[0] == "uuid_setvar_multi"
    ]
    assert before[-1]["park_after_bridge"] == "false"
    assert before[-1]["hangup_after_bridge"] == "true"


async def test_a_channel_parked_during_re_adoption_is_adopted_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    listing = '{"row_count":1,"rows":[{"uuid":"%s","direction":"inbound","state":"CS_EXECUTE"}]}'
    rig.port.replies["show"] = lambda _: listing % CALLER

    def dump(_: tuple[str, ...]) -> str:
        rig.park()  # its CHANNEL_PARK arrives while the dump is on its way
        return (
            f'{{"Unique-ID":"{CALLER}","Call-Direction":"inbound","variable_hotline":"12345",'
            '"Caller-Caller-ID-Number":"13800138000"}'
        )

    rig.port.replies["uuid_dump"] = dump
    await on_connect(rig.engine)
    await rig.settle()
    assert len(rig.port.sent("uuid_park")) == 1
    arrived = [
        w for w in rig.rows.rows if w.table.name == "call_events" and w.row["kind"] == "arrived"
    ]
    assert len(arrived) == 1


async def test_ghost_calls_end_after_a_reconnect_and_free_their_agents(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "a1", "a2")
    rig.sign_in("a1", "a2")
    await rig.queued_call(CALLER)
    await rig.connected(CALLER)
    await rig.queued_call(SECOND, "13900139000")
    ringing = rig.offered_leg(SECOND)
    rig.port.drop()  # both hang up while the connection is down: their events are lost
    await rig.settle()
    rig.port.connected = True
    rig.port.replies["uuid_exists"] = lambda _: "false"
    rig.port.replies["show"] = lambda _: '{"row_count":0}\n'
    await on_connect(rig.engine)
    await rig.settle()
    assert rig.engine.calls == {} and rig.engine.agent_legs == {}
    for uuid in (CALLER, SECOND):
        cdr = rig.rows.last("calls", "uuid", uuid)
        assert cdr is not None and cdr["ended_at"] is not None and cdr["hung_up_by"] == "unknown"
    assert rig.rows.last("calls", "uuid", CALLER)["outcome"] == "answered"  # type: ignore[index]
    assert rig.rows.last("calls", "uuid", SECOND)["outcome"] == "abandoned_in_queue"  # type: ignore[index]
    await rig.until(lambda: rig.roster.get("a1").state is AgentState.AVAILABLE, timeout=2)
    assert rig.roster.get("a2").state is AgentState.AVAILABLE  # the ring was not "no answer"
    assert ringing not in rig.engine.agent_legs
    await rig.engine.close()


async def test_re_adoption_does_not_release_an_agent_talking_on_another_node(
    tmp_path: Path,
) -> None:
    peers: list[CallEngine] = []
    one = Rig(tmp_path, "a1", peers=peers)
    two = Rig(tmp_path, peers=peers)
    two.roster = one.roster
    two.engine.roster = one.roster
    one.sign_in("a1")
    await one.queued_call()
    await one.connected()
    assert one.roster.get("a1").state is AgentState.IN_CALL
    one.port.replies["uuid_exists"] = lambda _: "true"
    for rig in (one, two):
        rig.port.replies["show"] = lambda _: '{"row_count":0}\n'
    await on_connect(two.engine)  # node two knows nothing of a1's call on node one
    await on_connect(one.engine)
    assert one.roster.get("a1").state is AgentState.IN_CALL
    await one.engine.close()



async def test_a_new_connect_replaces_an_adoption_still_running(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    listings: list[tuple[str, ...]] = []

    def show(command: tuple[str, ...]) -> str:
        listings.append(command)
        return '{"row_count":0}\n'

    rig.port.replies["show"] = show
    for reconnect in (False, True):  # a flapping node: two connects before the first is done
        rig.engine.dispatch(NodeConnected(rig.port.node, reconnect=reconnect))
    await rig.until(lambda: rig.engine.adopted_once)
    await rig.settle()
    assert len(listings) == 1
    await rig.engine.close()


async def test_an_ivr_cut_by_a_lost_connection_starts_again_after_the_reconnect(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)

    async def menu(uuid: str) -> FlowOutcome:
        if len(flows.runs) == 1:  # the connection drops in the middle of the menu
            rig.port.drop()
            return FlowOutcome("queue", group="general", reason="channel_error")
        return FlowOutcome("queue", group="consult", priority=2, keys="1")

    flows = rig.engine.flows = ScriptedFlows(menu)
    await rig.taken_call()
    await rig.until(lambda: flows.runs)
    await rig.settle()
    call = rig.engine.calls[CALLER]
    assert call.state is CallState.IVR and not rig.engine.router.queues  # not in `general`
    rig.port.connected = True
    rig.port.replies["uuid_exists"] = lambda _: "true"
    rig.port.replies["show"] = lambda _: '{"row_count":0}\n'
    await on_connect(rig.engine)
    await rig.until(lambda: rig.port.playing(CALLER))
    assert len(flows.runs) == 2
    assert (call.state, call.skill_group, call.priority) == (CallState.QUEUED, "consult", 2)
    await rig.engine.close()


async def test_a_bridged_call_whose_agent_is_stored_in_call_is_adopted_and_hooks_run(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, "a1")
    rig.roster.get("a1").state = AgentState.IN_CALL  # as the killed process stored it
    leg = "0f8e6a9e-1111-4c1e-9a6b-0000000000aa"
    rows = [
        {"uuid": CALLER, "state": "CS_SOFT_EXECUTE"},
        {"uuid": leg, "state": "CS_EXCHANGE_MEDIA"},
    ]
    rig.port.replies["show"] = lambda _: json.dumps({"row_count": 2, "rows": rows})
    dumps = {
        CALLER: {
            "Unique-ID": CALLER,
            "Call-Direction": "inbound",
            "variable_hotline": "12345",
            "variable_tel_state": "connected",
            "variable_tel_agent": "a1",
            "variable_tel_agent_leg": leg,
        },
        leg: {"Unique-ID": leg, "Call-Direction": "outbound", "variable_hotline_call": CALLER},
    }
    rig.port.replies["uuid_dump"] = lambda command: json.dumps(dumps[command[1]])
    probed: list[bool] = []

    async def probe() -> None:
        probed.append(True)

    rig.engine.connect_hooks = [probe]
    await on_connect(rig.engine)
    assert probed and rig.engine.adopted_once
    assert rig.engine.calls[CALLER].state is CallState.CONNECTED
    assert rig.roster.get("a1").state is AgentState.IN_CALL
