"""/healthz, /readyz (never pretends a node is up) and /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from telephony.acd.agent_state import AgentEvent
from telephony.api.app import create_app
from telephony.services import Services
from telephony.store.database import create_engine
from tests.api.conftest import make_settings
from tests.api.fakes import FakeSwitch


async def test_readyz_is_503_when_no_esl_node_is_connected(client: httpx.AsyncClient) -> None:
    reply = await client.get("/readyz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["error"] == "not_ready"
    assert body["database"]["reachable"] is True
    assert body["nodes"] == [{"node": "127.0.0.1:8021", "connected": False}]
    assert "127.0.0.1:8021 not connected" in body["detail"]


async def test_readyz_is_200_when_every_node_and_the_database_are_up(
    services: Services, tmp_path: Path
) -> None:
    services.settings = make_settings(
        tmp_path,
        services.settings.database_url or "",
        freeswitch="esl://:pw@fs1:8021,esl://:pw@fs2:8021",
    )
    services.switches = [FakeSwitch("fs1:8021", True), FakeSwitch("fs2:8021", False)]  # type: ignore[list-item]
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        half = await client.get("/readyz")
        assert half.status_code == 503
        assert half.json()["detail"] == "ESL node fs2:8021 not connected"
        services.switches[1] = FakeSwitch("fs2:8021", True)  # type: ignore[call-overload]
        full = await client.get("/readyz")
    assert full.status_code == 200
    assert full.json()["status"] == "ready"


async def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/nowhere?host={tmp_path}"
    services = Services(make_settings(tmp_path, url), create_engine(url))
    services.switches = [FakeSwitch("127.0.0.1:8021", True)]  # type: ignore[list-item]
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        reply = await client.get("/readyz")
        health = await client.get("/healthz")
    await services.database.dispose()
    assert reply.status_code == 503
    assert reply.json()["database"]["reachable"] is False
    assert reply.json()["detail"].startswith("database unreachable")
    assert health.status_code == 200


async def test_metrics_lists_every_metric(client: httpx.AsyncClient, services: Services) -> None:
    services.metrics.call_outcomes.labels("answered").inc()
    services.metrics.queue_length.labels("general").set(3)
    reply = await client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    for name in (
        "telephony_calls_in_progress",
        "telephony_queue_length",
        "telephony_call_outcomes_total",
        "telephony_esl_events_total",
        "telephony_esl_reconnects_total",
        "telephony_esl_connected",
        "telephony_db_buffer_depth",
        "telephony_agents",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'telephony_call_outcomes_total{outcome="answered"} 1.0' in text
    assert 'telephony_queue_length{group="general"} 3.0' in text
    assert 'telephony_agents{state="logged_out"} 0.0' in text


async def test_buffer_depth_follows_the_write_buffer(
    client: httpx.AsyncClient, services: Services, admin: dict[str, str]
) -> None:
    body = {"id": "a1", "name": "Li", "extension": "1001"}
    await client.post("/v1/agents", json=body, headers=admin)
    await services.buffer.flushed()
    services.roster.apply("a1", AgentEvent.SIGN_IN)  # no await since: nothing flushed yet
    assert services.metrics.db_buffer_depth._value.get() == 2  # history row + agent row
    await services.buffer.flushed()
    reply = await client.get("/metrics")
    assert "telephony_db_buffer_depth 0.0" in reply.text
    assert 'telephony_agents{state="available"} 1.0' in reply.text
