"""Attended transfer, eavesdrop modes and outbound dispositions over raw ESL (README i-k
of ``shared/freeswitch``): what a controller and an engine test can read from the simulator."""

from __future__ import annotations

import asyncio

import orjson

from telephony.sim import Simulator

from .conftest import RawClient, agent_leg, parked_call


async def _bridged(c: RawClient) -> tuple[str, str]:
    """A caller bridged to agent 1001 with park_after_bridge=true: (caller, agent)."""
    await c.api("sim phone 1001 answer_after_ms=200")
    a = await parked_call(c)
    await c.api(f"uuid_setvar {a} park_after_bridge true")
    b = await agent_leg(c, "1001", a)
    assert await c.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    await c.wait_event("CHANNEL_BRIDGE", a)
    return a, b


async def _eavesdrops(c: RawClient, uuid: str) -> list[dict[str, object]]:
    rows = orjson.loads(await c.api(f"sim eavesdrop {uuid}"))["eavesdrops"]
    assert isinstance(rows, list)
    return rows


async def _rows_of(c: RawClient, uuid: str) -> list[dict[str, object]]:
    """``sim eavesdrop`` once the eavesdrop has started."""
    for _ in range(200):
        rows = await _eavesdrops(c, uuid)
        if rows:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"no eavesdrop on {uuid}")


async def test_consult_then_complete_and_cancel(client: RawClient) -> None:
    c = client
    a, b = await _bridged(c)
    await c.api("sim phone 1002 answer_after_ms=200")
    consult = await agent_leg(c, "1002", a, job="job-2")
    assert await c.api(f"uuid_bridge {b} {consult}") == f"+OK {consult}\n"
    await c.wait_event("CHANNEL_BRIDGE", b)
    assert c.names(a)[-2:] == ["CHANNEL_UNBRIDGE", "CHANNEL_PARK"]
    # Complete: the caller takes the consulted leg; the agent, without park_after_bridge, goes.
    assert await c.api(f"uuid_bridge {a} {consult}") == f"+OK {consult}\n"
    await c.wait_event("CHANNEL_DESTROY", b)
    await c.wait(lambda: c.names(a).count("CHANNEL_BRIDGE") == 2)
    assert c.names(b)[-4:] == [
        "CHANNEL_UNBRIDGE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    # A second consult (consult -> d), cancelled: d hangs up before its originator's UNBRIDGE.
    d = await agent_leg(c, "1001", a, job="job-3")
    await c.api(f"uuid_bridge {consult} {d}")
    await c.wait_event("CHANNEL_BRIDGE", consult)
    await c.api(f"uuid_bridge {a} {consult}")
    await c.wait_event("CHANNEL_DESTROY", d)
    tail = [e.name for e in c.events() if e.uuid in (d, consult)][-5:]
    assert tail[:3] == ["CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_UNBRIDGE"]
    assert await c.api(f"uuid_exists {a}") == "true"


async def test_eavesdrop_modes_follow_the_supervisor_digits(client: RawClient) -> None:
    c = client
    a, b = await _bridged(c)
    await c.api("sim phone 1002 answer_after_ms=200")
    job = "job-sup"
    await c.command(
        f"bgapi originate {{hotline_call={a}}}user/1002 &eavesdrop({b})\nJob-UUID: {job}"
    )
    await c.wait(lambda: any(e.h.get("Job-UUID") == job for e in c.events()), 10)
    body = next(e for e in c.events() if e.h.get("Job-UUID") == job).body
    assert body is not None
    s = body.split()[1]
    await c.wait_event("CHANNEL_EXECUTE", s)
    before = {a: len(c.events(a)), b: len(c.events(b))}
    [row] = await _eavesdrops(c, s)
    assert (row["mode"], row["target"], row["target_partner"]) == ("listen", b, a)
    assert row["heard_by"] == [] and row["hears"] == [b, a]
    for digit, mode, heard_by in (
        ("2", "whisper", [b]),
        ("1", "talk_to_partner", [a]),
        ("3", "barge", [b, a]),
        ("0", "listen", []),
    ):
        assert await c.api(f"uuid_recv_dtmf {s} {digit}") == f"+OK {s} received DTMF {digit}.\n"
        await c.wait(lambda d=digit: any(e.h.get("DTMF-Digit") == d for e in c.events(s)))
        [row] = await _eavesdrops(c, b)  # the same row, seen from the target
        assert (row["mode"], row["heard_by"]) == (mode, heard_by)
    dtmf = [e for e in c.events(s) if e.name == "DTMF"]
    assert {e.h["DTMF-Source"] for e in dtmf} == {"APP"} and dtmf[0].h["DTMF-Duration"] == "2000"
    await c.api(f"uuid_recv_dtmf {s} *")  # stop: the app returns and the one-shot leg ends
    await c.wait_event("CHANNEL_DESTROY", s)
    assert await _eavesdrops(c, b) == []
    assert {a: len(c.events(a)), b: len(c.events(b))} == before  # nothing on the call's legs
    assert (await c.api("uuid_recv_dtmf nope 1")) == "-ERR Cannot locate session!\n"
    assert (await c.api("uuid_recv_dtmf")) == "-USAGE: <uuid> <dtmf_data>\n"


async def test_whisper_variables_and_three_way(
    sim: tuple[Simulator, int], client: RawClient
) -> None:
    c = client
    a, b = await _bridged(c)
    await c.api("sim phone 1002 answer_after_ms=200")
    await c.command(
        "bgapi originate {eavesdrop_whisper_aleg=true,eavesdrop_enable_dtmf=false}"
        f"user/1002 &eavesdrop({b})\nJob-UUID: j-w"
    )
    [row] = await _rows_of(c, b)
    assert (row["mode"], row["dtmf"]) == ("talk_to_partner", False)
    listener = str(row["listener"])
    await c.api(f"uuid_recv_dtmf {listener} 0")  # no ED_DTMF: queued, no event, no change
    await asyncio.sleep(0.1)
    assert (await _eavesdrops(c, b))[0]["mode"] == "talk_to_partner"
    assert not [e for e in c.events(listener) if e.name == "DTMF"]
    channel = sim[0].switch.get(listener)
    assert channel is not None and channel.eavesdrop is not None
    assert channel.eavesdrop.mode == "talk_to_partner"
    await c.api(f"uuid_kill {listener}")
    await c.wait_event("CHANNEL_DESTROY", listener)
    e = await agent_leg(c, "1002", a, job="j-3w")
    await c.command(
        f"sendmsg {e}\ncall-command: execute\nexecute-app-name: three_way\n"
        f"execute-app-arg: {b}\nEvent-UUID: ev-3w\n"
    )
    rows = await _rows_of(c, e)
    assert [(r["mode"], r["dtmf"]) for r in rows] == [("barge", False)]


async def _callback(c: RawClient, number: str, job: str, gateway: str = "carrier") -> str:
    """The BACKGROUND_JOB body of an outbound call from the hotline number."""
    await c.command(
        f"bgapi originate {{origination_uuid=cb-{job},origination_caller_id_number=12345,"
        f"originate_timeout=6}}sofia/gateway/{gateway}/{number} &park()\nJob-UUID: {job}"
    )
    await c.wait(lambda: any(e.h.get("Job-UUID") == job for e in c.events()), 10)
    body = next(e for e in c.events() if e.h.get("Job-UUID") == job).body
    assert body is not None
    return body


async def test_outbound_dispositions(client: RawClient) -> None:
    c = client
    for number, spec in (
        ("13800138002", "busy"),
        ("13800138003", "no_answer"),
        ("13800138004", "reject"),
        ("13800138005", "not_found"),
        ("13800138006", "answer answer_after_ms=500 hangup_after_s=4"),
    ):
        assert await c.api(f"sim citizen {number} {spec}") == "+OK\n"
    assert await c.api("sim citizen 1 dance") == "-ERR unknown citizen behaviour 'dance'\n"
    for number, job, cause, q850, status, phrase in (
        ("13800138002", "busy", "USER_BUSY", "17", "486", "Busy Here"),
        ("13800138004", "reject", "CALL_REJECTED", "21", "603", "Decline"),
        ("13800138005", "nf", "UNALLOCATED_NUMBER", "1", "404", "Not Found"),
    ):
        assert await _callback(c, number, job) == f"-ERR {cause}\n"
        uid = f"cb-{job}"
        await c.wait_event("CHANNEL_DESTROY", uid)
        names = [e.name for e in c.events() if e.uuid == uid or e.h.get("Job-UUID") == job]
        assert names == [
            "CHANNEL_CREATE",
            "CHANNEL_ORIGINATE",
            "CHANNEL_HANGUP",
            "CHANNEL_HANGUP_COMPLETE",
            "BACKGROUND_JOB",
            "CHANNEL_DESTROY",
        ]
        done = next(e for e in c.events(uid) if e.name == "CHANNEL_HANGUP_COMPLETE")
        assert done.h["variable_hangup_cause_q850"] == q850
        assert done.h["variable_sip_hangup_disposition"] == "recv_refuse"
        # The final response's variables are there from CHANNEL_HANGUP on (in CS_CONSUME_MEDIA).
        hangup = next(e for e in c.events(uid) if e.name == "CHANNEL_HANGUP")
        assert hangup.h["Channel-State"] == "CS_CONSUME_MEDIA"
        assert hangup.h["Caller-Network-Addr"] == "127.0.0.1"
        assert hangup.h["variable_sip_gateway_name"] == "carrier"
        assert hangup.h["variable_sip_invite_failure_status"] == status
        assert hangup.h["variable_sip_invite_failure_phrase"] == phrase
        assert hangup.h["variable_sip_term_status"] == status
        assert hangup.h["variable_proto_specific_hangup_cause"] == f"sip:{status}"
        assert hangup.h["variable_sip_term_cause"] == q850
    assert await _callback(c, "13800138003", "na") == "-ERR NO_ANSWER\n"
    await c.wait_event("CHANNEL_DESTROY", "cb-na")
    names = [e.name for e in c.events() if e.uuid == "cb-na" or e.h.get("Job-UUID") == "na"]
    assert names[2:] == [
        "CHANNEL_PROGRESS",
        "CHANNEL_HANGUP",
        "BACKGROUND_JOB",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    na = {e.name: e for e in c.events("cb-na")}
    assert na["CHANNEL_HANGUP_COMPLETE"].h["variable_sip_invite_failure_status"] == "487"
    assert na["CHANNEL_HANGUP_COMPLETE"].h["variable_sip_invite_failure_phrase"] == "CANCEL"
    # originate_timeout=6 counts whole epoch seconds: 5-6 s after the create, on a second.
    created = int(na["CHANNEL_CREATE"].h["Event-Date-Timestamp"])
    gave_up = int(na["CHANNEL_HANGUP"].h["Event-Date-Timestamp"])
    assert 5_000_000 <= gave_up - created <= 6_500_000
    assert gave_up % 1_000_000 < 500_000
    assert await _callback(c, "13800138006", "ans") == "+OK cb-ans\n"
    await c.wait_event("CHANNEL_PARK", "cb-ans")
    await c.wait_event(
        "CHANNEL_DESTROY",
        "cb-ans",
    )
    hangup = next(e for e in c.events("cb-ans") if e.name == "CHANNEL_HANGUP_COMPLETE")
    assert hangup.h["variable_sip_hangup_disposition"] == "recv_bye"
    bye = next(e for e in c.events("cb-ans") if e.name == "CHANNEL_HANGUP")
    assert bye.h["variable_sip_term_status"] == "200"
    assert bye.h["variable_proto_specific_hangup_cause"] == "sip:200"
    assert bye.h["variable_sip_term_cause"] == "16"
    assert await _callback(c, "13800138001", "gw", gateway="nowhere") == "-ERR INVALID_GATEWAY\n"
    assert not c.events("cb-gw")
