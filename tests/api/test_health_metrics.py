"""/healthz, /readyz (never pretends a node is up) and /metrics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.acd.agent_state import AgentEvent
from telephony.api.app import create_app
from telephony.recording.probe import ProbeResult, RecordingHealth
from telephony.services import Services, attach_call_engine
from telephony.sim import Simulator
from telephony.store.database import create_engine
from tests.api.conftest import make_settings
from tests.api.fakes import FakeSwitch
from tests.store.conftest import Database


async def test_readyz_is_503_when_no_esl_node_is_connected(client: httpx.AsyncClient) -> None:
    reply = await client.get("/readyz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["error"] == "not_ready"
    assert body["database"]["reachable"] is True
    assert body["nodes"] == [{"node": "127.0.0.1:8021", "connected": False, "recording": None}]
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


async def test_readyz_is_503_while_a_connected_node_cannot_record(
    services: Services, tmp_path: Path
) -> None:
    services.settings = make_settings(
        tmp_path,
        services.settings.database_url or "",
        freeswitch="esl://:pw@fs1:8021,esl://:pw@fs2:8021",
    )
    services.switches = [FakeSwitch("fs1:8021", True), FakeSwitch("fs2:8021", False)]  # type: ignore[list-item]
    health = services.recording = RecordingHealth(services.metrics)
    folder = tmp_path / "recordings"
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        unproven = await client.get("/readyz")
        health.record(ProbeResult("fs1:8021", folder, False, "-ERR Cannot record session!"))
        refused = await client.get("/readyz")
        health.record(ProbeResult("fs1:8021", folder, True))
        services.switches[1] = FakeSwitch("fs2:8021", True)  # type: ignore[call-overload]
        health.record(ProbeResult("fs2:8021", folder, True))
        ready = await client.get("/readyz")
    assert unproven.status_code == 503
    assert "ESL node fs1:8021: recording not checked yet" in unproven.json()["detail"]
    assert refused.status_code == 503
    assert refused.json()["detail"] == (
        "ESL node fs1:8021 cannot record: -ERR Cannot record session!; "
        "ESL node fs2:8021 not connected"
    )
    assert refused.json()["nodes"] == [
        {"node": "fs1:8021", "connected": True, "recording": "-ERR Cannot record session!"},
        {"node": "fs2:8021", "connected": False, "recording": "not checked yet"},
    ]
    assert ready.status_code == 200
    assert [n["recording"] for n in ready.json()["nodes"]] == ["ok", "ok"]


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
        "telephony_recordings_failed",
        "telephony_recording_probe_ok",
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




async def _serve_against(
    sim_port: int, database_url: str, data_dir: Path, **settings: Any
) -> Services:
    services = Services(
        make_settings(
            data_dir, database_url, freeswitch=f"esl://:ClueCon@127.0.0.1:{sim_port}", **settings
        ),
        create_engine(database_url),
    )
    attach_call_engine(services)
    await services.start(migrate=False)
    health = services.recording
    assert health is not None
    node = services.settings.nodes[0].name
    for _ in range(200):
        if health.ok(node) is not None and len(health.results(node)) == 2:
            break
        await asyncio.sleep(0.05)
    return services


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the folders a group needs root")
async def test_readyz_and_the_probe_metric_follow_what_the_switch_can_write(
    database: Database, engine: AsyncEngine, shared_dir: Path
) -> None:
    """A switch running as its own user (499): the folders serve makes for its own group
    are refused; made for the switch's group (TELEPHONY_RECORDINGS_GROUP) they record."""
    url = database.url.render_as_string(hide_password=False)
    sim = Simulator(time_scale=20)
    port = await sim.start("127.0.0.1", 0)
    sim.switch.settings.update(switch_uid="499", switch_gid="499")
    node = f"127.0.0.1:{port}"
    try:
        for group, status, probe_ok in ((None, 503, 0.0), ("499", 200, 1.0)):
            services = await _serve_against(port, url, shared_dir, recordings_group=group)
            try:
                transport = httpx.ASGITransport(app=create_app(services))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    ready = await client.get("/readyz")
                    metrics = (await client.get("/metrics")).text
            finally:
                await services.stop()
            assert ready.status_code == status, ready.json()
            recording = ready.json()["nodes"][0]["recording"]
            if status == 503:
                assert recording.startswith("-ERR Cannot record session!"), recording
                assert (
                    f"ESL node {node} cannot record: -ERR Cannot record session!"
                    in (ready.json()["detail"])
                )
            else:
                assert recording == "ok"
            assert f'telephony_recording_probe_ok{{node="{node}"}} {probe_ok}' in metrics
            assert list((shared_dir / "recordings").glob("recording-probe-*")) == []
    finally:
        await sim.stop()
