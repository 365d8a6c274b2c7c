"""Live calls from the engine's CallDirectory, scoped to the caller."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from telephony.api.ports import LiveCall
from telephony.auth import Role
from telephony.services import Services
from tests.api.fakes import FakeCalls, Tokens

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _call(uuid: str, area: str | None, agent_id: str | None = None) -> LiveCall:
    return LiveCall(
        uuid=uuid,
        node="fs1:8021",
        caller="13800138000",
        hotline="12345",
        state="talking" if agent_id else "queued",
        arrived_at=T0,
        area=area,
        agent_id=agent_id,
    )


async def _setup(client: httpx.AsyncClient, admin: dict[str, str], services: Services) -> None:
    for agent_id, ext, area in (("e1", "1001", "east"), ("w1", "2001", "west")):
        body = {"id": agent_id, "name": agent_id, "extension": ext, "area": area}
        assert (await client.post("/v1/agents", json=body, headers=admin)).status_code == 201
    assert isinstance(services.calls, FakeCalls)
    services.calls.calls[:] = [
        _call("c-east", "east"),
        _call("c-west", "west"),
        _call("c-west-by-east-agent", "west", agent_id="e1"),
        _call("c-w1", None, agent_id="w1"),
    ]


async def _uuids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    reply = await client.get("/v1/calls", headers=headers)
    assert reply.status_code == 200, reply.text
    return [c["uuid"] for c in reply.json()["calls"]]


async def test_each_role_sees_its_calls(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _setup(client, admin, services)
    east = await tokens.headers("wang", Role.SUPERVISOR, area="east")
    agent_w1 = await tokens.headers("w1", Role.AGENT, agent_id="w1")
    auditor = await tokens.headers("zhao", Role.AUDITOR)

    everything = ["c-east", "c-west", "c-west-by-east-agent", "c-w1"]
    assert await _uuids(client, admin) == everything
    assert await _uuids(client, auditor) == everything
    assert await _uuids(client, east) == ["c-east", "c-west-by-east-agent"]
    assert await _uuids(client, agent_w1) == ["c-w1"]


async def test_one_call_and_404_outside_scope(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _setup(client, admin, services)
    east = await tokens.headers("wang", Role.SUPERVISOR, area="east")
    reply = await client.get("/v1/calls/c-east", headers=east)
    assert reply.status_code == 200
    assert reply.json()["caller"] == "13800138000"
    assert reply.json()["arrived_at"].startswith("2026-11-23T09:00:00")
    assert (await client.get("/v1/calls/c-west", headers=east)).status_code == 404
    assert (await client.get("/v1/calls/nope", headers=admin)).status_code == 404
