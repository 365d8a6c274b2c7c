"""Agent times from ``agent_state_changes``: each state lasts until the agent's next change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import insert

from telephony.services import Services
from telephony.store.models import AgentStateChange, table_of

T0 = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
# (minutes after T0, from, event, to): signed in 09:00-11:00
CHANGES = [
    (0, "logged_out", "sign_in", "available"),
    (10, "available", "offer", "ringing"),
    (11, "ringing", "no_answer", "busy"),  # a missed offer
    (20, "busy", "set_idle", "available"),
    (30, "available", "offer", "ringing"),
    (31, "ringing", "answer", "in_call"),
    (41, "in_call", "call_ended", "wrap_up"),
    (45, "wrap_up", "wrap_up_done", "available"),  # and a deferred busy at the same instant:
    (45, "available", "set_busy", "busy"),
    (60, "busy", "set_idle", "available"),
    (120, "available", "sign_out", "logged_out"),
]


async def test_agent_state_times(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    async with services.database.begin() as connection:
        await connection.execute(
            insert(table_of(AgentStateChange)),
            [
                {
                    "id": uuid.uuid4(),
                    "agent_id": "a1",
                    "at": T0 + timedelta(minutes=m),
                    "from_state": f,
                    "event": e,
                    "to_state": t,
                    "reason": None,
                }
                for m, f, e, t in reversed(CHANGES)
            ],
        )
    services.clock = (T0 + timedelta(days=2)).timestamp
    response = await client.get(
        "/v1/reports/agents",
        params={"from": "2026-11-10", "to": "2026-11-10", "interval": "hour"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    rows = {r["interval_start"][:13]: r["values"] for r in response.json()["rows"]}
    nine, ten = rows["2026-11-10T01"], rows["2026-11-10T02"]
    minute = 60.0
    assert nine["signed_in_seconds"] == pytest.approx(60 * minute)
    assert nine["idle_seconds"] == pytest.approx((10 + 10 + 0 + 0) * minute)
    assert nine["busy_seconds"] == pytest.approx((9 + 15) * minute)
    assert nine["ringing_seconds"] == pytest.approx(2 * minute)
    assert nine["in_call_seconds"] == pytest.approx(10 * minute)
    assert nine["wrap_up_seconds"] == pytest.approx(4 * minute)
    assert nine["missed_offers"] == 1
    assert nine["occupancy"] == pytest.approx(16 / 36)
    assert ten["idle_seconds"] == pytest.approx(60 * minute)
    assert ten["signed_in_seconds"] == pytest.approx(60 * minute)
