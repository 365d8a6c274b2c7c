"""Blocked numbers (拦截恶意号码): who may block and unblock, audit, validation."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from telephony.auth import Role
from telephony.services import Services
from telephony.store.blocked import BlockedNumbers
from telephony.store.database import create_engine
from tests.api.fakes import Tokens


async def _agent(
    client: httpx.AsyncClient, tokens: Tokens, admin: dict[str, str]
) -> dict[str, str]:
    body = {"id": "a1", "name": "Li Na", "extension": "1001"}
    assert (await client.post("/v1/agents", json=body, headers=admin)).status_code == 201
    return await tokens.headers("li", Role.AGENT, agent_id="a1")


async def test_an_agent_blocks_a_caller_and_the_ivr_lookup_sees_it(
    client: httpx.AsyncClient, tokens: Tokens, admin: dict[str, str], services: Services
) -> None:
    agent = await _agent(client, tokens, admin)
    body = {"number": "13900000666", "reason": "abusive"}
    created = await client.post("/v1/blocked-numbers", json=body, headers=agent)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "li"
    assert services.blocked.loaded  # answered from memory, changed by the API at once
    assert await services.blocked.contains("13900000666")
    assert await BlockedNumbers(services.database).contains("13900000666")  # and stored
    listed = await client.get("/v1/blocked-numbers", headers=admin)
    assert [n["number"] for n in listed.json()["numbers"]] == ["13900000666"]

    refused = await client.delete("/v1/blocked-numbers/13900000666", headers=agent)
    assert refused.status_code == 403
    removed = await client.delete("/v1/blocked-numbers/13900000666", headers=admin)
    assert removed.status_code == 204
    assert not await services.blocked.contains("13900000666")
    assert not await BlockedNumbers(services.database).contains("13900000666")
    again = await client.delete("/v1/blocked-numbers/13900000666", headers=admin)
    assert again.status_code == 404
    async with services.database.connect() as connection:
        actions = (await connection.scalars(text("select action from audit_log order by at"))).all()
    assert actions[-2:] == ["blocked_number.add", "blocked_number.remove"]


async def test_bad_numbers_and_unauthenticated_calls_are_refused(
    client: httpx.AsyncClient, tokens: Tokens, admin: dict[str, str]
) -> None:
    auditor = await tokens.headers("audit", Role.AUDITOR)
    valid = {"number": "13900000777"}
    refused = await client.post("/v1/blocked-numbers", json=valid, headers=auditor)
    assert refused.status_code == 403  # auditors only read
    agent = await _agent(client, tokens, admin)
    bad = await client.post("/v1/blocked-numbers", json={"number": "12a"}, headers=agent)
    assert bad.status_code == 422 and "number" in bad.text
    assert (await client.get("/v1/blocked-numbers")).status_code == 401
    assert (await client.get("/v1/blocked-numbers", headers=agent)).status_code == 403


async def test_an_agent_reposting_a_blocked_number_changes_neither_reason_nor_author(
    client: httpx.AsyncClient, tokens: Tokens, admin: dict[str, str], services: Services
) -> None:
    agent = await _agent(client, tokens, admin)
    first = {"number": "13900000666", "reason": "fraud ring, reported by police"}
    assert (await client.post("/v1/blocked-numbers", json=first, headers=admin)).status_code == 201

    again = {"number": "13900000666", "reason": "rude"}
    reply = await client.post("/v1/blocked-numbers", json=again, headers=agent)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["reason"], reply.json()["created_by"]) == (first["reason"], "root")
    listed = (await client.get("/v1/blocked-numbers", headers=admin)).json()["numbers"]
    assert [(n["reason"], n["created_by"]) for n in listed] == [(first["reason"], "root")]

    # A supervisor (who may unblock and block again anyway) may restate the reason.
    boss = await tokens.headers("wang", Role.SUPERVISOR, area="east")
    restated = {"number": "13900000666", "reason": "fraud ring (case 42)"}
    reply = await client.post("/v1/blocked-numbers", json=restated, headers=boss)
    assert reply.status_code == 200
    assert (reply.json()["reason"], reply.json()["created_by"]) == (restated["reason"], "wang")
    unchanged = await client.post(
        "/v1/blocked-numbers", json={"number": "13900000666"}, headers=boss
    )
    assert unchanged.json()["reason"] == restated["reason"]  # no reason sent: kept
    async with services.database.connect() as connection:
        actions = (await connection.scalars(text("select action from audit_log order by at"))).all()
    assert actions[-2:] == ["blocked_number.add", "blocked_number.update"]


async def test_numbers_blocked_outside_this_process_are_seen_at_the_next_reload(
    services: Services,
) -> None:
    blocked = BlockedNumbers(services.database, refresh_s=0.05)
    await blocked.start()
    try:
        assert blocked.loaded and not await blocked.contains("13900000888")
        async with services.database.begin() as connection:
            await connection.execute(
                text("insert into blocked_numbers (number) values ('13900000888')")
            )
        for _ in range(100):
            if await blocked.contains("13900000888"):
                break
            await asyncio.sleep(0.02)
        assert await blocked.contains("13900000888")
    finally:
        await blocked.stop()


async def test_a_check_the_database_cannot_answer_lets_the_call_in() -> None:
    unreachable = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    blocked = BlockedNumbers(unreachable)
    await blocked.reload()  # fails: nothing known
    assert not blocked.loaded
    assert not await blocked.contains("13900000666")
    await unreachable.dispose()
