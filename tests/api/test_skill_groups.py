"""Skill groups: admin CRUD (audited), overflow rules, who reads what."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from telephony.auth import Role
from telephony.services import Services
from tests.api.fakes import Tokens


async def test_general_exists_and_admin_manages_groups(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    changed: list[str] = []
    services.skill_groups_changed = changed.append
    listed = await client.get("/v1/skill-groups", headers=admin)
    assert [g["id"] for g in listed.json()["groups"]] == ["general"]

    body = {"id": "tax", "name": "Tax", "area": "east", "overflow_group_id": "general"}
    created = await client.post("/v1/skill-groups", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["service_level_seconds"] == 30
    patched = await client.patch(
        "/v1/skill-groups/tax", json={"service_level_seconds": 20}, headers=admin
    )
    assert patched.json()["service_level_seconds"] == 20
    assert (await client.delete("/v1/skill-groups/tax", headers=admin)).status_code == 204
    assert (await client.get("/v1/skill-groups/tax", headers=admin)).status_code == 404
    assert changed == ["tax", "tax", "tax"]
    async with services.database.connect() as connection:
        actions = (await connection.scalars(text("select action from audit_log order by at"))).all()
    assert actions == ["skill_group.create", "skill_group.update", "skill_group.delete"]


async def test_overflow_must_exist_and_never_loop(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    missing = await client.post(
        "/v1/skill-groups", json={"id": "a", "name": "A", "overflow_group_id": "zz"}, headers=admin
    )
    assert (missing.status_code, missing.json()["detail"]) == (
        422,
        "overflow_group_id: no skill group 'zz'",
    )
    await client.post("/v1/skill-groups", json={"id": "a", "name": "A"}, headers=admin)
    await client.post(
        "/v1/skill-groups", json={"id": "b", "name": "B", "overflow_group_id": "a"}, headers=admin
    )
    loop = await client.patch("/v1/skill-groups/a", json={"overflow_group_id": "b"}, headers=admin)
    assert loop.status_code == 422
    assert "loop" in loop.json()["detail"]
    in_use = await client.delete("/v1/skill-groups/a", headers=admin)
    assert (in_use.status_code, in_use.json()["error"]) == (409, "conflict")
    general = await client.delete("/v1/skill-groups/general", headers=admin)
    assert general.status_code == 409
    bad = await client.post("/v1/skill-groups", json={"id": "c", "name": ""}, headers=admin)
    assert bad.json()["fields"][0]["field"] == "name"


async def test_who_reads_and_who_writes(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens
) -> None:
    for gid, area in (("east-q", "east"), ("west-q", "west")):
        body = {"id": gid, "name": gid, "area": area}
        await client.post("/v1/skill-groups", json=body, headers=admin)
    east = await tokens.headers("wang", Role.SUPERVISOR, area="east")
    seen = await client.get("/v1/skill-groups", headers=east)
    assert [g["id"] for g in seen.json()["groups"]] == ["east-q", "general"]
    assert (await client.get("/v1/skill-groups/west-q", headers=east)).status_code == 404
    denied = await client.post("/v1/skill-groups", json={"id": "x", "name": "X"}, headers=east)
    assert denied.status_code == 403
    agent = await tokens.headers("li", Role.AGENT, agent_id="a1")
    assert (await client.get("/v1/skill-groups", headers=agent)).status_code == 403


async def test_deleting_a_group_removes_it_from_agents_skills(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await client.post("/v1/skill-groups", json={"id": "tax", "name": "Tax"}, headers=admin)
    body = {"id": "a1", "name": "Li", "extension": "1001", "skills": {"tax": 2, "general": 1}}
    assert (await client.post("/v1/agents", json=body, headers=admin)).status_code == 201
    await client.delete("/v1/skill-groups/tax", headers=admin)
    assert services.roster.get("a1").skills == {"general": 1}
    shown = await client.get("/v1/agents/a1", headers=admin)
    assert shown.json()["skills"] == {"general": 1}
