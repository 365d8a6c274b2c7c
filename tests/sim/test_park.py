"""The park loop (switch_ivr_park) and playback terminators, over raw ESL.

Calls to 12399 run the ``park_timer`` capture's dialplan: ``park_timeout=10:
NORMAL_TEMPORARY_FAILURE``, ``hold_music=local_stream://moh``, ``park``. Times are
switch seconds (``Event-Date-Timestamp``); the simulator runs 10 times faster here
(the 10 s timer is 1 s real, so a busy machine does not fire it before a step).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from telephony.sim import Simulator

from .conftest import Ev, RawClient, agent_leg, execute, parked_call

LAB = "12399"
MOH = "local_stream://moh"
TIME_SCALE = 10.0


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, int]]:
    simulator = Simulator("ClueCon", time_scale=TIME_SCALE)
    port = await simulator.start("127.0.0.1", 0)
    try:
        yield simulator, port
    finally:
        await simulator.stop()


def ts(ev: Ev) -> float:
    return int(ev.h["Event-Date-Timestamp"]) / 1_000_000


async def sim_sleep(seconds: float) -> None:
    """Let ``seconds`` of switch time pass."""
    await asyncio.sleep(seconds / TIME_SCALE)


async def start(c: RawClient, uuid: str, app: str, arg: str, event_uuid: str) -> None:
    """``sendmsg execute`` without waiting for the app to end."""
    msg = f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: {app}\n"
    if arg:
        msg += f"execute-app-arg: {arg}\n"
    reply = await c.command(msg + f"Event-UUID: {event_uuid}\n\n")
    assert reply.headers["Reply-Text"] == "+OK"


def completion(c: RawClient, uuid: str, event_uuid: str) -> Ev | None:
    return next(
        (
            e
            for e in c.events(uuid)
            if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.h.get("Application-UUID") == event_uuid
        ),
        None,
    )


async def music(c: RawClient, uuid: str, event_uuid: str = "moh-1") -> None:
    """Answer the parked call and start the hold music (nested in the park)."""
    await execute(c, uuid, "answer")
    await start(c, uuid, "playback", MOH, event_uuid)
    await c.wait_event("PLAYBACK_START", uuid)


def park_event(c: RawClient, uuid: str, n: int = 1) -> Ev:
    return [e for e in c.events(uuid) if e.name == "CHANNEL_PARK"][n - 1]


async def test_star_stops_the_music_and_the_timer_releases_the_call(client: RawClient) -> None:
    """park_timer A: `*` stops the music at once (FILE PLAYED, terminator used), nothing
    runs in the park any more, the timer hangs up 10 s after the park."""
    a = await parked_call(client, dest=LAB)
    await music(client, a)
    assert await client.api(f"sim dtmf {a} *") == "+OK\n"
    await client.wait(lambda: completion(client, a, "moh-1") is not None)
    names = client.names(a)
    assert names[-3:] == ["DTMF", "PLAYBACK_STOP", "CHANNEL_EXECUTE_COMPLETE"]
    dtmf, stop, done = client.events(a)[-3:]
    assert dtmf.h["DTMF-Digit"] == "*"
    assert stop.h["Playback-Status"] == "break"
    assert done.h["Application-Response"] == "FILE PLAYED"
    assert done.h["variable_playback_terminator_used"] == "*"
    assert ts(done) - ts(dtmf) < 0.5
    hangup = await client.wait_event("CHANNEL_HANGUP", a)
    assert hangup.h["Hangup-Cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert 9.0 <= ts(hangup) - ts(park_event(client, a)) <= 10.5
    assert ts(hangup) % 1.0 < 0.5  # on a whole epoch second (expires = now_s + 10)
    await client.wait_event("CHANNEL_DESTROY", a)
    tail = client.events(a)[-4:]
    assert [e.name for e in tail] == [
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    assert tail[1].h["Application"] == "park"
    assert tail[1].h["Application-Response"] == "FILE PLAYED"
    assert tail[2].h["variable_hangup_cause_q850"] == "41"
    assert tail[2].h["variable_sip_hangup_disposition"] == "send_bye"


async def test_playback_terminators_none_keeps_the_music(client: RawClient) -> None:
    """park_timer B: with `none` the `*` is a DTMF event and nothing else; the music
    keeps the call past the deadline; uuid_break after it: hangup as the music ends."""
    b = await parked_call(client, dest=LAB)
    await execute(client, b, "answer")
    assert await client.api(f"uuid_setvar {b} playback_terminators none") == "+OK\n"
    await start(client, b, "playback", MOH, "moh-b")
    await client.wait_event("PLAYBACK_START", b)
    await client.api(f"sim dtmf {b} *")
    await client.wait_event("DTMF", b)
    await sim_sleep(12)
    assert client.names(b)[-2:] == ["PLAYBACK_START", "DTMF"]
    assert await client.api(f"uuid_exists {b}") == "true"
    assert await client.api(f"uuid_break {b} all") == "+OK\n"
    hangup = await client.wait_event("CHANNEL_HANGUP", b)
    done = completion(client, b, "moh-b")
    assert done is not None and done.h["Application-Response"] == "FILE PLAYED"
    assert "variable_playback_terminator_used" not in done.h
    assert hangup.h["Hangup-Cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert ts(hangup) - ts(park_event(client, b)) > 10.0
    assert 0.0 <= ts(hangup) - ts(done) <= 0.5  # the first park loop with no app running


async def test_uuid_break_before_the_deadline_hangs_up_at_the_deadline(client: RawClient) -> None:
    """park_timer C: the gap a pick-up leaves between breaking the music and the bridge."""
    c = await parked_call(client, dest=LAB)
    await music(client, c, "moh-c")
    await sim_sleep(4)
    await client.api(f"uuid_break {c} all")
    await client.wait(lambda: completion(client, c, "moh-c") is not None)
    hangup = await client.wait_event("CHANNEL_HANGUP", c)
    done = completion(client, c, "moh-c")
    assert done is not None
    assert hangup.h["Hangup-Cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert 9.0 <= ts(hangup) - ts(park_event(client, c)) <= 10.5
    assert ts(hangup) - ts(done) >= 3.0


async def test_apps_back_to_back_keep_the_timer_off(client: RawClient) -> None:
    """Queued apps run back to back (switch_ivr_parse_all_events): no timer test between
    them, even past the deadline; it fires one frame after the last one."""
    a = await parked_call(client, dest=LAB)
    await execute(client, a, "answer")
    for n in range(3):
        await start(client, a, "playback", "silence_stream://4000", f"s-{n}")
    hangup = await client.wait_event("CHANNEL_HANGUP", a, timeout=10)
    last = completion(client, a, "s-2")
    assert last is not None and last.h["Application-Response"] == "FILE PLAYED"
    assert ts(hangup) - ts(park_event(client, a)) > 12.0
    assert ts(hangup) - ts(last) <= 0.5


async def test_park_timeout_zero_and_every_park_entry_reads_it(client: RawClient) -> None:
    """park_timeout is read on every entry of switch_ivr_park, also the app-less one in
    CS_PARK; 0 expires at once; with a cause; consumed with park_after_bridge."""
    a = await parked_call(client)  # 12345: the dialplan's park_timeout=60 is consumed
    await execute(client, a, "answer")
    assert await client.api(f"uuid_getvar {a} park_timeout") == "_undef_"
    await client.api(f"uuid_setvar {a} park_after_bridge true")
    await client.api(f"uuid_setvar {a} park_timeout 0:USER_BUSY")
    assert await client.api(f"uuid_park {a}") == "+OK\n"
    hangup = await client.wait_event("CHANNEL_HANGUP", a)
    park = park_event(client, a, 2)
    assert park.h["Channel-State"] == "CS_PARK"
    assert "variable_park_timeout" not in park.h
    assert "variable_park_after_bridge" not in park.h
    assert hangup.h["Hangup-Cause"] == "USER_BUSY"
    assert ts(hangup) - ts(park) < 0.5
    complete = await client.wait_event("CHANNEL_HANGUP_COMPLETE", a)
    assert complete.h["variable_hangup_cause_q850"] == "17"


async def test_negative_park_timeout_arms_nothing_but_is_consumed(client: RawClient) -> None:
    a = await parked_call(client)
    await execute(client, a, "answer")
    await client.api(f"uuid_setvar {a} park_after_bridge true")
    await client.api(f"uuid_setvar {a} park_timeout -1")
    await client.api(f"uuid_park {a}")
    await client.wait_event("CHANNEL_PARK", a, n=2)
    assert await client.api(f"uuid_getvar {a} park_after_bridge") == "_undef_"
    assert await client.api(f"uuid_getvar {a} park_timeout") == "_undef_"
    await sim_sleep(3)
    assert "CHANNEL_HANGUP" not in client.names(a)


async def test_nested_park_is_refused(client: RawClient) -> None:
    """`sendmsg execute park` inside a park: "Cannot park channels that are under control
    already": EXECUTE and EXECUTE_COMPLETE at once, no CHANNEL_PARK, the park goes on."""
    a = await parked_call(client)
    await execute(client, a, "answer")
    done = await execute(client, a, "park", event_uuid="nested-park")
    assert done.h["Application-Response"] == "_none_"
    assert client.names(a)[-2:] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
    assert client.names(a).count("CHANNEL_PARK") == 1
    played = await execute(client, a, "playback", "silence_stream://100")
    assert played.h["Application-Response"] == "FILE PLAYED"
    assert played.h["Channel-State"] == "CS_EXECUTE"


async def test_uuid_park_moves_the_call_to_a_cs_park_park_without_timer(
    sim: tuple[Simulator, int], client: RawClient
) -> None:
    """uuid_park of a dialplan-parked call: the music stops (the channel is not ready),
    the dialplan park completes, CHANNEL_PARK in CS_PARK (no EXECUTE park). No timer: the
    call survives past park_timeout with `*` pressed and the music ended; it bridges."""
    a = await parked_call(client, dest=LAB)
    await music(client, a, "moh-1")
    assert await client.api(f"uuid_park {a}") == "+OK\n"
    park = await client.wait_event("CHANNEL_PARK", a, n=2)
    names = client.names(a)
    assert names[-5:] == [
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_PARK",
    ]
    stop, music_done, park_done = client.events(a)[-4:-1]
    assert stop.h["Playback-Status"] == "done"
    assert music_done.h["Application-Response"] == "PLAYBACK ERROR"
    assert park_done.h["Application"] == "park"
    assert park_done.h["Application-Response"] == "PLAYBACK ERROR"
    assert park_done.h["Channel-State"] == "CS_EXECUTE"
    assert park.h["Channel-State"] == "CS_PARK"
    assert names.count("CHANNEL_EXECUTE") == names.count("CHANNEL_EXECUTE_COMPLETE")
    # Apps run in the new park; the music ends; `*`; well past the deadline, still up.
    assert await client.api("sim set local_stream_ms 1000") == "+OK\n"
    played = await execute(client, a, "playback", MOH, event_uuid="moh-2")
    assert played.h["Application-Response"] == "FILE PLAYED"
    assert played.h["Channel-State"] == "CS_PARK"
    await client.api(f"sim dtmf {a} *")
    await client.wait_event("DTMF", a)
    await sim_sleep(12)
    assert "CHANNEL_HANGUP" not in client.names(a)
    assert await client.api(f"uuid_exists {a}") == "true"
    await client.api("sim phone 1001 answer_after_ms=100")
    b = await agent_leg(client, caller=a)
    assert await client.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    bridge = await client.wait_event("CHANNEL_BRIDGE", a)
    assert bridge.h["Bridge-B-Unique-ID"] == b
    assert sim[0].switch.channels[a].park_expires is None


async def test_uuid_park_while_idle_in_the_dialplan_park(client: RawClient) -> None:
    a = await parked_call(client)
    await execute(client, a, "answer")
    await client.api(f"uuid_park {a}")
    await client.wait_event("CHANNEL_PARK", a, n=2)
    assert client.names(a)[-2:] == ["CHANNEL_EXECUTE_COMPLETE", "CHANNEL_PARK"]
    assert client.events(a)[-2].h["Application-Response"] == "_none_"


async def test_uuid_park_of_a_call_already_in_cs_park_leaves_it_without_a_loop(
    client: RawClient,
) -> None:
    """Already in CS_PARK, set_state(CS_PARK) changes nothing: the loop leaves on
    CF_TRANSFER and the session thread sleeps until the next state change; a queued app
    waits for it (here: the bridge runs it)."""
    a = await parked_call(client)
    await execute(client, a, "answer")
    await client.api(f"uuid_park {a}")
    await client.wait_event("CHANNEL_PARK", a, n=2)
    assert await client.api(f"uuid_park {a}") == "+OK\n"
    await start(client, a, "playback", "silence_stream://100", "waits")
    await sim_sleep(2)
    assert completion(client, a, "waits") is None
    assert client.names(a)[-1] == "CHANNEL_PARK"
    await client.api("sim phone 1001 answer_after_ms=100")
    b = await agent_leg(client, caller=a)
    await client.api(f"uuid_bridge {a} {b}")
    await client.wait_event("CHANNEL_BRIDGE", a)
    await client.wait(lambda: completion(client, a, "waits") is not None)


async def test_uuid_park_of_a_bridged_agent_reparks_it_and_the_caller(client: RawClient) -> None:
    await client.api("sim phone 1001 answer_after_ms=100")
    a = await parked_call(client)
    await execute(client, a, "answer")
    b = await agent_leg(client, caller=a)
    await client.api(f"uuid_setvar {a} park_after_bridge true")
    await client.api(f"uuid_bridge {a} {b}")
    await client.wait_event("CHANNEL_BRIDGE", a)
    assert await client.api(f"uuid_park {b}") == "+OK\n"
    await client.wait_event("CHANNEL_PARK", b, n=2)
    await client.wait_event("CHANNEL_PARK", a, n=2)
    assert "CHANNEL_UNBRIDGE" in client.names(a)
    assert park_event(client, b, 2).h["Channel-State"] == "CS_PARK"
    assert park_event(client, a, 2).h["Channel-State"] == "CS_PARK"


async def test_uuid_park_errors(client: RawClient) -> None:
    assert await client.api("uuid_park 00000000-0000-0000-0000-000000000000") == (
        "-ERR No such channel!\n"
    )
    assert await client.api("uuid_park") == "-USAGE: <uuid>\n"


async def test_other_digits_are_consumed_by_the_playback(client: RawClient) -> None:
    """on_dtmf dequeues every digit: one outside playback_terminators is dropped, not
    left for the next app."""
    a = await parked_call(client)
    await execute(client, a, "answer")
    await client.api(f"uuid_setvar {a} playback_terminators #")
    await start(client, a, "playback", "silence_stream://2000", "p-1")
    await client.wait_event("PLAYBACK_START", a)
    await client.api(f"sim dtmf {a} 5")
    await client.wait_event("DTMF", a)
    await client.wait(lambda: completion(client, a, "p-1") is not None)
    done = completion(client, a, "p-1")
    assert done is not None and "variable_playback_terminator_used" not in done.h
    stop = [e for e in client.events(a) if e.name == "PLAYBACK_STOP"][-1]
    assert stop.h["Playback-Status"] == "done"
    got = await execute(client, a, "read", "1 1 silence_stream://10 got 500 #")
    assert got.h.get("variable_got", "") == ""
    # `any` stops on every digit; `#` here.
    await start(client, a, "playback", "silence_stream://5000", "p-2")
    await client.wait_event("PLAYBACK_START", a, n=3)
    await client.api(f"sim dtmf {a} #")
    await client.wait(lambda: completion(client, a, "p-2") is not None)
    done = completion(client, a, "p-2")
    assert done is not None and done.h["variable_playback_terminator_used"] == "#"


async def test_local_stream_ms_ends_the_hold_music(client: RawClient) -> None:
    assert "local_stream_ms" in await client.api("sim help")
    assert (await client.api("sim set local_stream_ms soon")).startswith("-ERR")
    assert await client.api("sim set local_stream_ms 2000") == "+OK\n"
    a = await parked_call(client, dest=LAB)
    await music(client, a)
    await client.wait(lambda: completion(client, a, "moh-1") is not None)
    done = completion(client, a, "moh-1")
    stop = [e for e in client.events(a) if e.name == "PLAYBACK_STOP"][-1]
    start_ev = [e for e in client.events(a) if e.name == "PLAYBACK_START"][-1]
    assert done is not None and done.h["Application-Response"] == "FILE PLAYED"
    assert stop.h["Playback-Status"] == "done"
    assert 1.9 <= ts(stop) - ts(start_ev) <= 2.5
    hangup = await client.wait_event("CHANNEL_HANGUP", a)
    assert hangup.h["Hangup-Cause"] == "NORMAL_TEMPORARY_FAILURE"


async def test_uuid_bridge_while_the_music_plays_stops_it_first(client: RawClient) -> None:
    """uuid_bridge makes a state change pending: the channel is not ready, the playback
    stops (PLAYBACK ERROR), the park loop leaves, then the bridge events."""
    await client.api("sim phone 1001 answer_after_ms=100")
    a = await parked_call(client)
    await music(client, a, "moh-a")
    b = await agent_leg(client, caller=a)
    assert await client.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    await client.wait_event("CHANNEL_BRIDGE", a)
    tail = [(e.name, e.h.get("Application", "")) for e in client.events(a)][-5:]
    assert tail == [
        ("PLAYBACK_STOP", ""),
        ("CHANNEL_EXECUTE_COMPLETE", "playback"),
        ("CHANNEL_EXECUTE_COMPLETE", "park"),
        ("CHANNEL_EXECUTE", "uuid_bridge"),
        ("CHANNEL_BRIDGE", ""),
    ]
    done = completion(client, a, "moh-a")
    assert done is not None and done.h["Application-Response"] == "PLAYBACK ERROR"
    # Inside the bridge the channel is ready again: a playback plays.
    played = await execute(client, a, "playback", "silence_stream://100")
    assert played.h["Application-Response"] == "FILE PLAYED"


async def test_uuid_transfer_while_the_music_plays_stops_it_first(client: RawClient) -> None:
    a = await parked_call(client)
    await music(client, a, "moh-a")
    assert await client.api(f"uuid_transfer {a} 9998 XML default") == "+OK\n"
    await client.wait_event("CHANNEL_PARK", a, n=2)
    done = completion(client, a, "moh-a")
    assert done is not None and done.h["Application-Response"] == "PLAYBACK ERROR"
    parks = [e for e in client.events(a) if e.h.get("Application") == "park"]
    assert parks[1].name == "CHANNEL_EXECUTE_COMPLETE"
    assert parks[1].h["Application-Response"] == "PLAYBACK ERROR"
