"""The wallboard (``GET /wallboard``) in headless Chromium against the simulator.

Citizens call and wait in two queues with no agent to take them (one agent
busy, one signed out); the page must show the queue counts the API reports
(``GET /v1/calls``' queued calls per skill group, and ``telephony_queue_length``
on ``/metrics``), the agents by state ``GET /v1/agents`` reports, and today's
service level and KPIs as ``/v1/reports/skill-groups`` and ``/v1/reports/kpis``
compute them (a few of today's calls are seeded so the KPIs have numbers). A
screenshot is taken (its path printed) and the numbers are read from the DOM of
that same page state. Browser set-up as in ``test_console.py``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from telephony.auth import Role
from telephony.reports.periods import DEFAULT_TIME_ZONE
from telephony.store.models import Call as CallRow
from telephony.store.models import QueueEntry, table_of
from tests.e2e.test_console import page, playwright_api, pytestmark  # noqa: F401
from tests.live.conftest import stack  # noqa: F401
from tests.live.stack import LiveStack
from tests.store.conftest import database, embedded_server, engine  # noqa: F401

#: Key 0 is the 12345 menu's "an agent" (group general), key 2 its complaint queue.
WAITING = {"general": ("dtmf=0", 3), "complaint": ("dtmf=2", 2)}
AGENT_STATES = ("available", "ringing", "in_call", "wrap_up", "busy", "logged_out")
KPI_KEYS = (
    "answer_rate_30s",
    "manual_connection_rate",
    "call_loss_rate",
    "system_completion_rate",
    "keypress_satisfaction",
    "missed_callback_rate",
    "follow_up_coverage",
    "availability",
)


async def seed_today(live: LiveStack) -> None:
    """Four calls that ended earlier today: two answered (12 s, 45 s), one abandoned, one lost."""
    now = datetime.now(UTC) - timedelta(seconds=90)
    calls: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for n, (outcome, wait, score) in enumerate(
        [("answered", 12.0, 5), ("answered", 45.0, 3), ("abandoned_in_queue", 25.0, None)]
    ):
        call_uuid = uuid.uuid4()
        answered = now + timedelta(seconds=wait) if outcome == "answered" else None
        calls.append(
            {
                "uuid": call_uuid,
                "caller": f"1390000000{n}",
                "hotline": "12345",
                "arrived_at": now - timedelta(seconds=5),
                "ivr_answered_at": now - timedelta(seconds=4),
                "queued_at": now,
                "agent_answered_at": answered,
                "ended_at": now + timedelta(seconds=60),
                "wait_seconds": wait,
                "talk_seconds": 15.0 if answered else None,
                "skill_group_id": "general",
                "hung_up_by": "caller",
                "outcome": outcome,
                "survey_score": score,
            }
        )
        entries.append(
            {
                "id": uuid.uuid4(),
                "call_uuid": call_uuid,
                "skill_group_id": "general",
                "entered_at": now,
                "left_at": now + timedelta(seconds=wait),
                "result": "answered" if answered else "abandoned",
            }
        )
    lost = dict.fromkeys(calls[0], None)  # one statement: every row has every column
    lost.update(
        uuid=uuid.uuid4(),
        caller="13900000009",
        hotline="12345",
        arrived_at=now,
        ended_at=now + timedelta(seconds=1),
        hung_up_by="system",
        outcome="lost",
    )
    calls.append(lost)
    async with live.services.database.begin() as connection:
        await connection.execute(insert(table_of(CallRow)), calls)
        await connection.execute(insert(table_of(QueueEntry)), entries)


async def _missed_calls_have_callbacks(live: LiveStack, count: int) -> bool:
    reply = await live.http.get("/v1/missed-calls", headers=live.admin)
    assert reply.status_code == 200, reply.text
    missed = reply.json()["missed_calls"]
    return len(missed) >= count and all(m["callback_id"] for m in missed)


async def _queued_per_group(live: LiveStack) -> Counter[str]:
    reply = await live.http.get("/v1/calls", headers=live.admin)
    assert reply.status_code == 200, reply.text
    return Counter(c["skill_group_id"] for c in reply.json()["calls"] if c["state"] == "queued")


async def _queue_lengths(live: LiveStack) -> dict[str, int]:
    text = (await live.http.get("/metrics")).text
    found = re.findall(r'^telephony_queue_length\{group="([^"]+)"\} ([0-9.]+)$', text, re.M)
    return {group: int(float(value)) for group, value in found}


async def _expected_reports(live: LiveStack) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What the page must show: service level per group, KPI counts and value, from the API."""
    day = datetime.now(ZoneInfo(DEFAULT_TIME_ZONE)).date().isoformat()
    window = {"from": day, "to": day, "tz": DEFAULT_TIME_ZONE, "interval": "total"}
    levels = await live.http.get("/v1/reports/skill-groups", params=window, headers=live.admin)
    kpis = await live.http.get("/v1/reports/kpis", params=window, headers=live.admin)
    assert levels.status_code == kpis.status_code == 200, (levels.text, kpis.text)
    service = {
        row["key"]: f"{row['values']['answered_within_service_level']} / {row['values']['offered']}"
        for row in levels.json()["rows"]
        if row["values"]["offered"]
    }
    (group,) = [g for g in kpis.json()["groups"] if g["scope"] == "all"]
    shown: dict[str, tuple[str, str]] = {}
    for key in KPI_KEYS:
        value = group[key]
        counts = "-"
        if value["numerator"] is not None:
            counts = f"{value['numerator']} / {value['denominator']}"
        known = value["available"] and value["value"] is not None
        shown[key] = (counts, _percent(value["value"]) if known else "-")
    return service, shown


def _percent(value: float) -> str:
    """As the page's ``(100 * value).toFixed(1) + "%"`` (JavaScript rounds halves up)."""
    exact = Decimal(100 * value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{exact}%"


async def _page_numbers(board: Any) -> dict[str, str]:
    """Every number on the wallboard with a test id, read from the DOM."""
    values: dict[str, str] = await board.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid]')]
            .map((e) => [e.dataset.testid, e.textContent.trim()]))"""
    )
    return values


async def test_the_wallboard_shows_the_queue_counts_the_api_reports(
    stack: LiveStack,  # noqa: F811
    page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    expect = playwright_api.expect
    for group in WAITING:  # "general" comes with the schema; "complaint" is new
        body = {"name": group.title(), "service_level_seconds": 20}
        reply = await stack.http.patch(f"/v1/skill-groups/{group}", headers=stack.admin, json=body)
        if reply.status_code == 404:
            body["id"] = group
            reply = await stack.http.post("/v1/skill-groups", headers=stack.admin, json=body)
        assert reply.status_code in (200, 201), reply.text
    await stack.add_agent("a1", "1001")
    await stack.add_agent("a2", "1002")
    await stack.sign_in("a1")
    reply = await stack.http.post(
        "/v1/agents/a1/busy", headers=stack.admin, json={"reason": "meeting"}
    )
    assert reply.status_code == 200, reply.text
    await seed_today(stack)
    # The dialer's scan (every 10 s) makes the seeded abandoned and lost calls callback
    # tasks, which 漏接回拨率 counts: wait for it, or the page and the API could be read on
    # either side of it.
    async with asyncio.timeout(30):
        while not await _missed_calls_have_callbacks(stack, 2):
            await asyncio.sleep(0.2)
    token = await stack.token("zhang", Role.ADMIN)

    await page.goto(stack.base_url + "/wallboard?refresh=5")
    await page.get_by_test_id("token").fill(token)
    await page.get_by_test_id("connect").click()
    await expect(page.get_by_test_id("link")).to_contain_text("online · zhang")
    await expect(page.get_by_test_id("agents-busy")).to_have_text("1")
    await expect(page.get_by_test_id("agents-logged_out")).to_have_text("1")

    n = 0
    for key, count in WAITING.values():
        for _ in range(count):
            n += 1
            await stack.call(f"1380013{n:04d}", key, "dtmf_delay_ms=5000")
    want = Counter({group: count for group, (_, count) in WAITING.items()})
    async with asyncio.timeout(30):
        while await _queued_per_group(stack) != want:
            await asyncio.sleep(0.2)
    for group, count in want.items():
        await expect(page.get_by_test_id(f"queue-{group}-waiting")).to_have_text(str(count))
    await expect(page.get_by_test_id("waiting-total")).to_have_text(str(sum(want.values())))

    # Today's service level and KPIs: the page reads the reports every 5 s; wait for a read
    # that agrees with the API's (each read of both is of the same rows once the calls queued).
    for _ in range(60):
        service, kpis = await _expected_reports(stack)
        shown = await _page_numbers(page)
        page_service = {g: shown.get(f"queue-{g}-sl") for g in service}
        page_kpis = {k: (shown.get(f"kpi-{k}-counts"), shown.get(f"kpi-{k}-value")) for k in kpis}
        page_kpis["availability"] = kpis["availability"]  # it grows with the clock: below
        if (page_service, page_kpis) == (service, kpis):
            break
        await asyncio.sleep(0.5)
    assert (page_service, page_kpis) == (service, kpis)

    await page.wait_for_timeout(1200)  # a tick of the longest-wait clock
    shot = tmp_path / "wallboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    print(f"\nwallboard screenshot: {shot}")

    # The page as shot, against the API read right after.
    shown = await _page_numbers(page)
    queued = await _queued_per_group(stack)
    lengths = await _queue_lengths(stack)
    agents = (await stack.http.get("/v1/agents", headers=stack.admin)).json()["agents"]
    by_state = Counter(a["state"] for a in agents)
    service, kpis = await _expected_reports(stack)
    ends = ("-waiting", "-longest", "-sl", "-counts", "-value")
    print("page:", {k: v for k, v in shown.items() if k.endswith(ends) or k.startswith("agents-")})
    for group in WAITING:
        assert shown[f"queue-{group}-waiting"] == str(queued[group]) == str(lengths[group])
        assert re.fullmatch(r"\d\d:\d\d", shown[f"queue-{group}-longest"]), shown
        assert shown[f"queue-{group}-sl"] == service[group]
    assert shown["waiting-total"] == str(sum(queued.values()))
    for state in AGENT_STATES:
        assert shown[f"agents-{state}"] == str(by_state[state]), state
    assert shown["agents-total"] == str(len(agents))
    for key, (counts, value) in kpis.items():
        if key != "availability":
            assert (shown[f"kpi-{key}-counts"], shown[f"kpi-{key}-value"]) == (counts, value), key
    # 呼叫接入系统可用率 counts microseconds up to now: the page's read is up to 5 s older, of a
    # service time of seconds in this test (the start's outage weighs less with every second).
    assert re.fullmatch(r"outage [0-9:]+ of [0-9:]+", shown["kpi-availability-counts"]), shown
    page_share = float(shown["kpi-availability-value"].rstrip("%"))
    assert abs(page_share - float(kpis["availability"][1].rstrip("%"))) <= 2.0
    assert kpis["call_loss_rate"][0].startswith("1 / ")  # the seeded loss
    assert shown["calls-in-progress"] == str(sum(want.values()))
    assert not await page.get_by_test_id("reports-error").is_visible()
    assert await page.evaluate("typeof Chart") == "function"  # the vendored library loaded
    bars = await page.evaluate(
        "() => Chart.getChart('chart-queues').data.datasets[0].data.reduce((a, b) => a + b, 0)"
    )
    assert bars == sum(want.values())
