"""Missed calls become callback tasks; the dialer calls them back agent first, pacing by
the outbound channels and free agents, inbound first, retrying by disposition."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

from telephony.auth import Role
from telephony.outbound.store import RuleBook, scan_missed, utc
from tests.outbound.conftest import OutboundRig, insert_cdr

OUTCOMES = ["abandoned_in_ivr", "abandoned_in_queue", "refused", "lost", "voicemail"]
BUSY = [f"1380000{n:04d}" for n in range(0, 4)]
NO_ANSWER = [f"1380000{n:04d}" for n in range(4, 7)]
NOT_FOUND = f"1380000{7:04d}"
REJECT = f"1380000{8:04d}"


def number(n: int) -> str:
    return f"1380000{n:04d}"


async def _missed_calls(rig: OutboundRig) -> None:
    """50 citizens' missed calls: 10 real ones on the simulator (they hang up while queued,
    no agent signed in), 40 CDRs of the other outcomes, 10 repeats within the merge window,
    answered calls (not missed), an outbound call (not missed) and a blocked citizen."""
    db = rig.services.database
    real = [
        await rig.sim_api("call", "12345", number(n), "hangup_after_s=4") for n in range(40, 50)
    ]
    assert all(r.startswith("+OK") for r in real)
    now = dt.datetime.now(dt.UTC)
    for n in range(40):
        await insert_cdr(db, number(n), OUTCOMES[n % len(OUTCOMES)], now - dt.timedelta(minutes=30))
    for n in range(10):  # the same citizens again, 10 minutes later: merged
        await insert_cdr(db, number(n), "abandoned_in_queue", now - dt.timedelta(minutes=20))
    for n in range(60, 65):
        await insert_cdr(db, number(n), "answered", now - dt.timedelta(minutes=25))
    await insert_cdr(db, number(66), "failed", now - dt.timedelta(minutes=25), direction="outbound")
    reply = await rig.http.post(
        "/v1/blocked-numbers", json={"number": number(99)}, headers=rig.admin
    )
    assert reply.status_code == 201
    await rig.services.blocked.reload()
    await insert_cdr(db, number(99), "abandoned_in_queue", now - dt.timedelta(minutes=10))

    async def real_ended() -> bool:
        rows = await rig.fetch(
            "select count(*) as n from calls where caller like '13800000%' and ended_at is not"
            " null and outcome like 'abandoned%' and caller between :low and :high",
            low=number(40),
            high=number(49),
        )
        return rows[0]["n"] == 10

    await rig.wait_for(real_ended, 30)


async def test_fifty_missed_calls_become_fifty_callbacks_and_are_all_attempted(
    outbound_rig: OutboundRig,
) -> None:
    rig = outbound_rig
    await _missed_calls(rig)
    # The rules decide what counts; the scan is idempotent.
    async with rig.services.database.begin() as connection:
        book = await RuleBook.load(connection)
        since = utc(0)
        added = await scan_missed(
            connection, book, since, dt.datetime.now(dt.UTC), rig.services.blocked.contains
        )
        again = await scan_missed(
            connection, book, since, dt.datetime.now(dt.UTC), rig.services.blocked.contains
        )
    assert (added, again) == (61, 0)  # 50 + 10 repeats + the blocked citizen's
    tasks = await rig.fetch("select * from outbound_tasks where kind = 'callback'")
    by_state: dict[str, int] = {}
    for t in tasks:
        by_state[t["state"]] = by_state.get(t["state"], 0) + 1
    assert by_state == {"pending": 50, "not_required": 1}
    merged = [t for t in tasks if t["missed_count"] == 2]
    assert len(merged) == 10

    reply = await rig.http.get("/v1/missed-calls?limit=500", headers=rig.admin)
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["total"] == 61
    row = page["missed_calls"][0]
    assert {
        "id",
        "caller",
        "hotline",
        "arrived_at",
        "outcome",
        "callback_state",
        "attempts",
    } <= set(row)
    blocked = [r for r in page["missed_calls"] if r["caller"] == number(99)]
    assert blocked[0]["callback_state"] == "not_required"
    west = await rig.tokens.headers("sup-west", Role.SUPERVISOR, area="west")
    assert (await rig.http.get("/v1/missed-calls", headers=west)).json()["total"] == 0
    east = await rig.tokens.headers("sup-east", Role.SUPERVISOR, area="east")
    assert (await rig.http.get("/v1/missed-calls", headers=east)).json()["total"] == 61

    # The citizens' phones: most answer and talk 2 s; some are busy, never answer, decline
    # or do not exist.
    for n in range(50):
        behaviour = "answer"
        if number(n) in BUSY:
            behaviour = "busy"
        elif number(n) in NO_ANSWER:
            behaviour = "no_answer"
        elif number(n) == NOT_FOUND:
            behaviour = "not_found"
        elif number(n) == REJECT:
            behaviour = "reject"
        await rig.sim_api(
            "citizen", number(n), behaviour, "answer_after_ms=1000", "hangup_after_s=2"
        )
    await rig.agent("a1", "1001")
    await rig.agent("a2", "1002")

    inbound: list[str] = []

    async def citizens_keep_calling() -> None:
        for n in range(12):
            reply = await rig.sim_api("call", "12345", f"1390000{n:04d}", "hangup_after_s=100")
            inbound.append(reply.removeprefix("+OK "))
            await asyncio.sleep(0.6)

    await rig.dialer.start()
    caller_task = asyncio.create_task(citizens_keep_calling())
    await rig.settled("callback", timeout=120)
    await caller_task

    # Inbound calls came first: every one reached an agent.
    async def inbound_ended() -> list[Any]:
        rows = await rig.fetch(
            "select * from calls where caller like '1390000%' and ended_at is not null"
        )
        return rows if len(rows) == 12 else []

    rows = await rig.wait_for(inbound_ended, 60)
    assert {r["outcome"] for r in rows} == {"answered"}, [
        (r["outcome"], r["wait_seconds"]) for r in rows
    ]
    attempts = await rig.fetch("select * from outbound_attempts order by started_at")
    queued = await rig.fetch(
        "select q.entered_at, q.left_at from queue_entries q join calls c on c.uuid = q.call_uuid"
        " where c.caller like '1390000%'"
    )
    margin = dt.timedelta(seconds=0.3)
    started_while_waiting = [
        a
        for a in attempts
        for q in queued
        if q["left_at"] and q["entered_at"] + margin < a["started_at"] < q["left_at"] - margin
    ]
    assert started_while_waiting == []

    # Pacing: never more callbacks at once than agents (2), never more than the 4 channels.
    # An attempt's end is stamped when its result is written, which can be a little after
    # its agent was freed and taken by the next one: the same margin as above.
    events = sorted(
        [(a["started_at"], 1) for a in attempts]
        + [(a["ended_at"] - margin, -1) for a in attempts]
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2 and rig.dialer.peak <= 4

    # Retries by disposition, on schedule, up to the limit; every attempt recorded once.
    tasks = {
        t["number"]: t
        for t in await rig.fetch("select * from outbound_tasks where kind = 'callback'")
    }
    per_task: dict[Any, list[Any]] = {}
    for a in attempts:
        per_task.setdefault(a["task_id"], []).append(a)
    for n in BUSY + NO_ANSWER:
        task = tasks[n]
        tries = per_task[task["id"]]
        assert task["state"] == "failed" and task["attempts"] == 3 and len(tries) == 3
        want = "busy" if n in BUSY else "no_answer"
        assert {t["disposition"] for t in tries} == {want}
        for before, after in itertools.pairwise(tries):
            assert (after["started_at"] - before["ended_at"]).total_seconds() >= 0.95
    assert tasks[NOT_FOUND]["state"] == "failed" and tasks[NOT_FOUND]["attempts"] == 1
    assert tasks[REJECT]["attempts"] == 3
    reached = [t for t in tasks.values() if t["state"] == "reached"]
    assert len(reached) == 50 - len(BUSY) - len(NO_ANSWER) - 2
    for t in reached:
        last = per_task[t["id"]][-1]
        assert last["disposition"] == "answered" and last["agent_id"] in ("a1", "a2")
        assert last["talk_seconds"] and last["talk_seconds"] > 0
    assert all(a["state"] == "ended" for a in attempts)

    # Every outbound leg showed the hotline's number and none was left up.
    assert rig.gateway_legs
    assert {ch.var("origination_caller_id_number") for ch in rig.gateway_legs} == {"12345"}
    assert not [ch for ch in rig.gateway_legs if ch.is_up]

    # The coverage report, from the rows.
    reply = await rig.http.get("/v1/callbacks?limit=1", headers=rig.admin)
    summary = reply.json()["summary"]
    assert summary["total"] == 51 and summary["not_required"] == 1
    assert summary["attempted_rate"] == 1.0
    assert summary["reached_rate"] == round(len(reached) / 50, 4)
    assert summary["coverage"] == 1.0
    one = reply.json()["callbacks"][0]["id"]
    detail = (await rig.http.get(f"/v1/callbacks/{one}", headers=rig.admin)).json()
    assert "attempt_list" in detail
    missed = (
        await rig.http.get("/v1/missed-calls?callback_state=reached&limit=500", headers=rig.admin)
    ).json()
    assert missed["total"] == len(reached) + sum(1 for t in reached if t["missed_count"] == 2)


async def test_an_agent_takes_a_callback_from_the_list(outbound_rig: OutboundRig) -> None:
    rig = outbound_rig
    await insert_cdr(
        rig.services.database, "13900001234", "abandoned_in_queue", dt.datetime.now(dt.UTC)
    )
    await rig.sim_api("citizen", "13900001234", "answer", "hangup_after_s=2")
    body = {"id": "a1", "name": "a1", "extension": "1001"}
    assert (await rig.http.post("/v1/agents", json=body, headers=rig.admin)).status_code == 201
    await rig.sim_api("phone", "1001", "answer_after_ms=300")
    a1 = await rig.tokens.headers("a1", Role.AGENT, agent_id="a1")
    # Signed out: the dialer leaves the task alone; the agent signs in and takes it by hand.
    await rig.dialer.start()

    async def listed() -> Any:
        page = (await rig.http.get("/v1/missed-calls", headers=a1)).json()
        return page["missed_calls"]

    rows = await rig.wait_for(listed, 10)
    reply = await rig.http.post(f"/v1/missed-calls/{rows[0]['id']}/callback", json={}, headers=a1)
    assert reply.status_code == 409  # not available yet
    await rig.dialer.stop()  # only the agent's own take dials now
    assert (await rig.http.post("/v1/agents/a1/sign-in", headers=a1)).status_code == 200
    reply = await rig.http.post(f"/v1/missed-calls/{rows[0]['id']}/callback", json={}, headers=a1)
    assert reply.status_code == 202, reply.text
    task_id = reply.json()["callback_id"]

    async def reached() -> Any:
        detail = (await rig.http.get(f"/v1/callbacks/{task_id}", headers=rig.admin)).json()
        return detail if detail["state"] == "reached" else None

    detail = await rig.wait_for(reached, 20)
    assert detail["attempt_list"][0]["agent_id"] == "a1"
    assert detail["attempt_list"][0]["disposition"] == "answered"
    again = await rig.http.post(f"/v1/missed-calls/{rows[0]['id']}/callback", json={}, headers=a1)
    assert again.status_code == 409
