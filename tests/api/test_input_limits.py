"""Validation at the API edge: nothing a client sends makes PostgreSQL refuse a row (issue 7).

Each case here was a 500, or a 200 whose row the write buffer then dropped,
before inputs were checked against their columns: a NUL character, text
longer than the column, an offset past 64 bits, a date whose UTC time leaves
the years 1 to 9999, more skills than a statement can bind, JSON numbers
JSONB refuses. Now each is a 422 whose detail names the field and the reason.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from telephony.acd.agent_state import AgentState
from telephony.auth import Role
from telephony.services import Services
from tests.api.fakes import Tokens


async def _agent(client: httpx.AsyncClient, admin: dict[str, str], **extra: Any) -> None:
    body = {"id": "a1", "name": "Li Na", "extension": "1001", **extra}
    reply = await client.post("/v1/agents", json=body, headers=admin)
    assert reply.status_code == 201, reply.text


def _refused(reply: httpx.Response, field: str, reason: str) -> None:
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["error"] == "invalid_request"
    assert field in [f["field"] for f in body["fields"]], body
    assert reason.lower() in body["detail"].lower(), body


async def test_a_nul_in_a_busy_reason_is_refused_and_nothing_is_dropped(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    await _agent(client, admin)
    me = await tokens.headers("li", Role.AGENT, agent_id="a1")
    await client.post("/v1/agents/a1/sign-in", headers=me)

    reply = await client.post("/v1/agents/a1/busy", json={"reason": "lunch\x00"}, headers=me)
    _refused(reply, "reason", "NUL")
    assert services.roster.get("a1").state is AgentState.AVAILABLE

    assert (
        await client.post("/v1/agents/a1/busy", json={"reason": "lunch"}, headers=me)
    ).is_success
    await services.buffer.flushed()
    assert services.buffer.rejected == 0
    async with services.database.connect() as connection:
        reasons = (await connection.scalars(text("select reason from agent_state_changes"))).all()
    assert "lunch" in reasons


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/agents", {"id": "a2", "name": "Li\x00", "extension": "1002"}, "name"),
        (
            "POST",
            "/v1/agents",
            {"id": "a2", "name": "Li", "extension": "1002", "area": "e\x00"},
            "area",
        ),
        ("PATCH", "/v1/agents/a1", {"name": "\x00"}, "name"),
        ("POST", "/v1/blocked-numbers", {"number": "13900000666", "reason": "x\x00"}, "reason"),
        ("POST", "/v1/skill-groups", {"id": "tax", "name": "T\x00"}, "name"),
        (
            "POST",
            "/v1/skill-groups",
            {"id": "tax", "name": "T", "settings": {"k\x00": 1}},
            "settings",
        ),
        (
            "POST",
            "/v1/skill-groups",
            {"id": "tax", "name": "T", "settings": {"k": ["\x00"]}},
            "settings",
        ),
        ("PATCH", "/v1/skill-groups/general", {"settings": {"rules": {"to": "a\x00"}}}, "settings"),
    ],
)
async def test_nul_characters_are_422_naming_the_field(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    await _agent(client, admin)
    reply = await client.request(method, path, json=body, headers=admin)
    _refused(reply, field, "NUL")


async def test_nul_in_a_path_or_query_is_422_not_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for path in ("/v1/skill-groups/east%00", "/v1/agents/a%00"):
        for method in ("GET", "DELETE"):
            reply = await client.request(method, path, headers=admin)
            assert reply.status_code == 422, (method, path, reply.text)
    for name in ("caller", "hotline", "agent", "outcome"):
        reply = await client.get("/v1/call-records", params={name: "1\x00"}, headers=admin)
        _refused(reply, name, "NUL")


async def test_a_lone_surrogate_is_not_text(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    raw = b'{"id": "a1", "name": "\\ud800", "extension": "1001"}'
    reply = await client.post(
        "/v1/agents", content=raw, headers={**admin, "content-type": "application/json"}
    )
    _refused(reply, "name", "unicode")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/agents", {"id": "a2", "name": "n" * 129, "extension": "1002"}, "name"),
        ("POST", "/v1/agents", {"id": "a" * 65, "name": "n", "extension": "1002"}, "id"),
        ("POST", "/v1/agents", {"id": "a2", "name": "n", "extension": "1" * 33}, "extension"),
        (
            "POST",
            "/v1/agents",
            {"id": "a2", "name": "n", "extension": "2", "area": "e" * 65},
            "area",
        ),
        ("POST", "/v1/agents/a1/busy", {"reason": "r" * 129}, "reason"),
        ("POST", "/v1/blocked-numbers", {"number": "13900000666", "reason": "r" * 257}, "reason"),
        ("POST", "/v1/skill-groups", {"id": "tax", "name": "n" * 129}, "name"),
        (
            "POST",
            "/v1/skill-groups",
            {"id": "t", "name": "n", "overflow_group_id": "g" * 65},
            "overflow_group_id",
        ),
    ],
)
async def test_text_longer_than_its_column_is_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    await _agent(client, admin)
    await client.post("/v1/agents/a1/sign-in", headers=admin)
    reply = await client.request(method, path, json=body, headers=admin)
    _refused(reply, field, "at most")


async def test_an_offset_past_64_bits_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    _refused(
        await client.get("/v1/call-records", params={"offset": 2**63}, headers=admin),
        "offset",
        "less than or equal to 9223372036854775807",
    )
    largest = await client.get("/v1/call-records", params={"offset": 2**63 - 1}, headers=admin)
    assert largest.status_code == 200, largest.text
    assert largest.json()["records"] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("since", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:59:59-01:00")],
)
async def test_a_date_outside_the_years_1_to_9999_in_utc_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, value: str
) -> None:
    reply = await client.get("/v1/call-records", params={name: value}, headers=admin)
    _refused(reply, name, "years 1 to 9999")


async def test_dates_at_the_edges_and_without_offset_are_fine(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for params in (
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
        {"since": "0001-01-01T01:00:00+01:00"},
        {"since": "2024-01-01T08:00:00"},  # no offset: UTC
    ):
        reply = await client.get("/v1/call-records", params=params, headers=admin)
        assert reply.status_code == 200, (params, reply.text)


async def test_more_skills_than_a_seat_can_have_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    skills = {f"g{i}": 1 for i in range(32_768)}
    body = {"id": "a1", "name": "Li", "extension": "1001", "skills": skills}
    _refused(await client.post("/v1/agents", json=body, headers=admin), "skills", "at most 256")
    await _agent(client, admin)
    patch = await client.patch("/v1/agents/a1", json={"skills": skills}, headers=admin)
    _refused(patch, "skills", "at most 256")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ('{"weight": NaN}', "finite"),
        ('{"weight": 1e400}', "finite"),
        ('{"weight": -Infinity}', "finite"),
        (json.dumps({"big": 2**64}), "64 bits"),
        (json.dumps({"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}), "deeper than 16"),
        (json.dumps({"blob": "x" * 70_000}), "at most 65536 bytes"),
    ],
)
async def test_settings_jsonb_refuses_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], settings: str, reason: str
) -> None:
    raw = f'{{"id": "tax", "name": "Tax", "settings": {settings}}}'.encode()
    headers = {**admin, "content-type": "application/json"}
    _refused(
        await client.post("/v1/skill-groups", content=raw, headers=headers), "settings", reason
    )


async def test_a_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    headers = {**admin, "content-type": "application/json"}
    for raw in (b"{not json", b'{"id": "a1",', b"\xff\xfe\x00"):
        reply = await client.post("/v1/agents", content=raw, headers=headers)
        assert reply.status_code == 400, (raw, reply.text)
        assert reply.json()["error"] == "malformed_json"
        assert "JSON" in reply.json()["detail"]
    deep = b"[" * 100_000 + b"]" * 100_000  # deeper than the parser's recursion limit
    reply = await client.post("/v1/skill-groups", content=deep, headers=headers)
    assert reply.status_code == 400, reply.text


async def test_every_route_documents_its_error_statuses(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            documented = operation["responses"]
            expected = set()
            if "requestBody" in operation:
                expected |= {"400", "413", "422"}
            kinds = {p["in"] for p in operation.get("parameters", [])}
            if "path" in kinds:
                expected |= {"404", "422"}
            if "query" in kinds:
                expected.add("422")
            if path.startswith("/v1/"):
                expected |= {"401", "503"}
            assert expected <= set(documented), (where, sorted(documented))
            for status in expected:
                content = documented[status]["content"]["application/json"]["schema"]
                assert content == error_body, (where, status, content)
    assert "403" in schema["paths"]["/v1/agents"]["post"]["responses"]
    assert "403" not in schema["paths"]["/v1/calls"]["get"]["responses"]  # every role may ask


async def test_areas_are_trimmed_the_same_way_everywhere(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: Tokens, services: Services
) -> None:
    from telephony.auth import normalize_area, parse_areas

    assert normalize_area("\u3000east ") == "east"
    assert parse_areas(" east ,\u3000west\u3000,, ") == {"east", "west"}
    await _agent(client, admin, area=" east\u3000")
    group = {"id": "tax", "name": "Tax", "area": "\teast "}
    assert (await client.post("/v1/skill-groups", json=group, headers=admin)).status_code == 201
    async with services.database.connect() as connection:
        stored = (
            await connection.execute(
                text("select a.area, g.area from agents a, skill_groups g where g.id = 'tax'")
            )
        ).one()
    assert tuple(stored) == ("east", "east")
    assert services.roster.get("a1").area == "east"

    boss = await tokens.headers("wang", Role.SUPERVISOR, area=" east ")
    agents = await client.get("/v1/agents", headers=boss)
    assert [a["id"] for a in agents.json()["agents"]] == ["a1"]
    groups = await client.get("/v1/skill-groups", headers=boss)
    assert "tax" in [g["id"] for g in groups.json()["groups"]]

    _refused(
        await client.patch("/v1/agents/a1", json={"area": "   "}, headers=admin),
        "area",
        "at least 1",
    )
    _refused(
        await client.patch("/v1/agents/a1", json={"area": "a,b"}, headers=admin), "area", "comma"
    )
