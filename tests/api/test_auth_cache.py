"""Authentication without the database: cached principals, revalidation, revocation (issue 7).

A principal verified once keeps working while the database is down (for up
to the cache's TTL), so agents go busy and idle through an outage and the
write buffer keeps their state changes. A token revoked by another process
(``telephony users revoke``) stops working when the cache next re-checks it
(every ``auth_revalidate_seconds``), and at once in the process that revoked it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from sqlalchemy import select, text

from telephony.acd.agent_state import AgentState
from telephony.auth import PrincipalCache, Role, create_principal, hash_token
from telephony.cli import main
from telephony.services import Services
from telephony.store.models import AgentStateChange, table_of
from tests.api.fakes import FakeClock, Tokens
from tests.store.conftest import Database

_CHANGES = table_of(AgentStateChange)


async def _signed_in_agent(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens
) -> dict[str, str]:
    body = {"id": "a1", "name": "Li Na", "extension": "1001"}
    assert (await client.post("/v1/agents", json=body, headers=admin)).status_code == 201
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")
    assert (await client.post("/v1/agents/a1/sign-in", headers=me)).status_code == 200
    return me


async def test_agents_go_busy_and_idle_through_a_database_outage(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    tokens: Tokens,
    services: Services,
    database: Database,
    clock: FakeClock,
) -> None:
    if database.server is None:
        pytest.skip("needs the embedded server, to stop it")
    me = await _signed_in_agent(client, admin, tokens)
    stranger = await tokens.headers("zhao", Role.ADMIN)  # never used: not in the cache

    await asyncio.to_thread(database.server.stop)
    try:
        busy = await client.post("/v1/agents/a1/busy", json={"reason": "lunch"}, headers=me)
        assert busy.status_code == 200, busy.text
        idle = await client.post("/v1/agents/a1/idle", headers=me)
        assert idle.status_code == 200, idle.text
        assert services.roster.get("a1").state is AgentState.AVAILABLE

        unknown = await client.get("/v1/agents", headers=stranger)
        assert unknown.status_code == 503, unknown.text
        assert unknown.json()["error"] == "database_unavailable"
        assert "token cannot be checked" in unknown.json()["detail"]
        # A supervisor's or admin's action needs its audit row: refused, not done unaudited.
        audited = await client.post("/v1/agents/a1/sign-out", headers=admin)
        assert audited.status_code == 503
        assert services.roster.get("a1").state is AgentState.AVAILABLE

        clock.advance(services.settings.auth_revalidate_seconds + 1)  # due a re-check: cannot
        again = await client.post("/v1/agents/a1/busy", json={"reason": "break"}, headers=me)
        assert again.status_code == 200, again.text
        clock.advance(services.settings.auth_cache_ttl_seconds)  # verified too long ago
        expired = await client.post("/v1/agents/a1/idle", headers=me)
        assert expired.status_code == 503, expired.text
        assert services.roster.get("a1").state is AgentState.BUSY
    finally:
        await asyncio.to_thread(database.server.restart)

    await services.buffer.flushed()
    async with services.database.connect() as connection:
        rows = await connection.execute(
            select(_CHANGES.c.event, _CHANGES.c.reason)
            .where(_CHANGES.c.agent_id == "a1")
            .order_by(_CHANGES.c.at)
        )
        history = [tuple(r) for r in rows]
    assert history == [
        ("sign_in", None),
        ("set_busy", "lunch"),
        ("set_idle", None),
        ("set_busy", "break"),
    ]
    clock.advance(5)  # after a failed lookup the cache waits a few seconds before asking again
    assert (await client.post("/v1/agents/a1/idle", headers=me)).status_code == 200
    counts = services.metrics.api_auth
    assert counts.labels("stale")._value.get() >= 1
    assert counts.labels("unavailable")._value.get() >= 2


def _env(database: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url.render_as_string(hide_password=False),
        "TELEPHONY_DATA_DIR": str(tmp_path),
    }


@pytest.mark.usefixtures("restore_logging")
async def test_users_revoke_is_noticed_by_a_running_server_within_revalidation(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    tokens: Tokens,
    services: Services,
    database: Database,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    me = await _signed_in_agent(client, admin, tokens)
    env = _env(database, tmp_path)

    revoked = await asyncio.to_thread(CliRunner().invoke, main, ["users", "revoke", "li"], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked li" in revoked.stderr
    # The server cached the principal a moment ago; it re-checks it within the interval.
    assert (await client.get("/v1/agents/a1", headers=me)).status_code == 200
    clock.advance(services.settings.auth_revalidate_seconds)
    refused = await client.get("/v1/agents/a1", headers=me)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "unknown or revoked token"
    async with services.database.connect() as connection:
        audit = (
            await connection.execute(
                text("select principal, action from audit_log where target_id = 'li'")
            )
        ).one()
    assert audit.action == "principal.revoke" and audit.principal.startswith("cli:")

    again = await asyncio.to_thread(CliRunner().invoke, main, ["users", "revoke", "li"], env=env)
    assert again.exit_code == 0 and "already revoked" in again.stderr
    ghost = await asyncio.to_thread(
        CliRunner().invoke, main, ["users", "revoke", "nobody"], env=env
    )
    assert ghost.exit_code == 1 and "no principal named 'nobody'" in ghost.output


async def test_a_token_revoked_by_this_process_is_refused_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, app: FastAPI
) -> None:
    me = await _signed_in_agent(client, admin, tokens)
    assert (await client.get("/v1/agents/a1", headers=me)).status_code == 200
    principals: PrincipalCache = app.state.principals
    assert await principals.revoke("li", by="root") is True
    assert (await client.get("/v1/agents/a1", headers=me)).status_code == 401
    assert await principals.revoke("li", by="root") is False


async def test_the_cache_is_bounded_and_keeps_only_token_hashes(services: Services) -> None:
    results: list[str] = []
    cache = PrincipalCache(services.database, max_entries=2, on_result=results.append)
    tokens = []
    async with services.database.begin() as connection:
        for name in ("p1", "p2", "p3"):
            tokens.append((await create_principal(connection, name, Role.AUDITOR))[1])
    for token in tokens:
        assert (await cache.authenticate(token)) is not None
    assert len(cache) == 2
    assert set(cache._entries) == {hash_token(tokens[1]), hash_token(tokens[2])}
    await cache.authenticate(tokens[2])
    await cache.authenticate(tokens[0])  # evicted first, so checked against the database again
    assert results == ["verified", "verified", "verified", "cached", "verified"]
    assert await cache.authenticate("tel_unknown") is None
    assert results[-1] == "rejected"


@pytest.mark.usefixtures("restore_logging")
def test_users_revoke_help() -> None:
    result = CliRunner().invoke(main, ["users", "revoke", "--help"])
    assert result.exit_code == 0
    for words in ("Revoke the API principal NAME", "TELEPHONY_AUTH_REVALIDATE_SECONDS"):
        assert words in result.output
    listed = CliRunner().invoke(main, ["users", "--help"])
    assert "revoke" in listed.output
