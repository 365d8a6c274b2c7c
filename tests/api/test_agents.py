"""Agents: CRUD by admins, sign-in / busy / idle / sign-out, scoping by role and area."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, text

from telephony.acd.agent_state import AgentState
from telephony.auth import Role
from telephony.services import Services
from telephony.store.models import AgentStateChange, AuditEntry, table_of
from tests.api.fakes import Tokens

_CHANGES = table_of(AgentStateChange)
_AUDIT = table_of(AuditEntry)


async def _create(
    client: httpx.AsyncClient, admin: dict[str, str], agent_id: str, ext: str, **extra: Any
) -> httpx.Response:
    body = {"id": agent_id, "name": f"Agent {agent_id}", "extension": ext, **extra}
    return await client.post("/v1/agents", json=body, headers=admin)


async def _history(services: Services, agent_id: str) -> list[tuple[str, str, str, str | None]]:
    await services.buffer.flushed()
    async with services.database.connect() as connection:
        rows = await connection.execute(
            select(_CHANGES.c.from_state, _CHANGES.c.event, _CHANGES.c.to_state, _CHANGES.c.reason)
            .where(_CHANGES.c.agent_id == agent_id)
            .order_by(_CHANGES.c.at)
        )
        return [tuple(r) for r in rows]


async def _audit(services: Services) -> list[tuple[str, str, str]]:
    async with services.database.connect() as connection:
        rows = await connection.execute(
            select(_AUDIT.c.principal, _AUDIT.c.action, _AUDIT.c.target_id).order_by(_AUDIT.c.at)
        )
        return [tuple(r) for r in rows]


async def test_admin_creates_an_agent_with_skills_and_it_is_stored_and_audited(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    reply = await _create(client, admin, "a1", "1001", area="east", skills={"general": 3})
    assert reply.status_code == 201, reply.text
    assert reply.json()["state"] == "logged_out"
    assert reply.json()["skills"] == {"general": 3}
    assert services.roster.get("a1").area == "east"
    async with services.database.connect() as connection:
        row = (await connection.execute(text("select name, area from agents where id='a1'"))).one()
        skill = (await connection.execute(text("select group_id, level from agent_skills"))).one()
    assert tuple(row) == ("Agent a1", "east")
    assert tuple(skill) == ("general", 3)
    assert await _audit(services) == [("root", "agent.create", "a1")]
    listed = await client.get("/v1/agents", headers=admin)
    assert [a["id"] for a in listed.json()["agents"]] == ["a1"]


async def test_duplicate_id_or_extension_is_a_conflict(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert (await _create(client, admin, "a1", "1001")).status_code == 201
    same_id = await _create(client, admin, "a1", "1002")
    same_ext = await _create(client, admin, "a2", "1001")
    assert (same_id.status_code, same_id.json()["error"]) == (409, "conflict")
    assert same_ext.status_code == 409
    assert "1001" in same_ext.json()["detail"]


async def test_malformed_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    missing = await client.post("/v1/agents", json={"id": "a1", "extension": "1"}, headers=admin)
    assert missing.status_code == 422
    assert missing.json()["error"] == "invalid_request"
    assert [f["field"] for f in missing.json()["fields"]] == ["name"]
    assert "name" in missing.json()["detail"]

    bad_ext = await _create(client, admin, "a1", "10 01; hangup")
    assert [f["field"] for f in bad_ext.json()["fields"]] == ["extension"]

    bad_level = await _create(client, admin, "a1", "1001", skills={"general": 0})
    assert bad_level.json()["fields"][0]["field"] == "skills.general"

    no_group = await _create(client, admin, "a1", "1001", skills={"nope": 1})
    assert no_group.status_code == 422
    assert no_group.json()["detail"] == "skills: no skill group nope"

    not_json = await client.post(
        "/v1/agents", content=b"{not json", headers={**admin, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "malformed_json"
    assert "not valid JSON" in not_json.json()["detail"]
    assert "Traceback" not in not_json.text


async def test_agent_signs_in_goes_busy_idle_and_out_with_history(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _create(client, admin, "a1", "1001")
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")

    signed_in = await client.post("/v1/agents/a1/sign-in", headers=me)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["agent"]["state"] == "available"
    assert signed_in.json()["deferred"] is False
    busy = await client.post("/v1/agents/a1/busy", json={"reason": "lunch"}, headers=me)
    assert (busy.json()["agent"]["state"], busy.json()["agent"]["reason"]) == ("busy", "lunch")
    assert (await client.post("/v1/agents/a1/idle", headers=me)).json()["agent"]["state"] == (
        "available"
    )
    assert (await client.post("/v1/agents/a1/sign-out", headers=me)).status_code == 200

    assert await _history(services, "a1") == [
        ("logged_out", "sign_in", "available", None),
        ("available", "set_busy", "busy", "lunch"),
        ("busy", "set_idle", "available", None),
        ("available", "sign_out", "logged_out", None),
    ]
    async with services.database.connect() as connection:
        state = await connection.scalar(text("select state from agents where id='a1'"))
    assert state == "logged_out"
    # An agent acting on itself is not a privileged action: only the creation is audited.
    assert [a[1] for a in await _audit(services)] == ["agent.create"]


async def test_busy_during_a_call_is_deferred_and_the_reply_says_so(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _create(client, admin, "a1", "1001")
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")
    await client.post("/v1/agents/a1/sign-in", headers=me)
    services.roster.get("a1").state = AgentState.IN_CALL  # the engine put it on a call

    busy = await client.post("/v1/agents/a1/busy", json={"reason": "meeting"}, headers=me)
    assert busy.status_code == 200
    assert busy.json()["deferred"] is True
    assert "deferred" in busy.json()["detail"]
    assert busy.json()["agent"]["state"] == "in_call"
    assert busy.json()["agent"]["pending"] == "set_busy"
    shown = await client.get("/v1/agents/a1", headers=me)
    assert shown.json()["pending"] == "set_busy"
    history = await _history(services, "a1")
    assert history[-1] == ("in_call", "set_busy", "in_call", "meeting")


async def test_busy_needs_a_reason(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens
) -> None:
    await _create(client, admin, "a1", "1001")
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")
    await client.post("/v1/agents/a1/sign-in", headers=me)
    reply = await client.post("/v1/agents/a1/busy", json={}, headers=me)
    assert reply.status_code == 422
    assert reply.json()["fields"][0]["field"] == "reason"


async def test_illegal_change_is_409(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens
) -> None:
    await _create(client, admin, "a1", "1001")
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")
    reply = await client.post("/v1/agents/a1/busy", json={"reason": "x"}, headers=me)
    assert reply.status_code == 409
    assert reply.json() == {
        "error": "illegal_transition",
        "detail": "cannot set_busy while logged_out",
    }


async def test_unknown_agent_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/agents/ghost"),
        ("POST", "/v1/agents/ghost/sign-in"),
        ("PATCH", "/v1/agents/ghost"),
        ("DELETE", "/v1/agents/ghost"),
    ):
        reply = await client.request(
            method, path, headers=admin, json={} if method == "PATCH" else None
        )
        assert reply.status_code == 404, (method, path)
        assert reply.json() == {"error": "not_found", "detail": "no agent 'ghost'"}


async def test_an_agent_token_acts_only_on_its_own_agent(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _create(client, admin, "a1", "1001")
    await _create(client, admin, "a2", "1002")
    a1 = await tokens.headers("li", Role.AGENT, agent_id="a1")
    reply = await client.post("/v1/agents/a2/sign-in", headers=a1)
    assert reply.status_code == 403
    assert reply.json()["error"] == "forbidden"
    assert services.roster.get("a2").state is AgentState.LOGGED_OUT
    assert (await client.get("/v1/agents/a2", headers=a1)).status_code == 403
    listed = await client.get("/v1/agents", headers=a1)
    assert [a["id"] for a in listed.json()["agents"]] == ["a1"]
    assert (await _create(client, a1, "a3", "1003")).status_code == 403


async def test_supervisor_sees_and_acts_only_within_its_area_and_is_audited(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _create(client, admin, "east1", "1001", area="east")
    await _create(client, admin, "west1", "2001", area="west")
    boss = await tokens.headers("wang", Role.SUPERVISOR, area="east")

    listed = await client.get("/v1/agents", headers=boss)
    assert [a["id"] for a in listed.json()["agents"]] == ["east1"]
    assert (await client.get("/v1/agents/west1", headers=boss)).status_code == 403
    assert (await client.post("/v1/agents/west1/sign-in", headers=boss)).status_code == 403
    assert services.roster.get("west1").state is AgentState.LOGGED_OUT

    assert (await client.post("/v1/agents/east1/sign-in", headers=boss)).status_code == 200
    assert services.roster.get("east1").state is AgentState.AVAILABLE
    assert ("wang", "agent.sign_in", "east1") in await _audit(services)
    # Supervisors do not administer agents.
    patched = await client.patch("/v1/agents/east1", json={"name": "x"}, headers=boss)
    assert patched.status_code == 403


async def test_auditor_cannot_sign_agents_in(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _create(client, admin, "a1", "1001")
    auditor = await tokens.headers("zhao", Role.AUDITOR)
    reply = await client.post("/v1/agents/a1/sign-in", headers=auditor)
    assert reply.status_code == 403
    assert "auditor" in reply.json()["detail"]
    assert services.roster.get("a1").state is AgentState.LOGGED_OUT


async def test_patch_changes_fields_and_the_roster(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await _create(client, admin, "a1", "1001", area="east")
    reply = await client.patch(
        "/v1/agents/a1",
        json={"name": "Li Na", "area": None, "skills": {"general": 5}},
        headers=admin,
    )
    assert reply.status_code == 200, reply.text
    agent = services.roster.get("a1")
    assert (agent.name, agent.area, agent.skills) == ("Li Na", None, {"general": 5})
    async with services.database.connect() as connection:
        row = (await connection.execute(text("select name, area from agents"))).one()
    assert tuple(row) == ("Li Na", None)
    assert ("root", "agent.update", "a1") in await _audit(services)


async def test_extension_changes_and_deletes_need_a_signed_out_agent(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await _create(client, admin, "a1", "1001")
    await client.post("/v1/agents/a1/sign-in", headers=admin)
    moved = await client.patch("/v1/agents/a1", json={"extension": "1009"}, headers=admin)
    assert moved.status_code == 409
    assert (await client.delete("/v1/agents/a1", headers=admin)).status_code == 409

    await client.post("/v1/agents/a1/sign-out", headers=admin)
    assert (await client.delete("/v1/agents/a1", headers=admin)).status_code == 204
    assert "a1" not in services.roster.agents
    async with services.database.connect() as connection:
        assert await connection.scalar(text("select count(*) from agents")) == 0
    actions = [a[1] for a in await _audit(services)]
    assert actions == ["agent.create", "agent.sign_in", "agent.sign_out", "agent.delete"]
