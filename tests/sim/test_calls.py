"""Call flows against the simulator, checked for the event order of the real traces."""

from __future__ import annotations

import asyncio

from telephony.esl.serialize import event_plain
from telephony.sim import Simulator
from telephony.sim.apps import prompt_ms
from telephony.sim.server import event_plain_cached

from .conftest import Ev, RawClient, agent_leg, execute, parked_call

PAGD = "1 1 3 5000 # tone_stream://%(200,0,600) silence_stream://250 digit \\d 3000"


async def test_dialplan_parks_ringing_with_hotline_variables(client: RawClient) -> None:
    a = await parked_call(client, dest="12328")
    names = client.names(a)
    assert names[0] == "CHANNEL_CREATE"
    assert names[-2:] == ["CHANNEL_EXECUTE", "CHANNEL_PARK"]
    park = client.events(a)[-1]
    assert park.h["Channel-Call-State"] == "RINGING"
    assert park.h["Answer-State"] == "ringing"
    assert park.h["Channel-State"] == "CS_EXECUTE"
    assert park.h["variable_hotline"] == "12328"
    assert "variable_park_timeout" not in park.h  # park consumed it
    assert park.h["variable_hold_music"] == "tone_stream://%(400,200,425);loops=-1"
    apps = [e.h.get("Application-Data") for e in client.events(a) if e.name == "CHANNEL_EXECUTE"]
    assert apps[2:5] == ["hotline=12328", "park_timeout=60", apps[4]]


async def test_answer_is_progress_media_then_answer_and_nested_apps(client: RawClient) -> None:
    a = await parked_call(client)
    done = await execute(client, a, "answer", event_uuid="ans-1")
    assert done.h["Application-Response"] == "_none_"
    names = client.names(a)
    i = names.index("CHANNEL_PROGRESS_MEDIA")
    assert names[i - 1 : i + 3] == [
        "CHANNEL_EXECUTE",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
    ]
    answer = next(e for e in client.events(a) if e.name == "CHANNEL_ANSWER")
    assert answer.h["Channel-Call-State"] == "EARLY"
    assert done.h["Channel-Call-State"] == "ACTIVE"
    assert done.h["Channel-State"] == "CS_EXECUTE"  # nested inside park
    played = await execute(client, a, "playback", "tone_stream://%(500,0,440)")
    assert played.h["Application-Response"] == "FILE PLAYED"
    assert client.names(a)[-3:] == ["PLAYBACK_START", "PLAYBACK_STOP", "CHANNEL_EXECUTE_COMPLETE"]
    # The dialplan park has not completed: one EXECUTE park, no EXECUTE_COMPLETE park.
    completes = [e.h["Application"] for e in client.events(a) if e.name.endswith("COMPLETE")]
    assert "park" not in completes


async def test_play_and_get_digits_valid_digit(client: RawClient) -> None:
    a = await parked_call(client, "dtmf=1", "dtmf_delay_ms=100")
    await execute(client, a, "answer")
    done = await execute(client, a, "play_and_get_digits", PAGD)
    assert done.h["variable_digit"] == "1"
    assert done.h["variable_read_result"] == "success"
    assert done.h["Application-Response"] == "_none_"
    dtmf = next(e for e in client.events(a) if e.name == "DTMF")
    assert dtmf.h["DTMF-Digit"] == "1" and dtmf.h["DTMF-Source"] == "RTP"
    assert not any(k.startswith("variable_") for k in dtmf.h)


async def test_play_and_get_digits_invalid_then_timeout(client: RawClient) -> None:
    a = await parked_call(client)
    await execute(client, a, "answer")
    arg = "1 1 2 2000 # tone_stream://%(200,0,600) silence_stream://250 choice [12] 1000"
    client.send(
        f"sendmsg {a}\ncall-command: execute\nexecute-app-name: play_and_get_digits\n"
        f"execute-app-arg: {arg}\nEvent-UUID: pagd-1\n\n"
    )
    await client.wait_event("PLAYBACK_START", a)
    assert await client.api(f"sim dtmf {a} 7") == "+OK\n"  # a digit the regex refuses

    def completed() -> list[Ev]:
        return [
            e
            for e in client.events(a)
            if e.h.get("Application-UUID") == "pagd-1" and e.name == "CHANNEL_EXECUTE_COMPLETE"
        ]

    await client.wait(lambda: bool(completed()), 10)
    done = completed()[0]
    assert done.h["variable_read_result"] == "failure"
    assert "variable_choice" not in done.h
    # Two tries: two prompts, and the invalid prompt after each failure.
    starts = [e.h["Playback-File-Path"] for e in client.events(a) if e.name == "PLAYBACK_START"]
    assert starts.count("tone_stream://%(200,0,600)") == 2


async def test_read_collects_until_terminator(client: RawClient) -> None:
    a = await parked_call(client, "dtmf=12#", "dtmf_delay_ms=50")
    await execute(client, a, "answer")
    done = await execute(client, a, "read", "1 4 tone_stream://%(1000,0,440) digits 3000 #")
    assert done.h["variable_digits"] == "12"
    assert done.h["variable_read_result"] == "success"


async def test_caller_hangs_up_during_playback(client: RawClient) -> None:
    """caller_abandons_in_queue: HANGUP, PLAYBACK_STOP, COMPLETE playback and park (ERROR)."""
    a = await parked_call(client, "hangup_after_s=2")
    await execute(client, a, "answer")
    client.send(
        f"sendmsg {a}\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(1000,4000,440);loops=-1\nEvent-UUID: pb-1\n\n"
    )
    await client.wait_event("CHANNEL_DESTROY", a)
    tail = client.events(a)[-6:]
    assert [e.name for e in tail] == [
        "CHANNEL_HANGUP",
        "PLAYBACK_STOP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    assert tail[2].h["Application"] == "playback"
    assert tail[2].h["Application-Response"] == "PLAYBACK ERROR"
    assert tail[3].h["Application"] == "park"
    assert tail[3].h["Application-Response"] == "PLAYBACK ERROR"
    complete = tail[4]
    assert complete.h["variable_sip_hangup_disposition"] == "recv_bye"
    assert complete.h["Hangup-Cause"] == "NORMAL_CLEARING"
    assert [k for k, _ in complete.items].count("Hangup-Cause") == 2


async def test_originate_answered_order_and_cid_swap(client: RawClient) -> None:
    await client.api("sim phone 1001 answer_after_ms=200")
    a = await parked_call(client)
    b = await agent_leg(client, caller=a)
    names = client.names(b)
    assert names == [
        "CHANNEL_CREATE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE",
        "CHANNEL_PARK",
    ]
    events = client.events()
    job_at = next(i for i, e in enumerate(events) if e.name == "BACKGROUND_JOB")
    answer_at = next(i for i, e in enumerate(events) if e.uuid == b and e.name == "CHANNEL_ANSWER")
    park_at = next(i for i, e in enumerate(events) if e.uuid == b and e.name == "CHANNEL_EXECUTE")
    assert answer_at < job_at < park_at
    create = client.events(b)[0]
    assert create.h["variable_hotline_call"] == a
    assert create.h["Caller-Caller-ID-Number"] == "12345"
    park = client.events(b)[-1]
    assert park.h["Caller-Caller-ID-Number"] == "1001"
    assert park.h["Caller-Caller-ID-Name"] == "Outbound Call"
    job = events[job_at]
    assert job.h["Job-Command"] == "originate"
    assert job.body == f"+OK {b}\n"


async def test_originate_no_answer(client: RawClient) -> None:
    await client.api("sim phone 1003 answer_after_ms=never")
    client.send(
        "bgapi originate {origination_caller_id_number=12345,originate_timeout=5}user/1003 "
        "&park()\nJob-UUID: j-na\n\n"
    )
    job = await client.wait_event("BACKGROUND_JOB", timeout=10)
    assert job.body == "-ERR NO_ANSWER\n"
    b = next(e.uuid for e in client.events() if e.name == "CHANNEL_CREATE")
    await client.wait_event("CHANNEL_DESTROY", b)
    assert client.names(b) == [
        "CHANNEL_CREATE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    events = client.events()
    order = [e.name for e in events if e.uuid == b or e.name == "BACKGROUND_JOB"]
    assert order.index("BACKGROUND_JOB") == order.index("CHANNEL_HANGUP") + 1
    complete = client.events(b)[-2]
    assert complete.h["Hangup-Cause"] == "NO_ANSWER"
    assert complete.h["variable_sip_hangup_disposition"] == "send_cancel"
    assert complete.h["variable_hangup_cause_q850"] == "19"


async def test_originate_unregistered_and_rejected(client: RawClient) -> None:
    body = await client.api("originate {origination_caller_id_number=12345}user/1004 &park()")
    assert body == "-ERR USER_NOT_REGISTERED\n"
    assert client.events() == []
    await client.api("sim phone 1005 reject")
    body = await client.api("originate user/1005 &park()")
    assert body == "-ERR CALL_REJECTED\n"


async def _bridged(client: RawClient, *, park_after_bridge: bool) -> tuple[str, str]:
    await client.api("sim phone 1001 answer_after_ms=100")
    a = await parked_call(client)
    await execute(client, a, "answer")
    b = await agent_leg(client, caller=a)
    if park_after_bridge:
        assert await client.api(f"uuid_setvar {a} park_after_bridge true") == "+OK\n"
    mark = len(client.frames)
    assert await client.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    await client.wait_event("CHANNEL_BRIDGE", a)
    after = client.frames[mark:]
    assert after[0].ctype == "api/response"  # the reply comes before the bridge events
    return a, b


async def test_uuid_bridge_event_order(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    tail = [
        (e.name, "A" if e.uuid == a else "B", e.h.get("Application", ""))
        for e in client.events()
        if e.uuid in (a, b)
    ][-5:]
    assert tail == [
        ("CHANNEL_EXECUTE_COMPLETE", "A", "park"),
        ("CHANNEL_EXECUTE_COMPLETE", "B", "park"),
        ("CHANNEL_EXECUTE", "A", "uuid_bridge"),
        ("CHANNEL_EXECUTE", "B", "uuid_bridge"),
        ("CHANNEL_BRIDGE", "A", ""),
    ]
    bridge = client.events(a)[-1]
    assert bridge.h["Bridge-A-Unique-ID"] == a and bridge.h["Bridge-B-Unique-ID"] == b
    assert bridge.h["Other-Type"] == "originatee"
    assert bridge.h["Channel-State"] == "CS_SOFT_EXECUTE"
    pseudo = [e for e in client.events() if e.h.get("Application") == "uuid_bridge"]
    assert all("Application-UUID" not in e.h for e in pseudo)
    assert "CHANNEL_BRIDGE" not in client.names(b)
    assert await client.api(f"uuid_getvar {b} call_uuid") == a
    assert await client.api(f"uuid_getvar {a} no_such_var") == "_undef_"
    rows = await client.api("show calls as json")
    assert f'"b_uuid":"{b}"' in rows


async def test_hold_plays_music_to_the_partner(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    mark = len(client.frames)
    assert await client.api(f"uuid_hold {a}") == "+OK Success\n"
    got = [(f.ctype, f.body) for f in client.frames[mark:]]
    assert got[-1] == ("api/response", b"+OK Success\n")  # after HOLD and PLAYBACK_START
    assert client.names(a)[-1] == "CHANNEL_HOLD"
    assert client.names(b)[-2:] == ["CHANNEL_EXECUTE", "PLAYBACK_START"]
    assert client.events(a)[-1].h["Channel-Call-State"] == "HELD"
    assert await client.api(f"uuid_hold off {a}") == "+OK Success\n"
    assert client.names(b)[-2:] == ["PLAYBACK_STOP", "CHANNEL_EXECUTE_COMPLETE"]
    assert client.events(b)[-1].h["Application-Response"] == "FILE PLAYED"
    assert client.names(a)[-1] == "CHANNEL_UNHOLD"


async def test_park_after_bridge_keeps_the_caller(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    assert await client.api(f"uuid_kill {b}") == "+OK\n"
    await client.wait_event("CHANNEL_DESTROY", b)
    await client.wait_event("CHANNEL_PARK", a, n=2)
    order = [(e.name, "A" if e.uuid == a else "B") for e in client.events() if e.uuid in (a, b)][
        -5:
    ]
    assert order == [
        ("CHANNEL_HANGUP", "B"),
        ("CHANNEL_HANGUP_COMPLETE", "B"),
        ("CHANNEL_UNBRIDGE", "A"),
        ("CHANNEL_PARK", "A"),
        ("CHANNEL_DESTROY", "B"),
    ]
    park = client.events(a)[-1]
    assert park.h["Channel-State"] == "CS_PARK"
    assert client.events(b)[-2].h["variable_sip_hangup_disposition"] == "send_bye"
    done = await execute(client, a, "playback", "silence_stream://100")
    assert done.h["Channel-State"] == "CS_PARK"
    assert await client.api(f"uuid_exists {a}") == "true"


async def test_without_park_after_bridge_the_caller_hangs_up(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=False)
    await client.api(f"uuid_kill {b}")
    await client.wait_event("CHANNEL_DESTROY", a)
    order = [(e.name, "A" if e.uuid == a else "B") for e in client.events() if e.uuid in (a, b)][
        -7:
    ]
    assert order == [
        ("CHANNEL_HANGUP", "B"),
        ("CHANNEL_HANGUP_COMPLETE", "B"),
        ("CHANNEL_UNBRIDGE", "A"),
        ("CHANNEL_HANGUP", "A"),
        ("CHANNEL_DESTROY", "B"),
        ("CHANNEL_HANGUP_COMPLETE", "A"),
        ("CHANNEL_DESTROY", "A"),
    ]
    assert client.events(a)[-3].name == "CHANNEL_HANGUP"
    assert client.events(a)[-3].h["Channel-State"] == "CS_EXECUTE"


async def test_caller_bye_while_bridged_tears_down_the_agent(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    assert await client.api(f"sim hangup {a}") == "+OK\n"
    await client.wait_event("CHANNEL_DESTROY", a)
    order = [(e.name, "A" if e.uuid == a else "B") for e in client.events() if e.uuid in (a, b)][
        -7:
    ]
    assert order == [
        ("CHANNEL_HANGUP", "A"),
        ("CHANNEL_HANGUP", "B"),
        ("CHANNEL_HANGUP_COMPLETE", "B"),
        ("CHANNEL_UNBRIDGE", "A"),
        ("CHANNEL_DESTROY", "B"),
        ("CHANNEL_HANGUP_COMPLETE", "A"),
        ("CHANNEL_DESTROY", "A"),
    ]
    disposition = {
        e.uuid: e.h["variable_sip_hangup_disposition"]
        for e in client.events()
        if e.name == "CHANNEL_HANGUP_COMPLETE"
    }
    assert disposition == {a: "recv_bye", b: "send_bye"}


async def test_record_start_stop(client: RawClient, tmp_path: object) -> None:
    a, _b = await _bridged(client, park_after_bridge=True)
    path = f"{tmp_path}/rec-{a}.wav"
    assert await client.api(f"uuid_record {a} start {path}") == "+OK Success\n"
    start = await client.wait_event("RECORD_START", a)
    assert start.h["Record-File-Path"] == path
    await asyncio.sleep(0.05)
    assert await client.api(f"uuid_record {a} stop all") == "+OK Success\n"
    stop = await client.wait_event("RECORD_STOP", a)
    assert int(stop.h["variable_record_seconds"]) >= 1


async def test_transfer_both_to_9998_and_back_to_a_hotline(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    assert await client.api(f"uuid_transfer {a} -both 9998 XML default") == "+OK\n"
    await client.wait_event("CHANNEL_PARK", b, n=2)
    unbridge = next(e for e in client.events(a) if e.name == "CHANNEL_UNBRIDGE")
    assert "Other-Type" not in unbridge.h
    assert unbridge.h["Caller-Destination-Number"] == "9998"
    assert client.events(a)[-1].h["variable_transfer_history"].endswith(":bl_xfer:9998/default/XML")
    await client.api(f"uuid_bridge {a} {b}")
    await client.wait_event("CHANNEL_BRIDGE", a, n=2)
    assert await client.api(f"uuid_transfer {a} 12315 XML public") == "+OK\n"
    await client.wait_event("CHANNEL_PARK", a, n=3)
    park = client.events(a)[-1]
    assert park.h["variable_hotline"] == "12315"
    assert "variable_park_after_bridge" not in park.h  # park with park_timeout cleared it
    assert client.names(b)[-1] == "CHANNEL_DESTROY"


async def test_eavesdrop_events_only_on_the_listener(client: RawClient) -> None:
    a, b = await _bridged(client, park_after_bridge=True)
    await client.api("sim phone 1002 answer_after_ms=100")
    before = len(client.events(a)) + len(client.events(b))
    client.send(
        f"bgapi originate {{origination_caller_id_number=12345}}user/1002 &eavesdrop({b})\n\n"
    )
    job = await client.wait_event("BACKGROUND_JOB", n=2)
    c = (job.body or "").split()[1]
    await client.wait_event("CHANNEL_EXECUTE", c)
    await client.api(f"uuid_kill {c}")
    await client.wait_event("CHANNEL_DESTROY", c)
    assert client.names(c)[-4:] == [
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    assert len(client.events(a)) + len(client.events(b)) == before


async def test_park_timeout_hangs_up_an_orphan(sim: tuple[Simulator, int]) -> None:
    simulator, port = sim
    simulator.clock.time_scale = 200.0  # 60 simulated seconds in 0.3 s
    c = await RawClient.connect(port)
    await c.wait(lambda: bool(c.frames))
    await c.command("auth ClueCon")
    await c.command("event plain CHANNEL_PARK CHANNEL_HANGUP")
    a = await parked_call(c)
    hangup = await c.wait_event("CHANNEL_HANGUP", a, timeout=5)
    assert hangup.h["Hangup-Cause"] == "NORMAL_CLEARING"
    await c.close()


def test_prompt_durations() -> None:
    assert prompt_ms("tone_stream://%(500,0,440)", 2000) == 500
    assert prompt_ms("tone_stream://%(400,200,425);loops=3", 2000) == 1800
    assert prompt_ms("tone_stream://%(400,200,425);loops=-1", 2000) is None
    assert prompt_ms("silence_stream://250", 2000) == 250
    assert prompt_ms("/sounds/welcome.wav", 2000) == 2000
    assert prompt_ms("file_string://silence_stream://100!tone_stream://%(50,50,1)", 0) == 200


def test_cached_plain_serializer_is_byte_exact() -> None:
    headers = [
        ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
        ("Hangup-Cause", "NORMAL_CLEARING"),
        ("Hangup-Cause", "NORMAL_CLEARING"),
        ("variable_x", 'a b:%"\n中'),
    ]
    assert event_plain_cached(headers) == event_plain(headers)
    assert event_plain_cached(headers, "+OK x\n") == event_plain(headers, "+OK x\n")


async def test_uuid_break_stops_the_playback(client: RawClient) -> None:
    a = await parked_call(client)
    await execute(client, a, "answer")
    client.send(
        f"sendmsg {a}\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(1000,0,440);loops=-1\nEvent-UUID: long-1\n\n"
    )
    await client.wait_event("PLAYBACK_START", a)
    assert await client.api(f"uuid_break {a}") == "+OK\n"
    stop = await client.wait_event("PLAYBACK_STOP", a)
    assert stop.h["Playback-Status"] == "break"
    done = await client.wait_event("CHANNEL_EXECUTE_COMPLETE", a, n=7)
    assert done.h["Application-UUID"] == "long-1"
    assert done.h["Application-Response"] == "FILE PLAYED"


async def test_all_events_include_state_callstate(sim: tuple[Simulator, int]) -> None:
    c = await RawClient.connect(sim[1])
    await c.wait(lambda: bool(c.frames))
    await c.command("auth ClueCon")
    await c.command("event plain ALL")
    a = await parked_call(c)
    names = c.names(a)
    assert names[:3] == ["CHANNEL_STATE", "CHANNEL_CREATE", "CHANNEL_CALLSTATE"]
    callstate = c.events(a)[2]
    assert callstate.h["Original-Channel-Call-State"] == "DOWN"
    assert callstate.h["Channel-Call-State"] == "RINGING"
    states = [e.h["Channel-State"] for e in c.events(a) if e.name == "CHANNEL_STATE"]
    assert states == ["CS_INIT", "CS_ROUTING", "CS_EXECUTE"]
    seqs = [int(e.h["Event-Sequence"]) for e in c.events()]
    assert seqs == sorted(seqs)
    await c.close()


async def test_sim_calls_places_count_calls_at_a_rate() -> None:
    """`sim calls` (for load runs): every call is created and parks, callers numbered."""
    simulator = Simulator("ClueCon", time_scale=20.0)
    port = await simulator.start("127.0.0.1", 0)
    client = await RawClient.connect(port)
    try:
        await client.wait(lambda: bool(client.frames))
        await client.command("auth ClueCon")
        await client.command("event plain CHANNEL_PARK")
        reply = await client.api("sim calls 30 10 12345 139")
        assert reply.strip() == "+OK 30"
        await client.wait(
            lambda: sum(1 for e in client.decoded if e.name == "CHANNEL_PARK") >= 30, 20
        )
        callers = {e.h["Caller-Caller-ID-Number"] for e in client.decoded}
        assert callers == {f"139{n:06d}" for n in range(30)}
        assert "-ERR" in await client.api("sim calls 0 10 12345 139")
    finally:
        await client.close()
        await simulator.stop()
