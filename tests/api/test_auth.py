"""Authentication and the uniform error body: 401 without a valid token, no stack traces."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from telephony.api.app import create_app
from telephony.api.ports import LiveCall
from telephony.auth import Role, hash_token
from telephony.services import Services
from tests.api.fakes import FakeCalls, FakeClock, Tokens

PROTECTED = [
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents/a1"),
    ("PATCH", "/v1/agents/a1"),
    ("DELETE", "/v1/agents/a1"),
    ("POST", "/v1/agents/a1/sign-in"),
    ("POST", "/v1/agents/a1/sign-out"),
    ("POST", "/v1/agents/a1/busy"),
    ("POST", "/v1/agents/a1/idle"),
    ("GET", "/v1/calls"),
    ("GET", "/v1/calls/x"),
    ("GET", "/v1/call-records"),
    ("GET", "/v1/call-records/00000000-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_v1_endpoint_needs_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    reply = await client.request(method, path, json={"garbage": True})
    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthorized"
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_wrong_scheme_unknown_and_disabled_tokens_are_401(
    client: httpx.AsyncClient, tokens: Tokens, services: Services, clock: FakeClock
) -> None:
    good = await tokens.headers("ops", Role.ADMIN)
    assert (await client.get("/v1/agents", headers=good)).status_code == 200
    token = good["Authorization"].removeprefix("Bearer ")
    basic = {"Authorization": f"Basic {token}"}
    assert (await client.get("/v1/agents", headers=basic)).status_code == 401
    forged = {"Authorization": "Bearer tel_" + "A" * 43}
    assert (await client.get("/v1/agents", headers=forged)).status_code == 401

    async with services.database.begin() as connection:
        await connection.execute(text("update principals set disabled = true"))
    # Disabled by another process: noticed when the cached principal is next re-checked.
    clock.advance(services.settings.auth_revalidate_seconds)
    assert (await client.get("/v1/agents", headers=good)).status_code == 401


async def test_only_the_token_hash_is_stored(tokens: Tokens, services: Services) -> None:
    headers = await tokens.headers("ops", Role.ADMIN)
    token = headers["Authorization"].removeprefix("Bearer ")
    assert token.startswith("tel_") and len(token) > 40
    async with services.database.connect() as connection:
        stored = await connection.scalar(text("select token_sha256 from principals"))
    assert stored == hash_token(token) != token


async def test_probes_and_docs_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/readyz")).status_code in (200, 503)
    assert "/v1/agents/{agent_id}/busy" in (await client.get("/openapi.json")).json()["paths"]


async def test_unknown_route_uses_the_error_body(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    reply = await client.get("/v1/nothing-here", headers=admin)
    assert reply.status_code == 404
    assert reply.json() == {"error": "not_found", "detail": "Not Found"}
    # Without a token, nothing under /v1 says whether it exists.
    assert (await client.get("/v1/nothing-here")).status_code == 401
    assert (await client.get("/nothing-here")).status_code == 404


class _Broken(FakeCalls):
    def live_calls(self) -> list[LiveCall]:
        raise RuntimeError("secret internal state /etc/passwd")


async def test_an_unexpected_error_is_500_without_a_stack_trace(
    services: Services, tokens: Tokens
) -> None:
    services.calls = _Broken()
    admin = await tokens.headers("ops", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        reply = await client.get("/v1/calls", headers=admin)
    assert reply.status_code == 500
    assert reply.json() == {"error": "internal", "detail": "internal error (logged)"}
    assert "Traceback" not in reply.text and "passwd" not in reply.text


class _ShuttingDown(Exception):
    sqlstate = "57P03"  # cannot_connect_now: "the database system is starting up"


class _DatabaseRestarting(FakeCalls):
    def live_calls(self) -> list[LiveCall]:
        raise DBAPIError("select 1", {}, _ShuttingDown("the database system is starting up"))


async def test_a_database_that_cannot_serve_now_is_503_not_500(
    services: Services, tokens: Tokens
) -> None:
    services.calls = _DatabaseRestarting()
    admin = await tokens.headers("ops", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        reply = await client.get("/v1/calls", headers=admin)
    assert reply.status_code == 503
    assert reply.json()["error"] == "database_unavailable"
