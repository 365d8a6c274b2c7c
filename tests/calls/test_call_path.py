"""A citizen's call end to end: simulator, ESL transport, engine, roster, PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from telephony.esl.transport import EslConnection
from tests.calls.conftest import Rig, start_controller


async def test_answered_call_has_a_consistent_cdr_recording_and_timeline(rig: Rig) -> None:
    await rig.add_agent("a1", "1001")
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=1000")
    call_uuid = await rig.call("13800138000", "hangup_after_s=20")

    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert cdr["outcome"] == "answered"
    assert cdr["hotline"] == "12345" and cdr["caller"] == "13800138000"
    assert cdr["agent_id"] == "a1"
    assert cdr["hung_up_by"] == "caller"
    assert cdr["hangup_cause"] == "NORMAL_CLEARING"
    times = [cdr[k] for k in ("arrived_at", "ivr_answered_at", "queued_at", "agent_answered_at")]
    assert all(t is not None for t in times)
    assert times == sorted(times) and times[-1] <= cdr["ended_at"]
    assert cdr["talk_seconds"] > 0 and cdr["wait_seconds"] >= 0

    recordings = await rig.wait_for(
        lambda: rig.fetch(
            "select * from recordings where call_uuid = cast(:u as uuid) and ended_at is not null",
            u=call_uuid,
        )
    )
    assert str(recordings[0]["id"]) == str(cdr["recording_id"])
    assert Path(recordings[0]["path"]) == rig.recordings / f"{call_uuid}.wav"
    assert Path(recordings[0]["path"]).is_file()

    steps = await rig.fetch(
        "select kind from call_events where call_uuid = cast(:u as uuid) order by at", u=call_uuid
    )
    assert [s["kind"] for s in steps] == [
        "arrived",
        "answered",
        "queued",
        "offered",
        "connected",
        "ended",
    ]


async def test_caller_who_waits_for_nobody_is_abandoned_in_queue_with_wait_time(rig: Rig) -> None:
    call_uuid = await rig.call("13800138001", "hangup_after_s=40")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert cdr["outcome"] == "abandoned_in_queue"
    assert cdr["hung_up_by"] == "caller"
    assert cdr["agent_id"] is None and cdr["agent_answered_at"] is None
    assert cdr["wait_seconds"] > 0
    entries = await rig.fetch(
        "select result from queue_entries where call_uuid = cast(:u as uuid)", u=call_uuid
    )
    assert [e["result"] for e in entries] == ["abandoned"]
    registry = rig.controller.calls.metrics.registry
    outcome = {"outcome": "abandoned_in_queue"}
    assert registry.get_sample_value("telephony_call_outcomes_total", outcome) == 1
    assert registry.get_sample_value("telephony_calls_in_progress") == 0
    assert registry.get_sample_value("telephony_queue_length", {"group": "general"}) == 0


async def test_unanswered_offer_moves_on_and_the_agent_goes_busy_no_answer(rig: Rig) -> None:
    await rig.add_agent("a1", "1003")
    await rig.add_agent("a2", "1001")
    rig.sign_in("a1")  # idle longest: offered first
    rig.sign_in("a2")
    await rig.sim_api("phone", "1003", "never")
    await rig.sim_api("phone", "1001", "answer_after_ms=1000")
    call_uuid = await rig.call("13800138002", "hangup_after_s=20")

    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a2"
    a1 = rig.roster.get("a1")
    assert (a1.state.value, a1.reason) == ("busy", "no answer")
    steps = await rig.fetch(
        "select kind, detail from call_events where call_uuid = cast(:u as uuid) order by at",
        u=call_uuid,
    )
    kinds = [s["kind"] for s in steps]
    assert kinds.count("offered") == 2 and "offer_failed" in kinds
    failed = next(s for s in steps if s["kind"] == "offer_failed")
    assert failed["detail"]["agent"] == "a1" and failed["detail"]["cause"] == "NO_ANSWER"


async def test_bridged_call_survives_a_controller_crash_and_its_cdr_is_complete(rig: Rig) -> None:
    await rig.add_agent("a1", "1001")
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=1000")
    call_uuid = await rig.call("13800138003")  # waits for the far end
    await rig.wait_for(
        lambda: rig.fetch(
            "select 1 from calls where uuid = cast(:u as uuid) and agent_answered_at is not null",
            u=call_uuid,
        )
    )

    await rig.restart()

    async def readopted() -> bool:
        call = rig.controller.calls.calls.get(call_uuid)
        return call is not None and call.state.value == "connected"

    await rig.wait_for(readopted)
    assert rig.roster.get("a1").state.value == "in_call"

    await rig.sim_api("hangup", call_uuid)  # the citizen hangs up
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a1"
    assert cdr["hung_up_by"] == "caller"
    assert cdr["arrived_at"] <= cdr["agent_answered_at"] <= cdr["ended_at"]
    assert cdr["recording_id"] is not None


async def test_database_outage_during_calls_loses_no_cdr_and_duplicates_none(rig: Rig) -> None:
    if rig.server is None:
        pytest.skip("only the embedded server can be stopped by the test")
    await rig.add_agent("a1", "1001")
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    await rig.buffer.flushed()

    await asyncio.to_thread(rig.server.stop)
    calls = []
    for n in range(4):
        calls.append(await rig.call(f"1390000000{n}", "hangup_after_s=10"))
    ended = lambda: all(c not in rig.controller.calls.calls for c in calls)  # noqa: E731
    async with asyncio.timeout(20):
        while not ended():
            await asyncio.sleep(0.05)
    assert rig.buffer.depth > 0  # the calls went on; their rows wait
    await asyncio.to_thread(rig.server.restart)

    rows = await rig.wait_for(
        lambda: rig.fetch(
            "select uuid, outcome from calls where uuid = any(cast(:u as uuid[]))"
            " and ended_at is not null",
            u=calls,
        ),
        timeout=30,
    )
    assert sorted(str(r["uuid"]) for r in rows) == sorted(calls)
    assert {r["outcome"] for r in rows} <= {"answered", "abandoned_in_queue"}
    counts = await rig.fetch(
        "select call_uuid, kind, count(*) as n from call_events"
        " where call_uuid = any(cast(:u as uuid[])) group by call_uuid, kind having count(*) > 1",
        u=calls,
    )
    assert counts == []
    arrived = await rig.fetch(
        "select count(*) as n from call_events where kind = 'arrived'"
        " and call_uuid = any(cast(:u as uuid[]))",
        u=calls,
    )
    assert arrived[0]["n"] == len(calls)


async def test_call_parked_while_no_controller_ran_is_picked_up(rig: Rig) -> None:
    await rig.add_agent("a1", "1001")
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    await rig.controller.crash()
    # Nobody drives the switch now: place the call with a connection of our own.
    async with EslConnection(f"esl://:ClueCon@127.0.0.1:{rig.sim_port}") as outsider:
        reply = await outsider.api("sim", "call", "12345", "13800138004", "hangup_after_s=10")
    call_uuid = reply.body.strip().removeprefix("+OK ")
    assert rig.sim.switch.get(call_uuid) is not None  # parked, unanswered

    rig.controller = await start_controller(rig.sim_port, rig.db, rig.recordings)
    rig.sign_in("a1")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a1"
    assert cdr["ivr_answered_at"] is not None


async def test_legs_are_stored_with_their_roles_times_and_dispositions(rig: Rig) -> None:
    await rig.add_agent("a1", "1001")
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    call_uuid = await rig.call("13800138005", "hangup_after_s=5")
    await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    legs = await rig.wait_for(
        lambda: rig.fetch(
            "select role, destination, answered_at, ended_at, hangup_cause, disposition"
            " from call_legs where call_uuid = cast(:u as uuid) and ended_at is not null"
            " order by role",
            u=call_uuid,
        )
    )
    assert [(leg["role"], leg["destination"]) for leg in legs] == [
        ("agent", "1001"),
        ("caller", "12345"),
    ]
    agent, caller = legs
    assert caller["disposition"] == "recv_bye"  # the citizen hung up
    assert agent["disposition"] == "send_bye"  # FreeSWITCH then released the agent
    assert all(leg["answered_at"] <= leg["ended_at"] for leg in legs)


async def test_agents_left_mid_call_by_a_crash_are_released_at_restart(rig: Rig) -> None:
    for agent_id, extension, state in (("a1", "1001", "ringing"), ("a2", "1002", "wrap_up")):
        await rig.add_agent(agent_id, extension)
        async with rig.db.begin() as connection:
            await connection.execute(
                text("update agents set state = :s where id = :i"), {"s": state, "i": agent_id}
            )
    await rig.restart()

    async def released() -> bool:
        return all(rig.roster.get(a).state.value == "available" for a in ("a1", "a2"))

    await rig.wait_for(released)


async def test_a_caller_id_too_long_for_its_column_and_a_gbk_name_lose_no_record(
    rig: Rig,
) -> None:
    await rig.add_agent("a1", "1001")
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    number = "138" + "9" * 90  # longer than the CDR's 64-character column
    # 李娜 in GBK: raw bytes in the event, invalid UTF-8 (JSON and plain alike)
    call_uuid = await rig.call(number, "hangup_after_s=5", "name_hex=c0eec4c8")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["outcome"] == "answered"
    assert cdr["caller"] == number[:64]
    legs = await rig.fetch(
        "select role from call_legs where call_uuid = cast(:u as uuid)", u=call_uuid
    )
    assert sorted(r["role"] for r in legs) == ["agent", "caller"]


@pytest.fixture
async def switch_user_rig(rig: Rig, shared_dir: Path) -> AsyncIterator[Rig]:
    """The rig with a simulated switch running as its own user (uid and gid 499), and a
    recordings folder that user can reach (pytest's tmp_path is private to root)."""
    recordings = shared_dir / "recordings"
    recordings.mkdir()
    await rig.controller.stop()
    rig.recordings = recordings
    rig.controller = await start_controller(rig.sim_port, rig.db, recordings)
    await rig.sim_api("set", "switch_uid", "499")
    await rig.sim_api("set", "switch_gid", "499")
    for n in (1, 2, 3):
        await rig.add_agent(f"a{n}", f"100{n}")
        rig.sign_in(f"a{n}")
        await rig.sim_api("phone", f"100{n}", "answer_after_ms=300")
    yield rig


async def test_recordings_the_switch_cannot_write_are_counted_and_claimed_by_no_cdr(
    switch_user_rig: Rig,
) -> None:
    rig = switch_user_rig
    rig.recordings.chmod(0o755)  # ours alone: a switch running as its own user cannot write
    calls = [await rig.call(f"1380013800{n}", "hangup_after_s=4") for n in range(3)]
    for call_uuid in calls:
        cdr = await rig.wait_for(lambda u=call_uuid: rig.ended_cdr(u), timeout=30)
        assert cdr["outcome"] == "answered"
        assert cdr["recording_id"] is None
        assert cdr["recording_failed"] == "-ERR Cannot record session!"
        assert not (rig.recordings / f"{call_uuid}.wav").exists()
    registry = rig.controller.calls.metrics.registry
    failed = registry.get_sample_value(
        "telephony_recordings_failed_total",
        {"node": rig.esl.node, "reason": "start_failed"},
    )
    assert failed == len(calls)
    assert await rig.fetch("select * from recordings") == []


async def test_every_answered_call_has_a_recording_with_audio_when_the_switch_can_write(
    switch_user_rig: Rig,
) -> None:
    rig = switch_user_rig
    os.chown(rig.recordings, -1, 499)  # the switch's group, as serve prepares the folder
    rig.recordings.chmod(0o2775)
    calls = [await rig.call(f"1380013900{n}", "hangup_after_s=4") for n in range(3)]
    for call_uuid in calls:
        cdr = await rig.wait_for(lambda u=call_uuid: rig.ended_cdr(u), timeout=30)
        rows = await rig.wait_for(
            lambda u=call_uuid: rig.fetch(
                "select * from recordings where call_uuid = cast(:u as uuid)", u=u
            )
        )
        assert str(rows[0]["id"]) == str(cdr["recording_id"]) and cdr["recording_failed"] is None
        assert rows[0]["seconds"] > 0 and rows[0]["size_bytes"] > 44
        assert Path(rows[0]["path"]).stat().st_size == rows[0]["size_bytes"]
