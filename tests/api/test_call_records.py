"""Call records (CDRs): filters, paging, the timeline, and who may read which."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from telephony.auth import Role
from telephony.services import Services
from telephony.store.models import Agent, Call, CallEvent, Hotline, table_of
from tests.api.fakes import Tokens

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
C1, C2, C3, C4 = (uuid.UUID(int=i) for i in range(1, 5))


async def _seed(services: Services) -> None:
    """Four calls: east hotline answered by an east agent, a west one, an abandoned, an orphan."""
    async with services.database.begin() as connection:
        await connection.execute(
            insert(table_of(Hotline)),
            [
                {"number": "12345", "name": "East", "flow": "main", "area": "east"},
                {"number": "12315", "name": "West", "flow": "main", "area": "west"},
            ],
        )
        await connection.execute(
            insert(table_of(Agent)),
            [
                {"id": "e1", "name": "E", "extension": "1001", "area": "east", "state": "busy"},
                {"id": "w1", "name": "W", "extension": "2001", "area": "west", "state": "busy"},
            ],
        )
        calls = [
            (C1, "12345", "13800000001", T0, "e1", "answered"),
            (C2, "12315", "13800000002", T0 + timedelta(hours=1), "w1", "answered"),
            (C3, "12315", "13800000001", T0 + timedelta(hours=2), "e1", "answered"),
            (C4, "99999", "13800000003", T0 + timedelta(hours=3), None, "abandoned_in_queue"),
        ]
        await connection.execute(
            insert(table_of(Call)),
            [
                {
                    "uuid": u,
                    "hotline": h,
                    "caller": c,
                    "arrived_at": at,
                    "agent_id": a,
                    "outcome": o,
                    "ended_at": at + timedelta(minutes=3),
                }
                for u, h, c, at, a, o in calls
            ],
        )
        await connection.execute(
            insert(table_of(CallEvent)),
            [
                {
                    "id": uuid.uuid4(),
                    "call_uuid": C1,
                    "at": T0 + timedelta(seconds=s),
                    "kind": k,
                    "detail": d,
                }
                for s, k, d in (
                    (30, "agent_answered", {"agent": "e1"}),
                    (0, "arrived", {"caller": "13800000001"}),
                    (12, "queued", {"group": "general"}),
                )
            ],
        )


async def _uuids(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str | int
) -> list[str]:
    reply = await client.get("/v1/call-records", headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    return [r["uuid"] for r in reply.json()["records"]]


async def test_filters_and_paging(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await _seed(services)
    s1, s2, s3, s4 = (str(u) for u in (C1, C2, C3, C4))
    assert await _uuids(client, admin) == [s4, s3, s2, s1]  # newest first
    assert await _uuids(client, admin, caller="13800000001") == [s3, s1]
    assert await _uuids(client, admin, hotline="12315") == [s3, s2]
    assert await _uuids(client, admin, agent="e1") == [s3, s1]
    assert await _uuids(client, admin, outcome="abandoned_in_queue") == [s4]
    window = {
        "since": (T0 + timedelta(hours=1)).isoformat(),
        "until": (T0 + timedelta(hours=3)).isoformat(),
    }
    assert await _uuids(client, admin, **window) == [s3, s2]
    page = await client.get("/v1/call-records", headers=admin, params={"limit": 2, "offset": 1})
    assert [r["uuid"] for r in page.json()["records"]] == [s3, s2]
    assert (page.json()["total"], page.json()["limit"], page.json()["offset"]) == (4, 2, 1)


async def test_bad_filters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    reply = await client.get("/v1/call-records", headers=admin, params={"since": "yesterday"})
    assert reply.status_code == 422
    assert reply.json()["fields"][0]["field"] == "since"
    reply = await client.get("/v1/call-records", headers=admin, params={"limit": 100000})
    assert reply.json()["fields"][0]["field"] == "limit"
    reply = await client.get("/v1/call-records/not-a-uuid", headers=admin)
    assert (reply.status_code, reply.json()["fields"][0]["field"]) == (422, "record_id")


async def test_a_record_with_its_timeline_in_order(
    client: httpx.AsyncClient, tokens: Tokens, services: Services
) -> None:
    await _seed(services)
    auditor = await tokens.headers("zhao", Role.AUDITOR)
    reply = await client.get(f"/v1/call-records/{C1}", headers=auditor)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["caller"], body["agent_id"], body["outcome"]) == ("13800000001", "e1", "answered")
    assert [e["kind"] for e in body["timeline"]] == ["arrived", "queued", "agent_answered"]
    assert body["timeline"][1]["detail"] == {"group": "general"}
    missing = await client.get(f"/v1/call-records/{uuid.UUID(int=99)}", headers=auditor)
    assert missing.status_code == 404


async def test_supervisor_sees_its_hotlines_and_its_agents_calls_only(
    client: httpx.AsyncClient, tokens: Tokens, services: Services
) -> None:
    await _seed(services)
    east = await tokens.headers("wang", Role.SUPERVISOR, area="east")
    # C1: east hotline; C3: west hotline answered by east agent e1. Not C2 (west/west), not C4.
    assert await _uuids(client, east) == [str(C3), str(C1)]
    assert (await client.get(f"/v1/call-records/{C2}", headers=east)).status_code == 404
    assert (await client.get(f"/v1/call-records/{C3}", headers=east)).status_code == 200
    both = await tokens.headers("li", Role.SUPERVISOR, area="east,west")
    assert len(await _uuids(client, both)) == 3


async def test_agents_may_not_read_call_records(
    client: httpx.AsyncClient, tokens: Tokens, services: Services
) -> None:
    await _seed(services)
    services.roster.load([])
    agent = await tokens.headers("e1", Role.AGENT, agent_id="e1")
    reply = await client.get("/v1/call-records", headers=agent)
    assert reply.status_code == 403
    assert (await client.get(f"/v1/call-records/{C1}", headers=agent)).status_code == 403
