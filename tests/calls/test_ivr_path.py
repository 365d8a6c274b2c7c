"""Hotline calls through their IVR flow on the engine: menu, queue, survey, blocked, reload."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from telephony.esl.messages import Event
from telephony.esl.transport import Backoff, EventStream
from telephony.ivr.timing import MEDIA_APPS
from tests.calls.conftest import Rig, start_controller

REPO = Path(__file__).resolve().parents[2]

FLOW = """\
name: test 12345
hotlines: ["12345"]
survey:
  prompt: prompts/common/survey.wav
  invalid_prompt: prompts/common/invalid.wav
  thanks: prompts/common/survey_thanks.wav
start: blocked
nodes:
  blocked:
    type: blocked_check
    prompt: prompts/common/blocked.wav
    next: menu
  menu:
    type: menu
    prompt: prompts/12345/menu_main.wav
    options:
      1: {one}
      0: {zero}
    invalid_prompt: prompts/common/invalid.wav
    timeout_prompt: prompts/common/timeout.wav
    fallback: agent
  consult:
    type: queue
    group: consult
    priority: 2
    prompt: prompts/common/to_agent.wav
  agent:
    type: queue
    group: general
    prompt: prompts/common/to_agent.wav
"""


COLLECT_FLOW = """\
name: ticket number, else a voice message
hotlines: ["12328"]
start: ticket
nodes:
  ticket:
    type: collect
    prompt: prompts/12345/menu_consult.wav
    variable: ticket
    min_length: 4
    max_length: 4
    pattern: '20\\d\\d'
    invalid_prompt: prompts/common/invalid.wav
    timeout: 2
    retries: 1
    next: found
    fallback: message
  found:
    type: queue
    group: consult
    prompt: prompts/common/to_agent.wav
  message:
    type: voicemail
    prompt: prompts/common/leave_message.wav
    mailbox: "12328"
    max_seconds: 30
    goodbye: prompts/common/message_thanks.wav
    failed_prompt: prompts/common/message_failed.wav
    fallback: found
"""


def _write_flow(folder: Path, one: str = "consult", zero: str = "agent") -> None:
    text = FLOW.format(one=one, zero=zero)
    (folder / "hotline-12345.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
async def ivr_rig(rig: Rig, tmp_path: Path) -> AsyncIterator[tuple[Rig, Path]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copytree(REPO / "ivr_flows" / "prompts", flows / "prompts")
    (flows / "skill_groups.yaml").write_text(
        "skill_groups:\n  - {id: general, name: General}\n  - {id: consult, name: Consult}\n",
        encoding="utf-8",
    )
    _write_flow(flows)
    (flows / "hotline-12328.yaml").write_text(COLLECT_FLOW, encoding="utf-8")
    await rig.controller.stop()
    rig.controller = await start_controller(rig.sim_port, rig.db, rig.recordings, flows)
    yield rig, flows


async def _event(stream: EventStream, match: Callable[[Event], bool], timeout: float = 10) -> Event:
    async with asyncio.timeout(timeout):
        async for item in stream:
            if isinstance(item, Event) and match(item):
                return item
    raise AssertionError("event stream ended")


def _prompt_started(uuid: str, name: str) -> Callable[[Event], bool]:
    """The media application that plays ``name`` started (the engine's events)."""
    return lambda e: (
        e.name == "CHANNEL_EXECUTE"
        and e.unique_id == uuid
        and e.application in MEDIA_APPS
        and name in (e.application_data or "")
    )


async def test_menu_key_queues_by_skill_and_the_survey_score_is_stored(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, _ = ivr_rig
    await rig.add_agent("a1", "1001", consult=1)
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    stream = rig.esl.events()
    call_uuid = await rig.call("13800138100")

    await _event(stream, _prompt_started(call_uuid, "menu_main.wav"))
    await rig.sim_api("dtmf", call_uuid, "1")

    async def connected() -> str | None:
        call = rig.controller.calls.calls.get(call_uuid)
        return call.agent_leg if call is not None and call.state.value == "connected" else None

    agent_leg = await rig.wait_for(connected)
    await rig.sim_api("hangup", agent_leg)  # the agent hangs up first: the survey follows
    await _event(stream, _prompt_started(call_uuid, "survey.wav"))
    await rig.sim_api("dtmf", call_uuid, "5")

    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert cdr["skill_group_id"] == "consult" and cdr["agent_id"] == "a1"
    assert cdr["ivr_path"] == "1"
    assert cdr["survey_score"] == 5
    assert (cdr["outcome"], cdr["hung_up_by"]) == ("answered", "agent")
    kinds = [
        s["kind"]
        for s in await rig.fetch(
            "select kind from call_events where call_uuid = cast(:u as uuid) order by at",
            u=call_uuid,
        )
    ]
    assert kinds.index("ivr_done") < kinds.index("queued") < kinds.index("connected")
    assert kinds.index("agent_hung_up") < kinds.index("survey") < kinds.index("ended")
    registry = rig.controller.calls.metrics.registry
    assert registry.get_sample_value("telephony_ivr_reaction_seconds_count") >= 2


async def test_a_blocked_caller_is_refused_and_the_cdr_says_blocked(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, _ = ivr_rig
    async with rig.db.begin() as connection:
        await connection.execute(
            text("insert into blocked_numbers (number, reason) values ('13900000666', 'test')")
        )
    call_uuid = await rig.call("13900000666")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert cdr["outcome"] == "blocked"
    assert cdr["queued_at"] is None and cdr["agent_id"] is None


async def test_flow_edits_serve_new_calls_and_a_broken_edit_keeps_the_last_good_one(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, flows = ivr_rig
    stream = rig.esl.events()

    async def call_pressing_one(caller: str) -> dict[str, object]:
        call_uuid = await rig.call(caller, "hangup_after_s=30")
        await _event(stream, _prompt_started(call_uuid, "menu_main.wav"))
        await rig.sim_api("dtmf", call_uuid, "1")
        return await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)

    assert (await call_pressing_one("13800000001"))["skill_group_id"] == "consult"

    _write_flow(flows, one="agent", zero="consult")  # key 1 now goes to the general queue
    await asyncio.sleep(0.5)
    assert (await call_pressing_one("13800000002"))["skill_group_id"] == "general"

    (flows / "hotline-12345.yaml").write_text("name: broken\nnodes: [\n", encoding="utf-8")
    await asyncio.sleep(0.5)
    assert (await call_pressing_one("13800000003"))["skill_group_id"] == "general"
    rejected = rig.controller.calls.metrics.registry.get_sample_value(
        "telephony_ivr_flow_rejected_total", {"file": str(flows / "hotline-12345.yaml")}
    )
    assert rejected is not None and rejected >= 1


async def test_collect_rejects_an_invalid_number_then_takes_a_valid_one(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, _ = ivr_rig
    stream = rig.esl.events()
    call_uuid = await rig.call("13800000011", "hangup_after_s=30", hotline="12328")
    await _event(stream, _prompt_started(call_uuid, "menu_consult.wav"))
    await rig.sim_api("dtmf", call_uuid, "9999")  # four digits, but not a 20xx ticket
    await _event(stream, _prompt_started(call_uuid, "invalid.wav"))
    await _event(stream, _prompt_started(call_uuid, "menu_consult.wav"))
    await rig.sim_api("dtmf", call_uuid, "2026")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["skill_group_id"] == "consult"
    assert cdr["ivr_path"] == "99992026"


async def test_retries_exhausted_fall_back_to_a_voice_message(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, _ = ivr_rig
    call_uuid = await rig.call("13800000012", hotline="12328")  # never presses a key
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["outcome"] == "voicemail"
    assert cdr["queued_at"] is None and cdr["ivr_path"] is None
    message = rig.recordings / "voicemail" / f"12328-{call_uuid}.wav"
    assert message.is_file()


async def test_menu_timeouts_fall_back_to_the_general_queue(ivr_rig: tuple[Rig, Path]) -> None:
    rig, _ = ivr_rig
    call_uuid = await rig.call("13800000013", "hangup_after_s=60")  # no key pressed
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["skill_group_id"] == "general"
    assert cdr["outcome"] == "abandoned_in_queue"


async def test_a_restart_keeps_the_keys_the_priority_and_the_survey(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, flows = ivr_rig
    await rig.add_agent("a1", "1001", consult=1)
    await rig.sim_api("phone", "1001", "answer_after_ms=500")
    stream = rig.esl.events()
    call_uuid = await rig.call("13800138101")
    await _event(stream, _prompt_started(call_uuid, "menu_main.wav"))
    await rig.sim_api("dtmf", call_uuid, "1")  # consult, priority 2

    async def queued() -> bool:
        call = rig.controller.calls.calls.get(call_uuid)
        return call is not None and call.state.value == "queued"

    await rig.wait_for(queued)
    await rig.buffer.flushed()
    await rig.controller.crash()
    rig.controller = await start_controller(rig.sim_port, rig.db, rig.recordings, flows)
    stream = rig.esl.events()
    rig.roster.get("a1").skills = {"consult": 1}  # the rig's agent rows carry no skills
    rig.sign_in("a1")

    async def connected() -> str | None:
        call = rig.controller.calls.calls.get(call_uuid)
        return call.agent_leg if call is not None and call.state.value == "connected" else None

    agent_leg = await rig.wait_for(connected)
    call = rig.controller.calls.calls[call_uuid]
    assert (call.skill_group, call.priority, call.ivr_keys) == ("consult", 2, "1")
    await rig.sim_api("hangup", agent_leg)
    await _event(stream, _prompt_started(call_uuid, "survey.wav"))
    await rig.sim_api("dtmf", call_uuid, "4")
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid))
    assert (cdr["ivr_path"], cdr["survey_score"], cdr["outcome"]) == ("1", 4, "answered")


async def test_connection_lost_with_20_calls_up_and_half_hung_up_meanwhile(
    ivr_rig: tuple[Rig, Path],
) -> None:
    """Calls in the IVR, queued, ringing and bridged; the ESL connection drops; ten
    citizens hang up while it is down (their HANGUP_COMPLETEs are lost): after the
    reconnect no ghost call, no agent held in a call or made busy by the outage, and
    every CDR is closed once."""
    rig, _ = ivr_rig
    engine = rig.controller.calls
    for n, answer_ms in enumerate((300, 300, 300, 300, 3000, 3000), 1):
        await rig.add_agent(f"a{n}", f"10{n:02d}")
        await rig.sim_api("phone", f"10{n:02d}", f"answer_after_ms={answer_ms}")
        rig.sign_in(f"a{n}")
    calls = []
    for n in range(20):
        options = ["dtmf=0", "dtmf_delay_ms=300"] if n % 3 else []  # a third stay in the IVR
        calls.append(await rig.call(f"1380013{n:04d}", *options))
        await asyncio.sleep(0.01)

    def states() -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in engine.calls.values():
            counts[call.state.value] = counts.get(call.state.value, 0) + 1
        return counts

    async def spread() -> bool:
        s = states()
        return all(s.get(k, 0) >= 1 for k in ("ivr", "queued", "connected"))

    await rig.wait_for(spread)
    before = states()
    rig.esl.backoff = Backoff(initial=2.0, jitter=0.0)  # a 2 s outage
    assert rig.sim.drop_connections() >= 1
    for uuid in calls[::2]:  # half of the citizens hang up during the outage
        channel = rig.sim.switch.get(uuid)
        if channel is not None:
            rig.sim.switch.hangup(channel, "NORMAL_CLEARING", "recv_bye")
    await asyncio.sleep(0.3)
    assert not rig.esl.connected

    async def reconciled() -> bool:
        live = {u for u in calls if rig.sim.switch.get(u) is not None}
        return rig.esl.connected and engine.adopted_once and set(engine.calls) == live

    await rig.wait_for(reconciled, timeout=20)
    await asyncio.sleep(0.5)
    live = {u for u in calls if rig.sim.switch.get(u) is not None}
    assert set(engine.calls) == live, before
    talking = {c.agent_id for c in engine.calls.values() if c.agent_id}
    offered = {c.offered_agent for c in engine.calls.values() if c.offered_agent}
    for agent in rig.roster.agents.values():
        assert agent.reason != "no answer", agent
        if agent.state.value == "in_call":
            assert agent.id in talking, agent
        if agent.state.value == "ringing":
            assert agent.id in offered, agent

    for uuid in live:  # the rest hang up now
        channel = rig.sim.switch.get(uuid)
        if channel is not None:
            rig.sim.switch.hangup(channel, "NORMAL_CLEARING", "recv_bye")

    async def all_closed() -> list[Any]:
        rows = await rig.fetch(
            "select uuid, outcome, hung_up_by from calls where ended_at is not null"
            " and outcome is not null"
        )
        return rows if len(rows) == len(calls) else []

    rows = await rig.wait_for(all_closed, timeout=20)
    assert {str(r["uuid"]) for r in rows} == set(calls)
    ended = await rig.fetch(
        "select call_uuid, count(*) as n from call_events where kind = 'ended' group by call_uuid"
    )
    assert {str(r["call_uuid"]): r["n"] for r in ended} == {u: 1 for u in calls}
    unseen = [r for r in rows if r["hung_up_by"] == "unknown"]
    assert len(unseen) == len(calls[::2])  # the ten who left during the outage


async def test_a_voice_message_ended_by_the_citizens_hang_up_is_a_voice_message(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, _ = ivr_rig
    stream = rig.esl.events()
    call_uuid = await rig.call("13800000014", hotline="12328")  # never presses a key
    started = await _event(
        stream, lambda e: e.name == "RECORD_START" and e.unique_id == call_uuid, timeout=20
    )
    await asyncio.sleep(0.2)  # four simulated seconds of the citizen's voice
    await rig.sim_api("hangup", call_uuid)  # the normal way to end a message
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert (cdr["outcome"], cdr["hung_up_by"]) == ("voicemail", "caller")
    assert cdr["voicemail_path"] == started.get("Record-File-Path")
    assert cdr["voicemail_failed"] is None
    assert Path(cdr["voicemail_path"]).stat().st_size > 44


async def test_a_voice_message_the_switch_cannot_record_is_in_the_cdr(
    ivr_rig: tuple[Rig, Path],
) -> None:
    """No probe said so beforehand: FreeSWITCH's record app hangs the citizen up when it
    cannot open the file. The CDR says the message failed, and the loss is the system's."""
    rig, _ = ivr_rig
    voicemail = rig.recordings / "voicemail"
    voicemail.chmod(0o755)
    base = rig.recordings.parent
    for folder in (base, rig.recordings):
        folder.chmod(0o755)  # the switch's user may pass, not write
    await rig.sim_api("set", "switch_uid", "499")
    await rig.sim_api("set", "switch_gid", "499")
    call_uuid = await rig.call("13800000015", hotline="12328")  # never presses a key
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=20)
    assert cdr["voicemail_failed"] and cdr["voicemail_path"] is None
    assert (cdr["outcome"], cdr["hung_up_by"]) == ("lost", "system")
    assert cdr["hangup_cause"] == "DESTINATION_OUT_OF_ORDER"


async def test_a_voice_message_the_probe_says_cannot_be_recorded_is_told_and_queued(
    ivr_rig: tuple[Rig, Path],
) -> None:
    rig, flows = ivr_rig
    await rig.controller.stop()
    rig.controller = await start_controller(
        rig.sim_port,
        rig.db,
        rig.recordings,
        flows,
        voicemail_check=lambda node: "the switch cannot write the voice-message folder",
    )
    await rig.add_agent("a1", "1001", consult=1)
    rig.sign_in("a1")
    await rig.sim_api("phone", "1001", "answer_after_ms=300")
    stream = rig.esl.events()
    call_uuid = await rig.call("13800000016", "hangup_after_s=30", hotline="12328")
    await _event(stream, _prompt_started(call_uuid, "message_failed.wav"), timeout=20)
    cdr = await rig.wait_for(lambda: rig.ended_cdr(call_uuid), timeout=30)
    assert (cdr["outcome"], cdr["skill_group_id"]) == ("answered", "consult")
    assert cdr["voicemail_failed"] == "the switch cannot write the voice-message folder"
    assert cdr["voicemail_path"] is None
