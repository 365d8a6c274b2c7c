"""Every node type through the simulated channel."""

from __future__ import annotations

import pytest

from telephony.ivr.interpreter import (
    Blocked,
    Hangup,
    Queue,
    Transfer,
    Voicemail,
    run_survey,
)
from telephony.ivr.simulated import SimulatedChannel, parse_digits
from tests.ivr.conftest import FlowFolder, at, simulate

MENU = """\
hotlines: ["12345"]
calendar: office
start: menu
nodes:
  menu:
    type: menu
    prompt: prompts/menu.wav
    options: {1: consult, 2: complaint, 0: agent}
    invalid_prompt: prompts/invalid.wav
    timeout_prompt: prompts/timeout.wav
    retries: 2
    fallback: agent
    variable: choice
  consult: {type: queue, group: consult, priority: 2}
  complaint: {type: queue, group: complaint}
  agent: {type: queue, group: general}
"""


@pytest.fixture
def menu_set(folder: FlowFolder):  # type: ignore[no-untyped-def]
    folder.write("main", MENU)
    return folder.load()


async def test_menu_valid_key(menu_set) -> None:  # type: ignore[no-untyped-def]
    result, channel = await simulate(menu_set, "main", ["1"])
    assert result.action == Queue("consult", 2)
    assert channel.get("choice") == "1"
    assert result.keys == "1"
    assert [s.kind for s in result.steps] == ["play", "keys", "branch", "action"]


async def test_menu_invalid_key_then_valid(menu_set) -> None:  # type: ignore[no-untyped-def]
    result, channel = await simulate(menu_set, "main", ["7", "2"])
    assert result.action == Queue("complaint", 0)
    played = [p.label for p in channel.played]
    assert played == ["prompts/menu.wav", "prompts/invalid.wav", "prompts/menu.wav"]
    assert [s.kind for s in result.steps if s.kind in ("invalid", "keys")] == ["invalid", "keys"]


async def test_menu_timeout_plays_timeout_prompt(menu_set) -> None:  # type: ignore[no-untyped-def]
    result, channel = await simulate(menu_set, "main", ["", "0"])
    assert result.action == Queue("general", 0)
    assert [p.label for p in channel.played][1] == "prompts/timeout.wav"
    assert channel.requests[0].timeout == 5.0


async def test_menu_retries_exhausted_goes_to_fallback(menu_set) -> None:  # type: ignore[no-untyped-def]
    result, channel = await simulate(menu_set, "main", ["9", "", "8", "1"])
    assert result.action == Queue("general", 0)
    assert len(channel.requests) == 3  # 1 + 2 retries; the "1" is never read
    assert channel.remaining == ["1"]
    assert any(s.kind == "exhausted" for s in result.steps)


async def test_menu_without_fallback_hangs_up(folder: FlowFolder) -> None:
    folder.write(
        "main",
        """\
        start: m
        nodes:
          m: {type: menu, prompt: prompts/menu.wav, options: {1: q}, retries: 0}
          q: {type: queue, group: general}
        """,
    )
    result, _ = await simulate(folder.load(), "main", [])
    assert result.action == Hangup("no_input")


COLLECT = """\
start: id
nodes:
  id:
    type: collect
    prompt: prompts/hello.wav
    variable: id_number
    min_length: 18
    max_length: 18
    pattern: '\\d{17}[\\d*]'
    invalid_prompt: prompts/invalid.wav
    retries: 1
    next: check
    fallback: agent
  check:
    type: branch
    variable: id_number
    cases:
      - {matches: '^11', next: beijing}
    default: agent
  beijing: {type: queue, group: consult, priority: 3}
  agent: {type: queue, group: general}
"""


async def test_collect_validation_failure_then_success(folder: FlowFolder) -> None:
    folder.write("main", COLLECT)
    result, channel = await simulate(folder.load(), "main", ["12345#", "11010119900101123*#"])
    assert result.action == Queue("consult", 3)
    assert channel.get("id_number") == "11010119900101123*"
    kinds = [s.kind for s in result.steps]
    assert kinds.count("invalid") == 1
    assert channel.requests[0].terminators == "#"
    assert channel.requests[0].max_digits == 18
    assert channel.requests[0].inter_digit_timeout == 3.0


async def test_collect_pattern_mismatch_exhausts_to_fallback(folder: FlowFolder) -> None:
    folder.write("main", COLLECT)
    # 18 characters but the pattern wants digits first: invalid twice, then fallback.
    result, channel = await simulate(
        folder.load(), "main", ["*10101199001011234", "*10101199001011234"]
    )
    assert result.action == Queue("general", 0)
    assert channel.get("id_number") is None


async def test_set_say_speak_and_templates(folder: FlowFolder) -> None:
    folder.write(
        "main",
        """\
        tts: {engine: my_tts, voice: xiaoyan}
        variables: {greeting: "您好"}
        start: s
        nodes:
          s:
            type: set
            values: {ticket: "2026${caller}", who: "${greeting}，市民"}
            next: sp
          sp: {type: speak, text: "${who}，您的工单号是", next: say}
          say: {type: say, value: "${ticket}", kind: digits, next: bye}
          bye: {type: hangup, goodbye: prompts/bye.wav, reason: done}
        """,
    )
    result, channel = await simulate(folder.load(), "main", caller="13800138000")
    assert result.action == Hangup("done")
    tts, said, bye = channel.played
    assert (tts.kind, tts.value, tts.engine, tts.voice) == (
        "tts",
        "您好，市民，您的工单号是",
        "my_tts",
        "xiaoyan",
    )
    assert (said.kind, said.value, said.say_kind) == ("say", "202613800138000", "digits")
    assert bye.kind == "file" and bye.value.endswith("prompts/bye.wav")
    assert result.variables["ticket"] == "202613800138000"


HOURS = """\
calendar: office
start: hours
nodes:
  hours: {type: business_hours, open: open, closed: closed, holiday: holiday}
  open: {type: queue, group: general}
  closed: {type: voicemail, prompt: prompts/hello.wav, mailbox: night, goodbye: prompts/bye.wav}
  holiday: {type: hangup, goodbye: prompts/bye.wav, reason: holiday}
"""


@pytest.mark.parametrize(
    ("when", "kind"),
    [
        ("2026-02-10T10:00", "queue"),  # Tuesday morning
        ("2026-02-10T08:29", "voicemail"),  # before opening
        ("2026-02-10T17:30", "voicemail"),  # closing time is closed
        ("2026-02-10T22:00", "voicemail"),  # evening
        ("2026-02-08T10:00", "voicemail"),  # Sunday
        ("2026-02-14T10:00", "queue"),  # Saturday made a working day (调休)
        ("2026-02-16T10:00", "hangup"),  # Spring Festival
    ],
)
async def test_business_hours(folder: FlowFolder, when: str, kind: str) -> None:
    folder.write("main", HOURS)
    result, _ = await simulate(folder.load(), "main", at=at(when))
    assert result.action.kind == kind


async def test_business_hours_other_zone_is_converted(folder: FlowFolder) -> None:
    import datetime as dt

    folder.write("main", HOURS)
    utc_2am = dt.datetime(2026, 2, 10, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
    result, _ = await simulate(folder.load(), "main", at=utc_2am)
    assert result.action == Queue("general", 0)


async def test_voicemail_records(folder: FlowFolder) -> None:
    folder.write("main", HOURS)
    result, channel = await simulate(folder.load(), "main", at=at("2026-02-10T22:00"))
    assert isinstance(result.action, Voicemail)
    assert result.action.mailbox == "night"
    assert result.action.recording == channel.recordings[0].path


BLOCKED = """\
start: check
nodes:
  check: {type: blocked_check, prompt: prompts/bye.wav, next: q}
  q: {type: queue, group: general}
"""


async def test_blocked_caller(folder: FlowFolder) -> None:
    folder.write("main", BLOCKED)
    flow_set = folder.load()
    result, channel = await simulate(flow_set, "main", blocked=True)
    assert result.action == Blocked()
    assert [p.label for p in channel.played] == ["prompts/bye.wav"]
    result, channel = await simulate(flow_set, "main", blocked=False)
    assert result.action == Queue("general", 0)
    assert channel.played == []


async def test_transfer_to_outside_number(folder: FlowFolder) -> None:
    folder.write(
        "main",
        """\
        variables: {line: "96777"}
        start: t
        nodes:
          t: {type: transfer, number: "${line}", prompt: prompts/hello.wav}
        """,
    )
    result, _ = await simulate(folder.load(), "main")
    assert result.action == Transfer("96777")


async def test_transfer_to_bad_number_hangs_up(folder: FlowFolder) -> None:
    folder.write("main", "start: t\nnodes:\n  t: {type: transfer, number: '${nothing}'}\n")
    result, _ = await simulate(folder.load(), "main")
    assert result.action == Hangup("bad_transfer_number")


async def test_subflow_and_return(folder: FlowFolder) -> None:
    folder.write(
        "main",
        """\
        start: sub
        nodes:
          sub: {type: subflow, flow: ticket, next: q}
          q: {type: queue, group: consult}
        """,
    )
    folder.write(
        "ticket",
        """\
        start: c
        nodes:
          c:
            type: collect
            prompt: prompts/hello.wav
            variable: ticket_no
            min_length: 4
            max_length: 4
            next: back
            fallback: back
          back: {type: return}
        """,
    )
    result, channel = await simulate(folder.load(), "main", ["1234"])
    assert result.action == Queue("consult", 0)
    assert channel.get("ticket_no") == "1234"
    assert [s.kind for s in result.steps if s.kind in ("subflow", "return")] == [
        "subflow",
        "return",
    ]
    assert {s.flow for s in result.steps} == {"main", "ticket"}


async def test_dead_end_hangs_up(folder: FlowFolder) -> None:
    folder.write("main", "start: p\nnodes:\n  p: {type: play, prompt: prompts/hello.wav}\n")
    result, _ = await simulate(folder.load(), "main")
    assert result.action == Hangup("dead_end")


async def test_step_limit(folder: FlowFolder) -> None:
    folder.write(
        "main",
        """\
        max_steps: 10
        start: m
        nodes:
          m: {type: menu, prompt: prompts/menu.wav, options: {1: p, 2: q}, retries: 0}
          p: {type: play, prompt: prompts/hello.wav, next: m}
          q: {type: queue, group: general}
        """,
    )
    result, _ = await simulate(folder.load(), "main", ["1"] * 20)
    assert result.action == Hangup("step_limit")


async def test_caller_hangs_up_mid_menu(menu_set) -> None:  # type: ignore[no-untyped-def]
    result, _ = await simulate(menu_set, "main", ["9"], hang_up_after=1)
    assert result.action == Hangup("caller_hung_up")


SURVEY = """\
survey:
  prompt: prompts/survey.wav
  invalid_prompt: prompts/invalid.wav
  thanks: prompts/thanks.wav
  retries: 1
start: q
nodes:
  q: {type: queue, group: general}
"""


@pytest.mark.parametrize(
    ("keys", "score"),
    [("5", 5), ("1", 1), ("9,3", 3), ("0,6", None), ("", None), (",,", None)],
)
async def test_survey_scores(folder: FlowFolder, keys: str, score: int | None) -> None:
    folder.write("main", SURVEY)
    channel = SimulatedChannel(parse_digits(keys))
    result = await run_survey(folder.load(), "main", channel)
    assert (result.score if result else None) == score
    if score is not None:
        assert result is not None and (result.min_score, result.max_score) == (1, 5)
        assert channel.played[-1].label == "prompts/thanks.wav"


async def test_survey_designer_scale(folder: FlowFolder) -> None:
    folder.write(
        "main", SURVEY.replace("  retries: 1", "  retries: 0\n  min_score: 0\n  max_score: 9")
    )
    result = await run_survey(folder.load(), "main", SimulatedChannel(["0"]))
    assert result is not None and result.score == 0 and result.max_score == 9


async def test_no_survey_configured(menu_set) -> None:  # type: ignore[no-untyped-def]
    assert await run_survey(menu_set, "main", SimulatedChannel(["5"])) is None


async def test_survey_caller_hangs_up(folder: FlowFolder) -> None:
    folder.write("main", SURVEY)
    channel = SimulatedChannel(["5"], hang_up_after=0)
    assert await run_survey(folder.load(), "main", channel) is None


def test_parse_digits() -> None:
    assert parse_digits("1,2,3#") == ["1", "2", "3#"]
    assert parse_digits("1,,t,timeout") == ["1", "", "", ""]
    assert parse_digits("") == []
