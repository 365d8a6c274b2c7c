"""The simulator against the real FreeSWITCH traces, scenario by scenario.

For each README scenario the replay driver (:mod:`.replay`) runs the real
controller's commands against an in-process simulator (port 0, time scaled
by :data:`.scenarios.TIME_SCALE`) and :mod:`.compare` compares what came
back with what FreeSWITCH sent: per-leg event sequences, headers and value
shapes, BACKGROUND_JOB results and command replies. A failure lists every
difference (leg, index, event, missing headers, differing shapes) and is also
written to ``report.txt`` in the test's temporary folder.

These tests are skipped only when ``telephony.sim.server`` does not exist
yet; a simulator that behaves wrongly fails them.

The harness tests itself without the simulator: a session compared with
itself passes, perturbed copies fail with the expected lines, and the replay
driver run against :class:`.playback.TracePlaybackServer` (the real bytes
played back with renamed uuids) reports nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import sys
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from telephony.esl.messages import ApiResponse, Event, Frame, Malformed

from .compare import Report, compare_headers, compare_sessions, compare_timing
from .playback import TracePlaybackServer
from .replay import ReplayResult, describe, replay_connection
from .scenarios import SCENARIOS, TIME_SCALE, Scenario
from .traces import FREESWITCH_DIR, Received, Session, load_session, traces_available

pytestmark = pytest.mark.skipif(
    not traces_available(), reason=f"no FreeSWITCH traces at {FREESWITCH_DIR}"
)

SIM_MODULE = "telephony.sim.server"
#: Whole-scenario limit (real seconds); each wait inside has its own, shorter one.
SCENARIO_TIMEOUT = 100.0
#: Shortest wait for an expected event before the replay goes on without it.
MIN_WAIT = 2.0


def _load_simulator() -> tuple[Any, str]:
    """The Simulator class, or None and why it cannot be imported (only "missing" skips)."""
    try:
        module = importlib.import_module(SIM_MODULE)
        simulator = module.Simulator
    except ModuleNotFoundError as exc:
        if exc.name in ("telephony.sim", SIM_MODULE):
            return None, f"{SIM_MODULE} does not exist yet ({exc})"
        return None, "FAIL:" + traceback.format_exc()
    except Exception:
        return None, "FAIL:" + traceback.format_exc()
    return simulator, ""


async def _start_simulator() -> tuple[Any, int]:
    cls, why = _load_simulator()
    if cls is None:
        if why.startswith("FAIL:"):
            pytest.fail(f"{SIM_MODULE} exists but cannot be imported:\n{why[5:]}")
        pytest.skip(why)
    params = inspect.signature(cls).parameters
    if "time_scale" not in params:
        pytest.fail(f"Simulator{inspect.signature(cls)} has no time_scale option")
    sim = cls(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    if not isinstance(port, int) or port <= 0:
        await sim.stop()
        pytest.fail(f"Simulator.start('127.0.0.1', 0) returned {port!r}, not the bound port")
    return sim, port


async def run_scenario(scenario: Scenario, port: int) -> list[ReplayResult]:
    """Replay every connection of ``scenario`` against the server on ``port``, in order."""
    results: list[ReplayResult] = []
    real_known: dict[str, str] | None = None
    sim_known: dict[str, str] | None = None
    for plan in scenario.connections:
        real = load_session(plan.trace, real_known)
        result = await replay_connection(
            plan,
            real,
            "127.0.0.1",
            port,
            time_scale=TIME_SCALE,
            sim_known_legs=sim_known,
            min_wait=MIN_WAIT,
        )
        results.append(result)
        real_known, sim_known = real.legs, result.sim.legs
    return results


def scenario_report(scenario: Scenario, results: list[ReplayResult]) -> tuple[bool, str]:
    """(any difference?, the full text: differences per connection, replay log, assumptions)."""
    failed = False
    parts = [f"scenario {scenario.name} (time scale {TIME_SCALE:g})"]
    for result, plan in zip(results, scenario.connections, strict=True):
        skip = dict(plan.skip_replies)
        replies = [r for r in result.replies if r[0].index not in skip]
        report: Report = compare_sessions(
            result.real, result.sim, replies=replies, races=plan.races
        )
        report.lines += [f"real trace breaks {x}" for x in compare_timing(result.real, plan.timing)]
        report.lines += compare_timing(result.sim, plan.timing)
        failed = failed or bool(report)
        parts.append(f"=== {result.real.name}: {len(report.lines)} difference line(s)")
        parts.append(report.text() if report else "(matches)")
        for index, reason in skip.items():
            parts.append(
                f"(reply to #{index} `{result.real.sent[index].line}` not compared: {reason})"
            )
        for race in plan.races:
            parts.append(
                f"({race.leg} real#{race.index} {', '.join(race.headers)} not compared: {race.why})"
            )
    parts.append("=== replay log")
    parts.append(describe(results))
    if scenario.assumptions:
        parts.append("=== assumptions: " + scenario.assumptions)
    return failed, "\n".join(parts)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_simulator_matches_trace(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    sim, port = await _start_simulator()
    try:
        results = await asyncio.wait_for(run_scenario(scenario, port), SCENARIO_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{name}: the replay did not finish within {SCENARIO_TIMEOUT:g} s")
    finally:
        await sim.stop()
    failed, text = scenario_report(scenario, results)
    (tmp_path / "report.txt").write_text(text, encoding="utf-8")
    limit = 30_000
    shown = text if len(text) <= limit else text[:limit] + f"\n... see {tmp_path / 'report.txt'}"
    assert not failed, f"the simulator differs from the real trace:\n{shown}"


# -- the harness tests itself ------------------------------------------------------------

CALL_CENTER = [
    "hotline_ivr_agent",
    "agent_no_answer",
    "caller_abandons_in_queue",
    "three_way_and_transfer",
    "registrations",
    "controller_restart_conn1",
    "unbridge_hangup_after_bridge_false",
    "three_way_on_bridged_agent",
    "park_timer",
    "outbound_dispositions",
]


@pytest.mark.parametrize("name", CALL_CENTER)
def test_comparator_passes_a_trace_against_itself(name: str) -> None:
    real = load_session(name)
    assert compare_sessions(real, load_session(name)).lines == []


def test_comparator_passes_restart_conn2_against_itself() -> None:
    legs = load_session("controller_restart_conn1").legs
    real = load_session("controller_restart_conn2", legs)
    assert compare_sessions(real, load_session("controller_restart_conn2", legs)).lines == []


EventEdit = Callable[[Event], Event | None]


def perturb(session: Session, target: Callable[[Event], bool], edit: EventEdit) -> Session:
    """A copy of ``session`` with ``edit`` applied to the first event ``target`` selects."""
    copy = Session(session.name, sent=list(session.sent), known_legs=dict(session.known_legs))
    done = False
    for item in session.received:
        event = item.event
        if event is not None and not done and target(event):
            done = True
            changed = edit(event)
            if changed is None:
                continue
            item = dataclasses.replace(item, message=changed)
        copy.received.append(item)
    assert done, "the perturbation selected no event"
    return copy


def with_headers(event: Event, body: str | None = None, **changes: str | None) -> Event:
    """``event`` with headers changed (``None`` removes one; ``__`` in names means ``-``)."""
    headers = dict(event.headers)
    for key, value in changes.items():
        name = key.replace("__", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return Event(headers, event.body if body is None else body)


def _uid(session: Session, alias: str) -> str:
    return next(u for u, a in session.legs.items() if a == alias)


def _on(session: Session, alias: str, name: str, nth: int = 0) -> Callable[[Event], bool]:
    uid = _uid(session, alias)
    seen = [0]

    def pick(event: Event) -> bool:
        if event.unique_id == uid and event.name == name:
            seen[0] += 1
            return seen[0] == nth + 1
        return False

    return pick


def _differences(real: Session, sim: Session) -> str:
    return compare_sessions(real, sim).text()


def test_comparator_reports_a_missing_header() -> None:
    real = load_session("hotline_ivr_agent")
    sim = perturb(
        real,
        _on(real, "A", "CHANNEL_PARK"),
        lambda e: with_headers(e, Caller__Destination__Number=None),
    )
    text = _differences(real, sim)
    assert "A real#12/sim#12 CHANNEL_PARK:" in text
    assert "missing 1 header(s): Caller-Destination-Number" in text


@pytest.mark.parametrize(
    ("header", "old", "new"),
    [
        ("Channel-State", "CS_EXECUTE", "CS_PARK"),
        ("Hangup-Cause", "NORMAL_CLEARING", "NO_ANSWER"),
        ("variable_sip_hangup_disposition", "recv_bye", "send_bye"),
    ],
)
def test_comparator_reports_a_different_value(header: str, old: str, new: str) -> None:
    real = load_session("agent_no_answer")
    sim = perturb(
        real,
        lambda e: e.get(header) == old,
        lambda e: with_headers(e, **{header.replace("-", "__"): new}),
    )
    text = _differences(real, sim)
    assert f"{header}: real '{old}' [{old}] vs sim '{new}' [{new}]" in text


def test_comparator_ignores_timestamps_and_random_uuids() -> None:
    """Another run: the clock shifted, another Core-UUID, another date and host address."""
    real = load_session("agent_no_answer")
    sim = Session(real.name, sent=list(real.sent))
    for item in real.received:
        event = item.event
        if event is not None:
            event = with_headers(
                event,
                Event__Date__Timestamp=str(int(event.headers["Event-Date-Timestamp"]) + 98765),
                Core__UUID="00000000-1111-2222-3333-444444444444",
                Event__Date__GMT="Mon, 01 Jan 2024 00:00:00 GMT",
                FreeSWITCH__IPv4="10.9.8.7",
            )
            item = dataclasses.replace(item, message=event)
        sim.received.append(item)
    assert _differences(real, sim) == ""


def test_comparator_reports_the_wrong_leg_and_a_random_application_uuid() -> None:
    real = load_session("agent_no_answer")
    b_uuid = _uid(real, "B")
    sim = perturb(
        real,
        _on(real, "A", "CHANNEL_BRIDGE"),
        lambda e: with_headers(e, Other__Leg__Unique__ID=b_uuid),
    )
    assert "Other-Leg-Unique-ID: real" in _differences(real, sim)
    assert "[<leg C>] vs sim" in _differences(real, sim)
    sim = perturb(
        real,
        _on(real, "A", "CHANNEL_EXECUTE_COMPLETE", nth=5),  # answer, with the client's Event-UUID
        lambda e: with_headers(e, Application__UUID="00000000-1111-2222-3333-444444444444"),
    )
    assert "Application-UUID: real" in _differences(real, sim)
    assert "[<sent#1>] vs sim" in _differences(real, sim)


def test_comparator_reports_a_digit() -> None:
    real = load_session("hotline_ivr_agent")
    sim = perturb(real, lambda e: e.name == "DTMF", lambda e: with_headers(e, DTMF__Digit="5"))
    assert "DTMF-Digit: real '1' [1] vs sim '5' [5]" in _differences(real, sim)


def test_comparator_reports_a_missing_event_per_leg() -> None:
    real = load_session("hotline_ivr_agent")
    sim = perturb(real, _on(real, "B", "CHANNEL_PARK"), lambda e: None)
    text = _differences(real, sim)
    assert "B: event sequence differs (real 15 events, sim 14)" in text
    assert "delete: real ['#5 CHANNEL_PARK'] -> sim []" in text
    assert not any(line.startswith(("A:", "C:")) for line in text.splitlines())


def test_comparator_reports_a_job_result() -> None:
    real = load_session("hotline_ivr_agent")
    sim = perturb(
        real,
        lambda e: e.name == "BACKGROUND_JOB",
        lambda e: with_headers(e, body="-ERR NO_ANSWER\n"),
    )
    text = _differences(real, sim)
    assert "BACKGROUND_JOB de3518f9-b98d-4607-a620-8f8400a705d1:" in text
    assert (
        "body: real '+OK e2a9ac9a-e327-407f-a3ae-3daab323c4c8\\n' [+OK <leg B>\\n]"
        " vs sim '-ERR NO_ANSWER\\n' [-ERR NO_ANSWER\\n]"
    ) in text


def test_comparator_reports_an_api_reply() -> None:
    real = load_session("hotline_ivr_agent")
    sim = Session(real.name, sent=list(real.sent))
    changed = False
    for item in real.received:
        if not changed and isinstance(item.message, ApiResponse) and "Success" in item.message.body:
            item = dataclasses.replace(item, message=ApiResponse("-ERR No such channel!\n"))
            changed = True
        sim.received.append(item)
    text = _differences(real, sim)
    assert "reply to #8 `api uuid_record" in text
    assert "real '+OK Success\\n' [+OK Success\\n] vs sim '-ERR No such channel!\\n'" in text


def test_comparator_cross_leg_order_is_free() -> None:
    """Moving B's events after all of A's changes nothing: only per-leg order counts."""
    real = load_session("agent_no_answer")
    c = _uid(real, "C")
    others: list[Received] = [r for r in real.received if not (r.event and r.event.unique_id == c)]
    leg_c = [r for r in real.received if r.event and r.event.unique_id == c]
    reordered = others + leg_c
    # As a simulator would number them: sequence and time follow the emission order.
    stamps = sorted(
        (int(r.event.headers["Event-Sequence"]), int(r.event.headers["Event-Date-Timestamp"]))
        for r in reordered
        if r.event is not None
    )
    renumbered: list[Received] = []
    for item in reordered:
        if item.event is not None:
            seq, ts = stamps.pop(0)
            event = with_headers(item.event, Event__Sequence=str(seq))
            event = with_headers(event, Event__Date__Timestamp=str(ts))
            item = dataclasses.replace(item, message=event)
        renumbered.append(item)
    sim = Session(real.name, sent=list(real.sent), received=renumbered)
    assert _differences(real, sim) == ""


def test_comparator_reports_framing() -> None:
    """Malformed bytes, a missing disconnect-notice and a backwards Event-Sequence are found."""
    real = load_session("caller_abandons_in_queue")
    broken = Received(999, 0.0, Malformed("bad Content-Length 'x'", b"junk"), Malformed("", b""), 0)
    items = [r for r in real.received if _kind_of(r) != "text/disconnect-notice"]
    sim = Session(real.name, sent=list(real.sent), received=[*items, broken])
    sim.received[5], sim.received[6] = sim.received[6], sim.received[5]
    text = _differences(real, sim)
    assert "frame #999: malformed" in text
    assert "other frames: real ['auth/request', 'text/disconnect-notice'] vs sim" in text
    assert "Event-Sequence goes backwards at event #" in text


def _kind_of(item: Received) -> str:
    return item.frame.content_type if isinstance(item.frame, Frame) else "malformed"


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_replay_driver_against_trace_playback(name: str) -> None:
    """The driver + comparator find nothing when the 'simulator' is the real trace itself."""
    scenario = SCENARIOS[name]
    sessions: list[Session] = []
    known: dict[str, str] | None = None
    for plan in scenario.connections:
        sessions.append(load_session(plan.trace, known))
        known = sessions[-1].legs
    server = TracePlaybackServer(sessions)
    port = await server.start()
    try:
        results = await asyncio.wait_for(run_scenario(scenario, port), SCENARIO_TIMEOUT)
    finally:
        await server.stop()
    assert server.mismatches == []
    failed, text = scenario_report(scenario, results)
    assert not failed, text
    for result in results:
        assert result.log == [], describe(results)
        assert set(result.uuid_map) == set(result.real.legs)
        assert all(server.rename[u] == s for u, s in result.uuid_map.items())


@pytest.mark.parametrize(
    ("header", "a", "b", "same"),
    [
        ("Event-Date-Timestamp", "1795332764490705", "1700000000000001", True),
        ("Event-Date-GMT", "Sun, 22 Nov 2026 07:32:44 GMT", "Mon, 01 Jan 2024 00:00:00 GMT", True),
        ("Core-UUID", "1bd98ff3-6cf5-4b89-8a94-0d4f02d89639", str(uuid.uuid4()), True),
        (
            "Channel-Name",
            "sofia/internal/1001@127.0.0.1:5081",
            "sofia/internal/1002@127.0.0.1:5082",
            True,
        ),
        ("Channel-State", "CS_EXECUTE", "CS_PARK", False),
        ("Hangup-Cause", "NORMAL_CLEARING", "NO_ANSWER", False),
        ("variable_sip_hangup_disposition", "recv_bye", "send_bye", False),
        ("Caller-Caller-ID-Number", "12345", "1001", False),
        ("DTMF-Digit", "1", "5", False),
        ("Caller-Channel-Answered-Time", "0", "1795332764490705", False),
        ("expires", "3600", "0", False),
        ("expires", "3600", "1795332616", False),
        ("expires", "3600", "10", True),
        ("variable_sip_call_id", "1-26857@127.0.0.1", "abc", True),  # VALUE_NOT_COMPARED
        ("variable_sip_to_tag", "27526SIPpTag010", "g615aD1HmBBBr", True),
        ("variable_sip_to_tag", "27526SIPpTag010", "", False),
        ("X-Route", "<sip:1@127.0.0.1>;tag=jrmQe32reXQgF", "<sip:2@127.0.0.1>;tag=x1", True),
        ("X-Route", "<sip:1@127.0.0.1>;tag=jrmQe32reXQgF", "<sip:1@127.0.0.1>", False),
    ],
)
def test_shape_rules(header: str, a: str, b: str, same: bool) -> None:
    diffs = compare_headers({header: a}, {header: b}, {}, {})
    assert (diffs == []) is same, diffs


async def test_missing_simulator_skips_and_broken_one_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only an absent ``telephony.sim.server`` skips; one that fails to import fails."""
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "SIM_MODULE", "telephony.sim.no_such_server")
    with pytest.raises(pytest.skip.Exception):
        await _start_simulator()
    (tmp_path / "broken_sim_server.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(module, "SIM_MODULE", "broken_sim_server")
    with pytest.raises(pytest.fail.Exception, match="no_such_dependency_xyz"):
        await _start_simulator()
