"""The contracts' KPIs on a fixture day written by hand, each asserted to the exact fraction.

The day is 2026-11-10 in Asia/Shanghai (UTC+8). Fourteen calls, each with the
reason it is there; the expected values below are worked out by hand from
this list, not by the code under test.

 #  hotline group      asked  wait  answered by  hung up  outcome            IVR answer  score
 1  12345   general    yes    10 s  a1           agent    answered           yes         5
 2  12345   general    yes    30 s  a1           agent    answered           yes         4
 3  12345   general    yes    45 s  a2           caller   answered           yes         3
 4  12345   general    yes    15 s  -            caller   abandoned_in_queue yes         -
 5  12345   general    yes    20 s  -            caller   abandoned_in_queue yes         -
 6  12345   general    yes    50 s  -            caller   abandoned_in_queue yes         -
 7  12345   general    yes    40 s  -            system   lost               yes         -
 8  12315   -          no     -     -            system   lost (in the IVR)  yes         -
 9  12315   -          no     -     -            system   refused            no          -
10  12315   -          no     -     -            caller   abandoned_in_ivr   yes         -
11  12315   -          no     -     -            caller   abandoned_in_ivr   no          -
12  12315   -          no     -     -            system   self_service       yes         -
13  12315   complaints yes     5 s  a2           agent    answered           yes         2
14  outbound call of a1 (外线拨打): counted nowhere
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import httpx
import openpyxl
from sqlalchemy import insert

from telephony.auth import Role
from telephony.services import Services
from telephony.store.models import (
    Agent,
    Call,
    MissedCall,
    NodeConnectionEvent,
    OutboundTask,
    table_of,
)
from tests.api.fakes import Tokens

CN = timedelta(hours=8)
DAY = datetime(2026, 11, 10, tzinfo=UTC) - CN  # local midnight, in UTC
NOW = datetime(2026, 11, 12, tzinfo=UTC) - CN


_COLUMNS = (
    "queued_at",
    "agent_answered_at",
    "wait_seconds",
    "talk_seconds",
    "agent_id",
    "skill_group_id",
    "hung_up_by",
    "outcome",
    "survey_score",
)


def _call(n: int, hotline: str, **values: Any) -> dict[str, Any]:
    arrived = DAY + timedelta(hours=9, minutes=n)
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row |= {
        "uuid": uuid.UUID(int=n),
        "hotline": hotline,
        "caller": f"1380000{n:04d}",
        "arrived_at": arrived,
        "ivr_answered_at": arrived + timedelta(seconds=1),
        "ended_at": arrived + timedelta(minutes=5),
        "direction": "inbound",
    }
    wait = values.pop("wait", None)
    if wait is not None:
        row["queued_at"] = arrived + timedelta(seconds=20)
        row["wait_seconds"] = float(wait)
        row["skill_group_id"] = "general"
    if values.pop("answered", False):
        row["agent_answered_at"] = row["queued_at"] + timedelta(seconds=wait)
        row["talk_seconds"] = 60.0
    row.update(values)
    return row


FIXTURE_DAY = [
    _call(
        1,
        "12345",
        wait=10,
        answered=True,
        agent_id="a1",
        hung_up_by="agent",
        outcome="answered",
        survey_score=5,
    ),
    _call(
        2,
        "12345",
        wait=30,
        answered=True,
        agent_id="a1",
        hung_up_by="agent",
        outcome="answered",
        survey_score=4,
    ),
    _call(
        3,
        "12345",
        wait=45,
        answered=True,
        agent_id="a2",
        hung_up_by="caller",
        outcome="answered",
        survey_score=3,
    ),
    _call(4, "12345", wait=15, hung_up_by="caller", outcome="abandoned_in_queue"),
    _call(5, "12345", wait=20, hung_up_by="caller", outcome="abandoned_in_queue"),
    _call(6, "12345", wait=50, hung_up_by="caller", outcome="abandoned_in_queue"),
    _call(7, "12345", wait=40, hung_up_by="system", outcome="lost"),
    _call(8, "12315", hung_up_by="system", outcome="lost"),
    _call(9, "12315", ivr_answered_at=None, hung_up_by="system", outcome="refused"),
    _call(10, "12315", hung_up_by="caller", outcome="abandoned_in_ivr"),
    _call(11, "12315", ivr_answered_at=None, hung_up_by="caller", outcome="abandoned_in_ivr"),
    _call(12, "12315", hung_up_by="system", outcome="self_service"),
    _call(
        13,
        "12315",
        wait=5,
        answered=True,
        agent_id="a2",
        skill_group_id="complaints",
        hung_up_by="agent",
        outcome="answered",
        survey_score=2,
    ),
    _call(
        14,
        "12345",
        wait=0,
        answered=True,
        agent_id="a1",
        direction="outbound",
        hung_up_by="agent",
        outcome="answered",
        survey_score=1,
    ),
]

# fs1 is down from the control plane's start (Nov 9, 23:00) to midnight; on the 10th fs1
# drops at 10:00 (fs2, up since 08:00, still carries calls), fs2 drops at 10:30 and fs1 is
# back at 10:45: the system had no node for 15 minutes of the day.
NODE_HISTORY = [
    ("fs1", DAY - timedelta(hours=1), False),
    ("fs1", DAY, True),
    ("fs2", DAY + timedelta(hours=8), True),
    ("fs1", DAY + timedelta(hours=10), False),
    ("fs2", DAY + timedelta(hours=10, minutes=30), False),
    ("fs1", DAY + timedelta(hours=10, minutes=45), True),
]

# Worked out by hand from the table above.
EXPECTED_ALL = {
    # asked for an agent: 1-7 and 13; answered within 30 s: 1 (10 s), 2 (30 s), 13 (5 s)
    "answer_rate_30s": Fraction(3, 8),
    # asked, less 4 and 5 (hung up within 20 s) and 7 (lost): 1, 2, 3, 6, 13; answered 1, 2, 3, 13
    "manual_connection_rate": Fraction(4, 5),
    # lost or refused: 7, 8, 9, of the 13 citizens' calls
    "call_loss_rate": Fraction(3, 13),
    # ratings 5, 4, 3, 2: two of four are 4 or more
    "keypress_satisfaction": Fraction(2, 4),
    # 13 calls less 11 (the citizen left before the system answered): 12; answered all but 9
    "system_completion_rate": Fraction(11, 12),
    # 15 minutes without a node in 24 hours
    "availability": Fraction(86400 - 900, 86400),
}
EXPECTED_COUNTS = {
    "answer_rate_30s": (3, 8),
    "manual_connection_rate": (4, 5),
    "call_loss_rate": (3, 13),
    "keypress_satisfaction": (2, 4),
    "system_completion_rate": (11, 12),
    "availability": ((86400 - 900) * 10**6, 86400 * 10**6),
}
EXPECTED_BY_HOTLINE = {
    "12345": {
        "answer_rate_30s": (2, 7),
        "manual_connection_rate": (3, 4),
        "call_loss_rate": (1, 7),
        "keypress_satisfaction": (2, 3),
        "system_completion_rate": (7, 7),
    },
    "12315": {
        "answer_rate_30s": (1, 1),
        "manual_connection_rate": (1, 1),
        "call_loss_rate": (2, 6),
        "keypress_satisfaction": (0, 1),
        "system_completion_rate": (4, 5),
    },
}
EXPECTED_BY_GROUP = {
    "general": {
        "answer_rate_30s": (2, 7),
        "manual_connection_rate": (3, 4),
        "keypress_satisfaction": (2, 3),
    },
    "complaints": {
        "answer_rate_30s": (1, 1),
        "manual_connection_rate": (1, 1),
        "keypress_satisfaction": (0, 1),
    },
}
EXPECTED_BY_AGENT = {
    "a1": {"keypress_satisfaction": (2, 2)},
    "a2": {"keypress_satisfaction": (0, 2)},
}


async def seed_fixture_day(services: Services) -> None:
    async with services.database.begin() as connection:
        await connection.execute(
            insert(table_of(Agent)),
            [
                {"id": a, "name": a, "extension": e, "area": area, "state": "logged_out"}
                for a, e, area in (("a1", "1001", "east"), ("a2", "1002", "west"))
            ],
        )
        await connection.execute(insert(table_of(Call)), FIXTURE_DAY)
        await connection.execute(
            insert(table_of(NodeConnectionEvent)),
            [
                {"id": uuid.uuid4(), "node": n, "at": at, "connected": up, "reason": None}
                for n, at, up in NODE_HISTORY
            ],
        )
    services.clock = NOW.timestamp


def _fraction(value: dict[str, Any]) -> Fraction:
    assert value["available"], value
    return Fraction(value["numerator"], value["denominator"])


async def _kpis(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> Any:
    query = {"from": "2026-11-10", "to": "2026-11-10", **params}
    response = await client.get("/v1/reports/kpis", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_fixture_day_kpis_are_exact(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await seed_fixture_day(services)
    (group,) = (await _kpis(client, admin))["groups"]
    assert group["scope"] == "all"
    for key, expected in EXPECTED_ALL.items():
        assert _fraction(group[key]) == expected, key
        assert (group[key]["numerator"], group[key]["denominator"]) == EXPECTED_COUNTS[key], key
    for key in ("missed_callback_rate", "follow_up_coverage"):
        assert (group[key]["numerator"], group[key]["denominator"]) == (0, 0), key  # no rows


async def test_fixture_day_per_hotline_group_and_agent(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await seed_fixture_day(services)
    for scope, expected in (
        ("hotline", EXPECTED_BY_HOTLINE),
        ("skill_group", EXPECTED_BY_GROUP),
        ("agent", EXPECTED_BY_AGENT),
    ):
        groups = {g["group"]: g for g in (await _kpis(client, admin, group_by=scope))["groups"]}
        assert set(groups) == set(expected), scope
        for name, values in expected.items():
            for key, (n, d) in values.items():
                got = groups[name][key]
                assert (got["numerator"], got["denominator"]) == (n, d), (scope, name, key)
            assert groups[name]["availability"]["available"] is False


async def test_month_and_days(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await seed_fixture_day(services)
    (month,) = (
        await _kpis(
            client, admin, **{"from": "2026-11-01", "to": "2026-11-30", "interval": "month"}
        )
    )["groups"]
    assert month["interval_start"].startswith("2026-10-31T16:00:00")  # Nov 1, 00:00 +08:00
    assert _fraction(month["call_loss_rate"]) == Fraction(3, 13)
    # In service from Nov 9 23:00 to now (Nov 12 00:00): 49 h; no node for 1 h 15 min.
    assert _fraction(month["availability"]) == Fraction(49 * 3600 - 4500, 49 * 3600)
    days = (
        await _kpis(client, admin, **{"from": "2026-11-09", "to": "2026-11-11", "interval": "day"})
    )["groups"]
    assert [_fraction(d["availability"]) for d in days] == [
        Fraction(0),
        Fraction(95, 96),
        Fraction(1),
    ]
    assert [d["call_loss_rate"]["denominator"] for d in days] == [0, 13, 0]


async def test_supervisor_sees_its_areas_calls(
    services: Services, client: httpx.AsyncClient, tokens: Tokens
) -> None:
    await seed_fixture_day(services)
    west = await tokens.headers("boss", Role.SUPERVISOR, area="west")
    (group,) = (await _kpis(client, west))["groups"]
    # west owns agent a2 only (no hotline has an area): calls 3 and 13, both rated below 4
    assert (
        group["keypress_satisfaction"]["numerator"],
        group["keypress_satisfaction"]["denominator"],
    ) == (0, 2)
    agent = await tokens.headers("seat", Role.AGENT, agent_id="a1")
    response = await client.get(
        "/v1/reports/kpis", params={"from": "2026-11-10", "to": "2026-11-10"}, headers=agent
    )
    assert response.status_code == 403


async def test_export_csv_and_xlsx(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await seed_fixture_day(services)
    params = {"from": "2026-11-10", "to": "2026-11-10", "group_by": "hotline"}
    response = await client.get(
        "/v1/reports/kpis", params={**params, "format": "csv"}, headers=admin
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = lines[0]
    rows = {line[2]: dict(zip(header, line, strict=True)) for line in lines[1:]}
    assert rows["12345"]["call_loss_rate 呼损率 numerator"] == "1"
    assert rows["12345"]["call_loss_rate 呼损率 denominator"] == "7"
    response = await client.get(
        "/v1/reports/kpis", params={**params, "format": "xlsx"}, headers=admin
    )
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0] == header
    by_group = {r[2]: dict(zip(header, r, strict=True)) for r in cells[1:]}
    assert by_group["12315"]["system_completion_rate 系统接通率 numerator"] == 4
    assert by_group["12315"]["system_completion_rate 系统接通率 denominator"] == 5


def _task(
    n: int, kind: str, hotline: str, state: str, attempts: int, day: int = 0
) -> dict[str, Any]:
    created = DAY + timedelta(days=day, hours=12, minutes=n)
    return {
        "id": uuid.UUID(int=1000 + n),
        "kind": kind,
        "hotline": hotline,
        "number": f"1390000{n:04d}",
        "state": state,
        "attempts": attempts,
        "max_attempts": 3,
        "next_at": created,
        "missed_count": 1,
        "created_at": created,
        "updated_at": created,
    }


def _missed(n: int, task: int, hotline: str, day: int = 0) -> dict[str, Any]:
    return {
        "call_uuid": uuid.UUID(int=2000 + n),
        "hotline": hotline,
        "caller": f"1370000{n:04d}",
        "arrived_at": DAY + timedelta(days=day, hours=10, minutes=n),
        "outcome": "abandoned_in_queue",
        "task_id": uuid.UUID(int=1000 + task),
    }


async def test_callback_and_follow_up_kpis_count_the_outbound_rows(
    services: Services, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # Callbacks on 12345: task 1 (two merged missed calls) dialled and reached, task 2
    # dialled and given up, task 3 not dialled yet, task 4 a blocked number (not
    # required). On 12315: task 5 dialled once, still pending. A missed call of the next
    # day (task 6, dialled) is outside the day.
    # 漏接回拨率 12345 = missed calls 1, 2 (task 1), 3 (task 2) called back of 1, 2, 3, 4
    # (task 4's call 5 is not required) = 3/4; 12315 = 1/1; the day = 4/5.
    # Follow-ups on 12345: reached, failed (tried its maximum), pending, dialing,
    # not required -> done 2 of 4 due; 12315: one reached -> 1/1; the day = 3/5.
    tasks = [
        _task(1, "callback", "12345", "reached", 1),
        _task(2, "callback", "12345", "failed", 3),
        _task(3, "callback", "12345", "pending", 0),
        _task(4, "callback", "12345", "not_required", 0),
        _task(5, "callback", "12315", "pending", 1),
        _task(6, "callback", "12345", "reached", 1, day=1),
        _task(11, "survey", "12345", "reached", 1),
        _task(12, "survey", "12345", "failed", 3),
        _task(13, "survey", "12345", "pending", 0),
        _task(14, "survey", "12345", "dialing", 1),
        _task(15, "survey", "12345", "not_required", 0),
        _task(16, "survey", "12315", "reached", 2),
    ]
    missed = [
        _missed(1, 1, "12345"),
        _missed(2, 1, "12345"),
        _missed(3, 2, "12345"),
        _missed(4, 3, "12345"),
        _missed(5, 4, "12345"),
        _missed(6, 5, "12315"),
        _missed(7, 6, "12345", day=1),
    ]
    async with services.database.begin() as connection:
        await connection.execute(insert(table_of(OutboundTask)), tasks)
        await connection.execute(insert(table_of(MissedCall)), missed)
    services.clock = NOW.timestamp
    (day,) = (await _kpis(client, admin))["groups"]
    assert _fraction(day["missed_callback_rate"]) == Fraction(4, 5)
    assert (
        day["missed_callback_rate"]["numerator"],
        day["missed_callback_rate"]["denominator"],
    ) == (4, 5)
    assert (day["follow_up_coverage"]["numerator"], day["follow_up_coverage"]["denominator"]) == (
        3,
        5,
    )
    hotlines = {g["group"]: g for g in (await _kpis(client, admin, group_by="hotline"))["groups"]}
    assert _fraction(hotlines["12345"]["missed_callback_rate"]) == Fraction(3, 4)
    assert _fraction(hotlines["12315"]["missed_callback_rate"]) == Fraction(1, 1)
    assert _fraction(hotlines["12345"]["follow_up_coverage"]) == Fraction(2, 4)
    assert _fraction(hotlines["12315"]["follow_up_coverage"]) == Fraction(1, 1)
