"""1,000 simulated calls of mixed outcomes through the simulator and the real engine: the
statistics and KPIs the API reports equal those recomputed here, in plain Python, from the
rows the engine wrote (issue 11, "what it must show").

The stack is `telephony serve`'s: the simulator, the call engine running an IVR flow
(menu: 1 self-service, 2 the ``consult`` queue, nothing the ``general`` queue; a
satisfaction survey when the agent hangs up first), the roster and the write buffer of
:class:`telephony.services.Services`, and the API on top. Every clock (the engine's, the
roster's, the API's ``now``) is the simulator's, which runs ``TIME_SCALE`` times faster than
the wall clock, so a 30 s wait in the CDRs takes 1.5 s of the test's time.

The citizens, placed at a fixed rate a few hundred at a time, are of these kinds:

* self-service: press 1, hear the information, the flow hangs up;
* abandoned in the IVR: hang up during the menu;
* impatient (hang up 12 s after the answer: within 20 s of joining the queue) and
  moderately impatient (40 s: later than 20 s), each answered if an agent is free in time;
* patient (45-80 s): answered, often after more than 30 s, the citizen ends the talk;
* surveyed: the test hangs the agent's phone up, and presses a score 1-5 in the survey.

Agents: twelve phones that answer after 0.3 s to 4 s (simulated), one that never answers and
one that rejects (their offers fail, the call is offered again; the test puts them back to
idle every second, so they keep missing offers). The queues are loaded near capacity so
that waits run from nothing to over 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.api.app import create_app
from telephony.auth import Role
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.config import Settings
from telephony.esl.messages import Event
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
from telephony.esl.transport import EslConnection
from telephony.ivr.flows_port import EngineFlows
from telephony.ivr.service import IvrService, IvrSettings
from telephony.ivr.timing import MEDIA_APPS
from telephony.services import EngineDirectory, Services
from telephony.sim.server import Simulator
from tests.api.fakes import Tokens
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
TIME_SCALE = 20.0
CALLS = 1000
#: Calls placed per wall-clock second (about 0.55 per simulated second).
RATE = 11.0
ZONE = ZoneInfo("Asia/Shanghai")
CONSULT_SERVICE_LEVEL = 20

FLOW = """\
name: 1,000 simulated calls
hotlines: ["12345", "12328"]
survey:
  prompt: prompts/common/survey.wav
  invalid_prompt: prompts/common/invalid.wav
  thanks: prompts/common/survey_thanks.wav
  timeout: 8
  retries: 1
start: menu
nodes:
  menu:
    type: menu
    prompt: prompts/12345/menu_main.wav
    options:
      1: info
      2: consult
      0: agent
    invalid_prompt: prompts/common/invalid.wav
    timeout_prompt: prompts/common/timeout.wav
    timeout: 3
    retries: 0
    fallback: agent
  info:
    type: play
    prompt: prompts/12345/welcome.wav
    next: bye
  bye:
    type: hangup
  consult:
    type: queue
    group: consult
    prompt: prompts/common/to_agent.wav
  agent:
    type: queue
    group: general
    prompt: prompts/common/to_agent.wav
"""

#: (agent id, extension, phone behaviour, skills): twelve phones that answer after 0.3 s to
#: 4 s, one that never answers and one that rejects every call.
_DELAYS = (300, 800, 1500, 2500, 4000)
_SKILLS: tuple[dict[str, int], ...] = (
    *({"general": 1} for _ in range(5)),
    *({"consult": 1} for _ in range(4)),
    *({"general": 1, "consult": 1} for _ in range(3)),
)
AGENTS = [
    (f"a{n:02d}", f"20{n:02d}", f"answer_after_ms={_DELAYS[n % len(_DELAYS)]}", skills)
    for n, skills in enumerate(_SKILLS)
] + [
    ("never", "2090", "never", {"general": 2, "consult": 2}),
    ("rejects", "2091", "reject", {"general": 2, "consult": 2}),
]
FLAKY = ("never", "rejects")


@dataclass
class Stack:
    sim: Simulator
    services: Services
    calls: CallEngine
    esl: EslConnection
    http: httpx.AsyncClient
    admin: dict[str, str]

    async def sim_api(self, *words: str) -> str:
        return (await self.esl.api("sim", *words, check=False)).body.strip()

    async def fetch(self, sql: str) -> list[dict[str, Any]]:
        async with self.services.database.connect() as connection:
            return [dict(r) for r in (await connection.execute(text(sql))).mappings()]

    def now(self) -> float:
        return self.sim.switch.clock.now()


@pytest.fixture
async def stack(
    database: Database,  # noqa: F811
    engine: AsyncEngine,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copytree(REPO / "ivr_flows" / "prompts", flows / "prompts")
    (flows / "skill_groups.yaml").write_text(
        "skill_groups:\n  - {id: general, name: General}\n  - {id: consult, name: Consult}\n",
        encoding="utf-8",
    )
    (flows / "hotline-12345.yaml").write_text(FLOW, encoding="utf-8")
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    clock = sim.switch.clock.now
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    url = database.url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=url, data_dir=tmp_path, freeswitch=f"esl://:ClueCon@127.0.0.1:{port}"
    )
    services = Services(settings, engine, clock=clock)
    await services.start(migrate=False)
    ivr = IvrService(IvrSettings(flows_dir=flows, reload_interval_s=60))
    await ivr.start()
    esl = EslConnection(
        f"esl://:ClueCon@127.0.0.1:{port}",
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    calls = CallEngine(
        esl,
        services.roster,
        services.buffer,
        EngineSettings(
            recordings_dir=recordings, ring_timeout_s=5, wrap_up_s=0.2, reoffer_after_s=3.0
        ),
        clock=clock,
        flows=EngineFlows(ivr),
    )
    services.roster.on_available = lambda agent: calls.route()
    directory = EngineDirectory([calls])
    directory.hotline_areas = {"12345": "east", "12328": "east"}
    services.calls = directory
    runner = asyncio.create_task(calls.run())
    await esl.connect()
    tokens = Tokens(services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://api.test"
    ) as http:
        admin = await tokens.headers("root", Role.ADMIN)
        yield Stack(sim, services, calls, esl, http, admin)
    await calls.close()
    runner.cancel()
    await esl.close()
    await ivr.stop()
    await services.stop()
    await sim.stop()


# -- the citizens ------------------------------------------------------------------------------


@dataclass
class Citizen:
    kind: str
    hotline: str
    options: list[str]
    score: int | None = None


def _citizens(rng: random.Random) -> list[Citizen]:
    kinds = [
        ("self_service", 8),
        ("ivr_abandon", 7),
        ("impatient", 15),
        ("moderate", 10),
        ("patient", 45),
        ("surveyed", 15),
    ]
    population = [k for k, weight in kinds for _ in range(weight)]
    citizens = []
    for n in range(CALLS):
        kind = population[n % len(population)] if n < len(population) else rng.choice(population)
        hotline = "12345" if n % 3 else "12328"
        consult = ["dtmf=2", "dtmf_delay_ms=2500"] if rng.random() < 0.4 else []
        if kind == "self_service":
            citizens.append(
                Citizen(kind, hotline, ["dtmf=1", "dtmf_delay_ms=2500", "hangup_after_s=60"])
            )
        elif kind == "ivr_abandon":
            citizens.append(Citizen(kind, hotline, ["hangup_after_s=1.2"]))
        elif kind == "impatient":
            citizens.append(Citizen(kind, hotline, [*consult, "hangup_after_s=12"]))
        elif kind == "moderate":
            citizens.append(Citizen(kind, hotline, [*consult, "hangup_after_s=40"]))
        elif kind == "patient":
            after = rng.choice((45, 55, 65, 80))
            citizens.append(Citizen(kind, hotline, [*consult, f"hangup_after_s={after}"]))
        else:
            score = rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
            citizens.append(Citizen(kind, hotline, [*consult, "hangup_after_s=600"], score))
    return citizens


class PromptWatch:
    """One reader of the engine's events: which calls have started their survey prompt."""

    def __init__(self, esl: EslConnection) -> None:
        self.stream = esl.events()
        self.survey: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for item in self.stream:
            if (
                isinstance(item, Event)
                and item.name == "CHANNEL_EXECUTE"
                and item.application in MEDIA_APPS
                and "survey.wav" in (item.application_data or "")
                and item.unique_id
            ):
                self.survey[item.unique_id].set()


async def _surveyed(stack: Stack, watch: PromptWatch, uuid: str, score: int) -> None:
    """Wait for the agent, talk a little, hang the agent's phone up, press the score."""
    async with asyncio.timeout(60):
        while True:
            call = stack.calls.calls.get(uuid)
            if call is None:
                return  # ended before an agent took it (a re-offer race, a hang-up)
            if call.state.value == "connected" and call.agent_leg:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # 6 s of talk
    await stack.sim_api("hangup", call.agent_leg)
    try:
        async with asyncio.timeout(10):
            await watch.survey[uuid].wait()
    except TimeoutError:
        return
    await asyncio.sleep(0.05)
    await stack.sim_api("dtmf", uuid, str(score))


async def _place_calls(stack: Stack, citizens: list[Citizen]) -> dict[str, Citizen]:
    watch = PromptWatch(stack.esl)
    placed: dict[str, Citizen] = {}
    followers: list[asyncio.Task[None]] = []
    start = asyncio.get_running_loop().time()
    for n, citizen in enumerate(citizens):
        due = start + n / RATE
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        reply = await stack.sim_api("call", citizen.hotline, f"139{n:08d}", *citizen.options)
        assert reply.startswith("+OK"), reply
        uuid = reply.removeprefix("+OK ").strip()
        placed[uuid] = citizen
        if citizen.score is not None:
            followers.append(asyncio.create_task(_surveyed(stack, watch, uuid, citizen.score)))
    await asyncio.gather(*followers)
    watch.task.cancel()
    return placed


async def _keep_flaky_agents_trying(stack: Stack, stop: asyncio.Event) -> None:
    """Put the phones that never answer, or reject, back to idle: they keep missing offers."""
    while not stop.is_set():
        for agent_id in FLAKY:
            agent = stack.services.roster.get(agent_id)
            if agent is not None and agent.state.value == "busy":
                reply = await stack.http.post(f"/v1/agents/{agent_id}/idle", headers=stack.admin)
                assert reply.status_code in (200, 409), reply.text
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


# -- recomputation from the rows ---------------------------------------------------------------


def _day(at: datetime) -> datetime:
    """The interval (day) an instant falls in: local midnight in the hotlines' zone, as UTC."""
    local = at.astimezone(ZONE)
    return datetime.combine(local.date(), time(), ZONE).astimezone(UTC)


def _days(start: datetime, end: datetime) -> Iterable[tuple[datetime, datetime, datetime]]:
    """(interval name, from, to) for each local day [start, end) touches."""
    day = _day(start)
    while day < end:
        following = datetime.combine(
            day.astimezone(ZONE).date() + timedelta(days=1), time(), ZONE
        ).astimezone(UTC)
        yield day, max(day, start), min(following, end)
        day = following


def _citizen_call(call: dict[str, Any]) -> bool:
    # kpis.py: "Only citizens' calls count (direction inbound or not recorded)".
    return (call["direction"] or "inbound") == "inbound"


def _kpi_counts(call: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    """For one CDR: (in the denominator, in the numerator) of each KPI counted from calls."""
    citizen = _citizen_call(call)
    asked = citizen and call["queued_at"] is not None
    answered = call["agent_answered_at"] is not None
    wait = call["wait_seconds"]
    # 30秒接通率: "calls answered by an agent within 30 s of joining the queue / citizens'
    # calls that joined a queue (asked for an agent), abandons included".
    within_30 = answered and wait is not None and wait <= 30
    # 人工接通率: "calls answered by an agent / citizens' calls that joined a queue, less
    # those the citizen hung up within 20 s of joining it unanswered (主动挂断) and those the
    # system lost (lost, refused: 系统故障)".
    quick = (not answered) and call["hung_up_by"] == "caller" and wait is not None and wait <= 20
    loss = call["outcome"] in ("lost", "refused")
    # 按键满意率: "ratings of 4 or more (满意, 非常满意) / all ratings (survey_score present)".
    rated = citizen and call["survey_score"] is not None
    # 系统接通率: "citizens' calls the system answered (IVR answer) / citizens' calls, less
    # those the citizen hung up before the system answered".
    left_early = call["ivr_answered_at"] is None and call["hung_up_by"] == "caller"
    return {
        "answer_rate_30s": (asked, within_30),
        "manual_connection_rate": (asked and not (quick or loss), answered),
        # 呼损率: "citizens' calls the switch ended before an agent took them with no hang-up
        # from the citizen (outcome lost) or refused at arrival for overload (refused) / all
        # citizens' calls".
        "call_loss_rate": (citizen, loss),
        "keypress_satisfaction": (rated, rated and call["survey_score"] >= 4),
        "system_completion_rate": (
            citizen and not left_early,
            call["ivr_answered_at"] is not None,
        ),
    }


KPI_SCOPES = {
    "answer_rate_30s": {"all", "hotline", "skill_group"},
    "manual_connection_rate": {"all", "hotline", "skill_group"},
    "call_loss_rate": {"all", "hotline"},
    "keypress_satisfaction": {"all", "hotline", "skill_group", "agent"},
    "system_completion_rate": {"all", "hotline"},
}
GROUP_COLUMN = {"hotline": "hotline", "skill_group": "skill_group_id", "agent": "agent_id"}


def expected_kpis(calls: list[dict[str, Any]], scope: str) -> dict[Any, dict[str, list[int]]]:
    """(interval, group) -> KPI -> [numerator, denominator]; calls by day of arrival."""
    out: dict[Any, dict[str, list[int]]] = {}
    for call in calls:
        group = "all" if scope == "all" else call[GROUP_COLUMN[scope]]
        if group is None:
            continue
        key = (_day(call["arrived_at"]), group)
        values = out.setdefault(key, {k: [0, 0] for k, s in KPI_SCOPES.items() if scope in s})
        for kpi, (in_d, in_n) in _kpi_counts(call).items():
            if kpi in values and in_d:
                values[kpi][1] += 1
                values[kpi][0] += int(in_n)
    return out


def _final_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One change per agent and instant (statistics.py: "the one whose new state no other
    change of that instant leaves is the last")."""
    by_instant: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        by_instant[(change["agent_id"], change["at"])].append(change)
    final = []
    for same in by_instant.values():
        last = [
            x
            for x in same
            if not any(
                y is not x and y["from_state"] == x["to_state"] and y["from_state"] != y["to_state"]
                for y in same
            )
        ]
        final.append(last[0] if last else same[0])
    return sorted(final, key=lambda x: (x["agent_id"], x["at"]))


STATE_FIELDS = {
    "available": "idle_seconds",
    "busy": "busy_seconds",
    "ringing": "ringing_seconds",
    "in_call": "in_call_seconds",
    "wrap_up": "wrap_up_seconds",
}


def expected_agents(
    calls: list[dict[str, Any]], changes: list[dict[str, Any]], now: datetime
) -> dict[Any, dict[str, Any]]:
    """statistics.py: calls, talk, hold in the interval the agent answered; missed offers
    (event no_answer); each state lasting until the agent's next change (or now); signed in
    = every state but logged_out; occupancy = (ringing + in call + wrap-up) / (that + idle).
    """
    out: dict[Any, dict[str, Any]] = {}

    def entry(day: datetime, agent: str) -> dict[str, Any]:
        return out.setdefault(
            (day, agent),
            {
                "calls": 0,
                "talk_seconds": 0.0,
                "hold_seconds": 0.0,
                "missed_offers": 0,
                "signed_in_seconds": 0.0,
                **dict.fromkeys(STATE_FIELDS.values(), 0.0),
            },
        )

    final = _final_changes(changes)
    for n, change in enumerate(final):
        following = final[n + 1] if n + 1 < len(final) else None
        end = following["at"] if following and following["agent_id"] == change["agent_id"] else now
        for day, start, stop in _days(change["at"], end):
            values = entry(day, change["agent_id"])
            seconds = (stop - start).total_seconds()
            if change["to_state"] != "logged_out":
                values["signed_in_seconds"] += seconds
            if change["to_state"] in STATE_FIELDS:
                values[STATE_FIELDS[change["to_state"]]] += seconds
    for call in calls:
        if call["agent_answered_at"] is None or call["agent_id"] is None:
            continue
        values = entry(_day(call["agent_answered_at"]), call["agent_id"])
        values["calls"] += 1
        values["talk_seconds"] += call["talk_seconds"] or 0.0
        values["hold_seconds"] += call["hold_seconds"] or 0.0
    for change in changes:
        if change["event"] == "no_answer":
            entry(_day(change["at"]), change["agent_id"])["missed_offers"] += 1
    for values in out.values():
        working = values["ringing_seconds"] + values["in_call_seconds"] + values["wrap_up_seconds"]
        ready = working + values["idle_seconds"]
        values["occupancy"] = working / ready if ready else None
    return out


def _wrap_up_after(call: dict[str, Any], changes: list[dict[str, Any]], now: datetime) -> float:
    """statistics.py: "the agent's wrap-up after the call": the agent's first in_call ->
    wrap_up change from the answer to 5 s past the end of the talk, until the next change."""
    answered = call["agent_answered_at"]
    latest = answered + timedelta(seconds=(call["talk_seconds"] or 0.0) + 5.0)
    mine = [c for c in changes if c["agent_id"] == call["agent_id"]]
    wraps = sorted(
        (
            c
            for c in mine
            if c["to_state"] == "wrap_up"
            and c["from_state"] == "in_call"
            and answered <= c["at"] <= latest
        ),
        key=lambda c: c["at"],
    )
    if not wraps:
        return 0.0
    start = wraps[0]["at"]
    after = [c["at"] for c in mine if c["at"] > start]
    return ((min(after) if after else now) - start).total_seconds()


def expected_skill_groups(
    entries: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    levels: dict[str, int],
    now: datetime,
) -> dict[Any, dict[str, Any]]:
    """statistics.py: from queue_entries, in the interval each joined: offered, answered,
    abandoned (the citizen hung up), lost (the system ended it), answered within the group's
    service_level_seconds, average speed of answer (wait of the answered), longest wait,
    average handle time = talk (hold included) + the agent's wrap-up, over the answered."""
    by_uuid = {c["uuid"]: c for c in calls}
    groups: dict[Any, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for e in entries:
        groups[(_day(e["entered_at"]), e["skill_group_id"])].append((e, by_uuid[e["call_uuid"]]))
    out: dict[Any, dict[str, Any]] = {}
    for key, rows in groups.items():
        level = levels.get(key[1], 30)
        waits = [((e["left_at"] or now) - e["entered_at"]).total_seconds() for e, _ in rows]
        answered = [
            (w, e, c) for w, (e, c) in zip(waits, rows, strict=True) if e["result"] == "answered"
        ]
        handles = [
            (c["talk_seconds"] or 0.0) + _wrap_up_after(c, changes, now) for _, _, c in answered
        ]
        out[key] = {
            "offered": len(rows),
            "answered": len(answered),
            "abandoned": sum(
                1 for e, c in rows if e["result"] == "abandoned" and c["hung_up_by"] == "caller"
            ),
            "lost": sum(
                1
                for e, c in rows
                if e["result"] == "abandoned" and c["outcome"] in ("lost", "refused")
            ),
            "answered_within_service_level": sum(1 for w, _, _ in answered if w <= level),
            "service_level_seconds": level,
            "average_speed_of_answer": (
                sum(w for w, _, _ in answered) / len(answered) if answered else None
            ),
            "average_handle_time": sum(handles) / len(handles) if handles else None,
            "longest_wait": max(waits),
        }
    return out


OUTCOMES = (
    "answered",
    "abandoned_in_queue",
    "abandoned_in_ivr",
    "blocked",
    "failed",
    "self_service",
    "voicemail",
    "transferred",
    "lost",
    "refused",
)


def expected_hotlines(calls: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """statistics.py: citizens' calls, in the interval of arrival: calls by outcome, average
    wait and talk (of the answered), longest wait."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        if _citizen_call(call):
            groups[(_day(call["arrived_at"]), call["hotline"])].append(call)
    out: dict[Any, dict[str, Any]] = {}
    for key, rows in groups.items():
        answered = [c for c in rows if c["agent_answered_at"] is not None]
        waits = [c["wait_seconds"] for c in rows if c["wait_seconds"] is not None]
        answered_waits = [c["wait_seconds"] for c in answered if c["wait_seconds"] is not None]
        talks = [c["talk_seconds"] for c in answered if c["talk_seconds"] is not None]
        out[key] = {
            "calls": len(rows),
            **{o: sum(1 for c in rows if c["outcome"] == o) for o in OUTCOMES},
            "queued": sum(1 for c in rows if c["queued_at"] is not None),
            "average_speed_of_answer": (
                sum(answered_waits) / len(answered_waits) if answered_waits else None
            ),
            "average_talk_seconds": sum(talks) / len(talks) if talks else None,
            "longest_wait": max(waits) if waits else None,
        }
    return out


def _same(actual: dict[str, Any], expected: dict[str, Any], where: Any) -> None:
    for name, want in expected.items():
        got = actual[name]
        if want is None or isinstance(want, int):
            assert got == want, (where, name, got, want)
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-5), (where, name, got, want)


def _by_key(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {(datetime.fromisoformat(r["interval_start"]), r["key"]): r["values"] for r in rows}


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.timeout(600)
async def test_1000_simulated_calls_reports_equal_the_recomputation(stack: Stack) -> None:
    rng = random.Random(11)
    reply = await stack.http.post(
        "/v1/skill-groups",
        json={"id": "consult", "name": "Consult", "service_level_seconds": CONSULT_SERVICE_LEVEL},
        headers=stack.admin,
    )
    assert reply.status_code == 201, reply.text
    for agent_id, extension, phone, skills in AGENTS:
        body = {"id": agent_id, "name": agent_id, "extension": extension, "skills": skills}
        reply = await stack.http.post("/v1/agents", json=body, headers=stack.admin)
        assert reply.status_code == 201, reply.text
        await stack.sim_api("phone", extension, phone)
        reply = await stack.http.post(f"/v1/agents/{agent_id}/sign-in", headers=stack.admin)
        assert reply.status_code == 200, reply.text

    citizens = _citizens(rng)
    stop = asyncio.Event()
    flaky = asyncio.create_task(_keep_flaky_agents_trying(stack, stop))
    placed = await _place_calls(stack, citizens)
    async with asyncio.timeout(120):  # every call ended and written
        while stack.calls.calls:
            await asyncio.sleep(0.2)
    stop.set()
    await flaky
    for agent_id, *_ in AGENTS:
        reply = await stack.http.post(f"/v1/agents/{agent_id}/sign-out", headers=stack.admin)
        assert reply.status_code == 200, reply.text
    async with asyncio.timeout(30):
        while any(
            stack.services.roster.get(a).state.value != "logged_out"  # type: ignore[union-attr]
            for a, *_ in AGENTS
        ):
            await asyncio.sleep(0.1)
    await stack.services.buffer.flushed()

    calls = await stack.fetch("select * from calls")
    entries = await stack.fetch("select * from queue_entries")
    changes = await stack.fetch("select * from agent_state_changes")
    levels = {
        r["id"]: r["service_level_seconds"]
        for r in await stack.fetch("select id, service_level_seconds from skill_groups")
    }
    assert len(calls) == CALLS and {str(c["uuid"]) for c in calls} == set(placed)
    assert all(c["ended_at"] is not None for c in calls)

    # The mix really is mixed.
    outcomes = defaultdict(int)
    for call in calls:
        outcomes[call["outcome"]] += 1
    waits = [c["wait_seconds"] for c in calls if c["agent_answered_at"] is not None]
    abandoned_waits = [c["wait_seconds"] for c in calls if c["outcome"] == "abandoned_in_queue"]
    mix = {
        "outcomes": dict(outcomes),
        "answered within 30 s": sum(1 for w in waits if w <= 30),
        "answered after 30 s": sum(1 for w in waits if w > 30),
        "abandoned in queue within 20 s": sum(1 for w in abandoned_waits if w <= 20),
        "abandoned in queue after 20 s": sum(1 for w in abandoned_waits if w > 20),
        "rated": sum(1 for c in calls if c["survey_score"] is not None),
        "rated 4+": sum(1 for c in calls if (c["survey_score"] or 0) >= 4),
        "missed offers": sum(1 for c in changes if c["event"] == "no_answer"),
        "consult": sum(1 for c in calls if c["skill_group_id"] == "consult"),
    }
    print(mix)
    for outcome in ("answered", "abandoned_in_queue", "abandoned_in_ivr", "self_service"):
        assert outcomes[outcome] >= 20, mix
    for name in (
        "answered within 30 s",
        "answered after 30 s",
        "abandoned in queue within 20 s",
        "abandoned in queue after 20 s",
        "missed offers",
        "consult",
    ):
        assert mix[name] >= 10, mix
    assert mix["rated"] >= 50 and 0 < mix["rated 4+"] < mix["rated"], mix

    now = datetime.fromtimestamp(stack.now(), UTC)
    first = min(c["arrived_at"] for c in calls).astimezone(ZONE).date() - timedelta(days=1)
    last: date = now.astimezone(ZONE).date() + timedelta(days=1)
    window = {"from": first.isoformat(), "to": last.isoformat(), "interval": "day"}

    async def get(path: str, **params: str) -> dict[str, Any]:
        reply = await stack.http.get(path, params={**window, **params}, headers=stack.admin)
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    for scope in ("all", "hotline", "skill_group", "agent"):
        report = await get("/v1/reports/kpis", group_by=scope)
        want = expected_kpis(calls, scope)
        got: dict[Any, dict[str, list[int]]] = {}
        for group in report["groups"]:
            key = (datetime.fromisoformat(group["interval_start"]), group["group"])
            values = {
                k: [group[k]["numerator"], group[k]["denominator"]]
                for k, s in KPI_SCOPES.items()
                if scope in s
            }
            if key not in want:  # a day with no call (node history only): nothing counted
                assert all(v == [0, 0] for v in values.values()), (scope, key, values)
                continue
            got[key] = values
        assert got == want, scope

    agents = _by_key((await get("/v1/reports/agents"))["rows"])
    want_agents = expected_agents(calls, changes, now)
    assert set(agents) == set(want_agents)
    for key, values in want_agents.items():
        _same(agents[key], values, key)

    groups = _by_key((await get("/v1/reports/skill-groups"))["rows"])
    want_groups = expected_skill_groups(entries, calls, changes, levels, now)
    assert set(groups) == set(want_groups)
    for key, values in want_groups.items():
        _same(groups[key], values, key)

    hotlines = _by_key((await get("/v1/reports/hotlines"))["rows"])
    want_hotlines = expected_hotlines(calls)
    assert set(hotlines) == set(want_hotlines)
    for key, values in want_hotlines.items():
        _same(hotlines[key], values, key)
