"""1,000 calls of mixed outcomes: the API's KPIs and statistics equal those recomputed here.

The CDRs (and their queue entries) are inserted directly, as the engine writes
them (``telephony.calls.records``): the KPIs and statistics read rows only, so
the engine is not needed to make them. The expected values are recomputed in
Python from the same rows, independently of the SQL under test.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from telephony.services import Services
from telephony.store.models import Call, QueueEntry, SkillGroup, table_of

START = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=8)  # Nov 1, local midnight
HOTLINES = ("12345", "12315", "12328")
GROUPS = {"general": 30, "complaints": 20}
OUTCOMES = (
    "answered",
    "abandoned_in_queue",
    "abandoned_in_ivr",
    "lost",
    "refused",
    "self_service",
    "voicemail",
    "blocked",
)


def _calls(seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    calls, entries = [], []
    for n in range(1000):
        arrived = START + timedelta(seconds=rng.randrange(30 * 86400))
        outcome = rng.choice(OUTCOMES)
        queued = outcome in ("answered", "abandoned_in_queue") or (
            outcome == "lost" and rng.random() < 0.5
        )
        group = rng.choice(list(GROUPS))
        wait = float(rng.randrange(0, 90)) if queued else None
        answered = outcome == "answered"
        hung_up = {"abandoned_in_queue": "caller", "abandoned_in_ivr": "caller"}.get(
            outcome, rng.choice(("caller", "agent", "system")) if answered else "system"
        )
        ivr_answered = outcome != "refused" and not (
            outcome == "abandoned_in_ivr" and rng.random() < 0.3
        )
        queued_at = arrived + timedelta(seconds=15) if queued else None
        row = {
            "uuid": uuid.UUID(int=n + 1),
            "hotline": rng.choice(HOTLINES),
            "caller": f"139{n:08d}",
            "arrived_at": arrived,
            "ivr_answered_at": arrived + timedelta(seconds=1) if ivr_answered else None,
            "queued_at": queued_at,
            "agent_answered_at": queued_at + timedelta(seconds=wait) if answered else None,
            "ended_at": arrived + timedelta(seconds=400),
            "wait_seconds": wait,
            "talk_seconds": float(rng.randrange(20, 300)) if answered else None,
            "hold_seconds": float(rng.randrange(0, 30)) if answered else None,
            "agent_id": rng.choice(("a1", "a2", "a3")) if answered else None,
            "skill_group_id": group,
            "hung_up_by": hung_up,
            "outcome": outcome,
            "survey_score": rng.choice((None, 1, 2, 3, 4, 5, 5)) if answered else None,
            "direction": rng.choice(("inbound",) * 19 + ("outbound",)),
        }
        calls.append(row)
        if queued:
            entries.append(
                {
                    "id": uuid.uuid4(),
                    "call_uuid": row["uuid"],
                    "skill_group_id": group,
                    "entered_at": queued_at,
                    "left_at": queued_at + timedelta(seconds=wait),
                    "result": "answered" if answered else "abandoned",
                    "agent_id": row["agent_id"],
                }
            )
    return calls, entries


def _expected_kpis(calls: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    citizen = [c for c in calls if c["direction"] == "inbound"]
    asked = [c for c in citizen if c["queued_at"] is not None]
    answered = [c for c in asked if c["agent_answered_at"] is not None]
    manual = [
        c
        for c in asked
        if c["outcome"] not in ("lost", "refused")
        and not (
            c["agent_answered_at"] is None
            and c["hung_up_by"] == "caller"
            and c["wait_seconds"] <= 20
        )
    ]
    rated = [c for c in citizen if c["survey_score"] is not None]
    completion = [
        c for c in citizen if not (c["ivr_answered_at"] is None and c["hung_up_by"] == "caller")
    ]
    return {
        "answer_rate_30s": (sum(c["wait_seconds"] <= 30 for c in answered), len(asked)),
        "manual_connection_rate": (
            sum(c["agent_answered_at"] is not None for c in manual),
            len(manual),
        ),
        "call_loss_rate": (sum(c["outcome"] in ("lost", "refused") for c in citizen), len(citizen)),
        "keypress_satisfaction": (sum(c["survey_score"] >= 4 for c in rated), len(rated)),
        "system_completion_rate": (
            sum(c["ivr_answered_at"] is not None for c in completion),
            len(completion),
        ),
    }


@pytest.fixture
async def bulk(services: Services) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, entries = _calls()
    async with services.database.begin() as connection:
        await connection.execute(
            insert(table_of(SkillGroup)),
            [
                {"id": g, "name": g, "service_level_seconds": s, "settings": {}}
                for g, s in GROUPS.items()
                if g != "general"  # exists from the first migration, with 30 s
            ],
        )
        await connection.execute(insert(table_of(Call)), calls)
        await connection.execute(insert(table_of(QueueEntry)), entries)
    services.clock = (START + timedelta(days=40)).timestamp
    return calls, entries


MONTH = {"from": "2026-11-01", "to": "2026-11-30"}


async def test_kpis_equal_those_recomputed_from_the_cdrs(
    bulk: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    client: httpx.AsyncClient,
    admin: dict[str, str],
) -> None:
    calls, _ = bulk
    response = await client.get("/v1/reports/kpis", params=MONTH, headers=admin)
    (group,) = response.json()["groups"]
    for key, expected in _expected_kpis(calls).items():
        assert (group[key]["numerator"], group[key]["denominator"]) == expected, key
    response = await client.get(
        "/v1/reports/kpis", params={**MONTH, "group_by": "hotline"}, headers=admin
    )
    groups = {g["group"]: g for g in response.json()["groups"]}
    for hotline in HOTLINES:
        expected = _expected_kpis([c for c in calls if c["hotline"] == hotline])
        for key in ("answer_rate_30s", "call_loss_rate", "system_completion_rate"):
            got = groups[hotline][key]
            assert (got["numerator"], got["denominator"]) == expected[key], (hotline, key)
    days = (
        await client.get("/v1/reports/kpis", params={**MONTH, "interval": "day"}, headers=admin)
    ).json()["groups"]
    assert (
        sum(d["call_loss_rate"]["denominator"] for d in days)
        == group["call_loss_rate"]["denominator"]
    )


async def test_statistics_equal_those_recomputed_from_the_rows(
    bulk: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    client: httpx.AsyncClient,
    admin: dict[str, str],
) -> None:
    calls, entries = bulk
    by_uuid = {c["uuid"]: c for c in calls}
    response = await client.get(
        "/v1/reports/skill-groups", params={**MONTH, "interval": "total"}, headers=admin
    )
    assert response.status_code == 200, response.text
    rows = {r["key"]: r["values"] for r in response.json()["rows"]}
    for group, level in GROUPS.items():
        mine = [e for e in entries if e["skill_group_id"] == group]
        waits = [(e["left_at"] - e["entered_at"]).total_seconds() for e in mine]
        answered = [e for e in mine if e["result"] == "answered"]
        got = rows[group]
        assert got["offered"] == len(mine)
        assert got["answered"] == len(answered)
        assert got["abandoned"] == sum(
            e["result"] == "abandoned" and by_uuid[e["call_uuid"]]["hung_up_by"] == "caller"
            for e in mine
        )
        assert got["lost"] == sum(by_uuid[e["call_uuid"]]["outcome"] == "lost" for e in mine)
        assert got["answered_within_service_level"] == sum(
            by_uuid[e["call_uuid"]]["wait_seconds"] <= level for e in answered
        )
        asa = Fraction(
            sum(int(by_uuid[e["call_uuid"]]["wait_seconds"]) for e in answered), len(answered)
        )
        assert got["average_speed_of_answer"] == pytest.approx(float(asa))
        aht = sum(by_uuid[e["call_uuid"]]["talk_seconds"] for e in answered) / len(answered)
        assert got["average_handle_time"] == pytest.approx(aht)  # no wrap-up rows here
        assert got["longest_wait"] == max(waits)
    response = await client.get(
        "/v1/reports/hotlines", params={**MONTH, "interval": "month"}, headers=admin
    )
    hot = {r["key"]: r["values"] for r in response.json()["rows"]}
    for hotline in HOTLINES:
        mine = [c for c in calls if c["hotline"] == hotline and c["direction"] == "inbound"]
        assert hot[hotline]["calls"] == len(mine)
        for outcome in OUTCOMES:
            assert hot[hotline][outcome] == sum(c["outcome"] == outcome for c in mine)
    response = await client.get(
        "/v1/reports/agents", params={**MONTH, "interval": "total"}, headers=admin
    )
    agents = {r["key"]: r["values"] for r in response.json()["rows"]}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for c in calls:
        if c["agent_id"]:
            t = totals[c["agent_id"]]
            t[0] += 1
            t[1] += c["talk_seconds"]
            t[2] += c["hold_seconds"]
    for agent, (count, talk, hold) in totals.items():
        assert agents[agent]["calls"] == count
        assert agents[agent]["talk_seconds"] == pytest.approx(talk)
        assert agents[agent]["hold_seconds"] == pytest.approx(hold)
