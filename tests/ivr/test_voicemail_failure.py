"""A voice message that cannot be recorded: the caller is told, the flow goes on at the fallback.

FreeSWITCH's ``record`` hangs the channel up (DESTINATION_OUT_OF_ORDER) when it
cannot open its file (``switch_ivr_record_file``), so the live channel asks
the node's recording probe first; when ``record`` fails anyway, the result
still says the message failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telephony.esl.messages import Event
from telephony.esl.transport import EslConnection
from telephony.ivr.check import check_set
from telephony.ivr.interpreter import (
    CallerHungUp,
    Hangup,
    Queue,
    Recording,
    RecordingFailed,
    Voicemail,
    run_flow,
)
from telephony.ivr.live import LiveChannel, record_open_failed
from telephony.ivr.loader import load_folder
from telephony.ivr.service import IvrService, IvrSettings
from telephony.ivr.simulated import SimulatedChannel
from telephony.recording.probe import RecordingHealth, probe_recording
from telephony.sim import Simulator
from tests.ivr.conftest import EXAMPLES, FlowFolder, at, simulate

REASON = "-ERR Cannot record session! (the switch cannot record into /r/voicemail)"
SWITCH = 499

FLOW = """\
hotlines: ["12399"]
start: message
nodes:
  message:
    type: voicemail
    prompt: prompts/hello.wav
    mailbox: night
    goodbye: prompts/bye.wav
    failed_prompt: prompts/invalid.wav
    fallback: agent
  agent: {type: queue, group: consult, prompt: prompts/menu.wav}
"""


async def test_a_message_known_to_fail_is_told_then_the_fallback(folder: FlowFolder) -> None:
    folder.write("night", FLOW)
    result, channel = await simulate(folder.load(), "night", voicemail_fails=REASON)
    assert result.action == Queue("consult", 0)
    assert result.voicemail_failed == REASON
    played = [p.label for p in channel.played]
    assert played == ["prompts/invalid.wav", "prompts/menu.wav"]  # not "leave a message"
    assert channel.recordings == []
    failed = [s for s in result.steps if s.kind == "voicemail_failed"]
    assert len(failed) == 1 and REASON in failed[0].detail
    assert not [s for s in result.steps if s.kind == "error"]  # not a channel error


async def test_without_a_fallback_the_call_is_hung_up_with_the_reason(
    folder: FlowFolder,
) -> None:
    folder.write("night", FLOW.replace("    fallback: agent\n", ""))
    result, channel = await simulate(folder.load(), "night", voicemail_fails=REASON)
    assert result.action == Hangup("voicemail_failed")
    assert result.voicemail_failed == REASON
    assert [p.label for p in channel.played] == ["prompts/invalid.wav"]


async def test_a_message_that_records_has_no_failure(folder: FlowFolder) -> None:
    folder.write("night", FLOW)
    result, _ = await simulate(folder.load(), "night")
    assert isinstance(result.action, Voicemail)
    assert result.voicemail_failed is None


class _Failing(SimulatedChannel):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def record(self, mailbox: str, max_seconds: int, beep: bool) -> Recording | None:
        raise self.error


async def test_a_recording_that_fails_while_the_call_stays_goes_to_the_fallback(
    folder: FlowFolder,
) -> None:
    folder.write("night", FLOW)
    channel = _Failing(RecordingFailed("no audio"))
    result = await run_flow(folder.load(), "night", channel)
    assert result.action == Queue("consult", 0)
    assert result.voicemail_failed == "no audio"
    assert [p.label for p in channel.played] == [
        "prompts/hello.wav",
        "prompts/invalid.wav",
        "prompts/menu.wav",
    ]


async def test_a_recording_the_switch_ended_by_hanging_up_says_so(folder: FlowFolder) -> None:
    folder.write("night", FLOW)
    channel = _Failing(RecordingFailed("the switch cannot write /r/voicemail", hung_up=True))
    result = await run_flow(folder.load(), "night", channel)
    assert result.action == Hangup("voicemail_failed")
    assert result.voicemail_failed == "the switch cannot write /r/voicemail"
    assert [p.label for p in channel.played] == ["prompts/hello.wav"]  # nothing after


async def test_the_caller_leaving_during_the_failure_prompt_keeps_the_reason(
    folder: FlowFolder,
) -> None:
    class Leaves(SimulatedChannel):
        async def play(self, prompt: object) -> None:
            raise CallerHungUp()

    folder.write("night", FLOW)
    channel = Leaves(voicemail_fails=REASON)
    result = await run_flow(folder.load(), "night", channel)
    assert result.action == Hangup("caller_hung_up")
    assert result.voicemail_failed == REASON


def test_check_follows_and_warns_about_the_fallback(folder: FlowFolder) -> None:
    folder.write("night", FLOW)
    assert [str(d) for d in check_set(folder.load())] == []
    folder.write("night", FLOW.replace("fallback: agent", "fallback: nowhere"))
    flow_set, _ = load_folder(folder.root)
    errors = [d.message for d in check_set(flow_set) if d.is_error]
    assert "unknown node 'nowhere' (message.fallback)" in errors
    assert any("unreachable node 'agent'" in e for e in errors)
    bare = FLOW.replace("    fallback: agent\n", "").replace(
        "    failed_prompt: prompts/invalid.wav\n", ""
    )
    folder.write("night", bare.replace("  agent: {type: queue", "  x: {type: queue"))
    flow_set, _ = load_folder(folder.root)
    warnings = [d.message for d in check_set(flow_set) if not d.is_error]
    assert (
        "'message' has no failed_prompt: a caller whose message cannot be recorded is not told"
        in warnings
    )
    assert (
        "dead end: 'message' has no fallback; the call is hung up when the message cannot be"
        " recorded" in warnings
    )
    folder.write(
        "night", FLOW.replace("failed_prompt: prompts/invalid.wav", "failed_prompt: no.wav")
    )
    flow_set, _ = load_folder(folder.root)
    assert "missing prompt file 'no.wav'" in [d.message for d in check_set(flow_set)]


async def test_the_example_out_of_hours_messages_fall_back_to_a_queue() -> None:
    flow_set, diagnostics = load_folder(EXAMPLES)
    assert not diagnostics
    for flow_id, group in (("hotline-12315", "general"), ("hotline-12319", "general")):
        result, channel = await simulate(
            flow_set, flow_id, ["0"], at=at("2026-02-10T22:00"), voicemail_fails=REASON
        )
        assert result.action == Queue(group, 0), (flow_id, result.steps)
        assert result.voicemail_failed == REASON
        assert "prompts/common/message_failed.wav" in [p.label for p in channel.played]


def test_a_record_completion_after_the_switch_hung_up_is_an_open_failure() -> None:
    base = {"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Application": "record"}
    failed = Event({**base, "Answer-State": "hangup", "Hangup-Cause": "DESTINATION_OUT_OF_ORDER"})
    assert record_open_failed(failed)
    left = Event({**base, "Answer-State": "hangup", "Hangup-Cause": "NORMAL_CLEARING"})
    assert not record_open_failed(left)  # the citizen hung up during the message
    recorded = Event(
        {**failed.headers, "variable_record_ms": "3000", "variable_record_seconds": "3"}
    )
    assert not record_open_failed(recorded)
    assert not record_open_failed(Event({**base, "Answer-State": "answered"}))


# -- on the simulator, over ESL --------------------------------------------------------




@pytest.fixture
async def switch() -> AsyncIterator[tuple[EslConnection, list[Event]]]:
    """The simulator as a switch running as uid/gid 499, and every event it sent."""
    sim = Simulator(time_scale=20)
    port = await sim.start("127.0.0.1", 0)
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    seen: list[Event] = []

    async def collect() -> None:
        async for item in connection.events():
            if isinstance(item, Event):
                seen.append(item)

    collector = asyncio.create_task(collect())
    await connection.connect()
    await connection.api("sim", "set", "playback_default_ms", "200")
    await connection.api("sim", "set", "switch_uid", str(SWITCH))
    await connection.api("sim", "set", "switch_gid", str(SWITCH))
    try:
        yield connection, seen
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await connection.close()
        await sim.stop()


async def _answered_call(connection: EslConnection, seen: list[Event]) -> str:
    reply = await connection.api("sim", "call", "12315", "13800138000")
    caller = reply.body.split()[1]
    async with asyncio.timeout(10):
        while not any(e.name == "CHANNEL_PARK" and e.unique_id == caller for e in seen):
            await asyncio.sleep(0.01)
    await connection.execute(caller, "answer")
    return caller


def _night(channel: LiveChannel) -> LiveChannel:
    channel.now = lambda: at("2026-02-10T22:00")  # type: ignore[method-assign]
    return channel


async def test_on_the_switch_a_probed_unwritable_folder_is_told_and_queued(
    switch: tuple[EslConnection, list[Event]], shared_dir: Path
) -> None:
    connection, seen = switch
    voicemail = shared_dir / "voicemail"
    voicemail.mkdir()
    voicemail.chmod(0o755)  # root's: the switch (uid 499) may not write it
    health = RecordingHealth()
    health.record(await probe_recording(connection, voicemail, connection.node, 10, record_s=0.1))
    ivr = IvrService(
        IvrSettings(flows_dir=EXAMPLES, voicemail_dir=str(voicemail)),
        voicemail_check=lambda node: health.reason(node, voicemail),
    )
    await ivr.start()
    try:
        session = ivr.session("12315")
        assert session is not None
        caller = await _answered_call(connection, seen)
        channel = _night(ivr.channel(session, connection, caller, caller="13800138000"))
        result = await run_flow(session.flow_set, "hotline-12315", channel)
    finally:
        await ivr.stop()
    assert result.action == Queue("general", 0), result.steps
    assert result.voicemail_failed is not None
    assert result.voicemail_failed.startswith("-ERR Cannot record session!")
    events = [e for e in seen if e.unique_id == caller]
    started = [e.get("Playback-File-Path") for e in events if e.name == "PLAYBACK_START"]
    assert any(p and p.endswith("prompts/common/message_failed.wav") for p in started)
    assert not any(e.name == "RECORD_START" for e in events)
    assert not any(e.application == "record" for e in events)
    assert (await connection.api("uuid_exists", caller)).body == "true"  # still on the line


async def test_on_the_switch_an_unprobed_unwritable_folder_ends_as_failed(
    switch: tuple[EslConnection, list[Event]], shared_dir: Path
) -> None:
    """No probe result: ``record`` runs, the switch hangs up, the result says why."""
    connection, seen = switch
    voicemail = shared_dir / "voicemail"
    voicemail.mkdir()
    voicemail.chmod(0o755)
    flow_set, _ = load_folder(EXAMPLES)
    caller = await _answered_call(connection, seen)
    channel = _night(
        LiveChannel(
            connection, caller, caller="13800138000", hotline="12315", voicemail_dir=str(voicemail)
        )
    )
    result = await run_flow(flow_set, "hotline-12315", channel)
    assert result.action == Hangup("voicemail_failed"), result.steps
    assert result.voicemail_failed == (
        f"the switch cannot write {voicemail} (record hung up the call: DESTINATION_OUT_OF_ORDER)"
    )
    assert list(voicemail.iterdir()) == []


async def test_on_the_switch_a_writable_folder_takes_the_message(
    switch: tuple[EslConnection, list[Event]], shared_dir: Path
) -> None:
    connection, seen = switch
    voicemail = shared_dir / "voicemail"
    voicemail.mkdir()
    voicemail.chmod(0o2777)
    health = RecordingHealth()
    health.record(await probe_recording(connection, voicemail, connection.node, 10, record_s=0.1))
    assert health.reason(connection.node, voicemail) is None
    flow_set, _ = load_folder(EXAMPLES)
    caller = await _answered_call(connection, seen)
    channel = _night(
        LiveChannel(
            connection,
            caller,
            caller="13800138000",
            hotline="12315",
            voicemail_dir=str(voicemail),
            cannot_record=lambda: health.reason(connection.node, voicemail),
        )
    )
    result = await run_flow(flow_set, "hotline-12315", channel)
    assert isinstance(result.action, Voicemail), result.steps
    assert result.voicemail_failed is None
    message = Path(result.action.recording or "")
    assert message.parent == voicemail and message.stat().st_size > 44
    assert (result.action.seconds or 0) > 0
