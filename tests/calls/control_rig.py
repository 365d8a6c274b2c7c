"""The simulator, the engine and the API together, as `telephony serve` wires them: call
control is driven through HTTP only (tests/api/test_call_control*.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.api.app import create_app
from telephony.auth import Role
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.config import Settings
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
from telephony.esl.transport import EslConnection
from telephony.services import EngineDirectory, Services
from telephony.sim.server import Simulator
from tests.api.fakes import Tokens
from tests.store.conftest import Database

TIME_SCALE = 20.0


@dataclass
class ControlRig:
    sim: Simulator
    services: Services
    engine: CallEngine
    esl: EslConnection
    http: httpx.AsyncClient
    tokens: Tokens
    admin: dict[str, str]

    async def sim_api(self, *words: str) -> str:
        return (await self.esl.api("sim", *words, check=False)).body.strip()

    async def agent(
        self,
        agent_id: str,
        extension: str,
        *,
        area: str | None = None,
        answer: str = "answer_after_ms=300",
        sign_in: bool = True,
    ) -> dict[str, str]:
        """An agent seat with a phone, signed in; returns its token's headers."""
        body: dict[str, Any] = {"id": agent_id, "name": agent_id, "extension": extension}
        if area:
            body["area"] = area
        reply = await self.http.post("/v1/agents", json=body, headers=self.admin)
        assert reply.status_code == 201, reply.text
        await self.sim_api("phone", extension, answer)
        headers = await self.tokens.headers(agent_id, Role.AGENT, agent_id=agent_id)
        if sign_in:
            reply = await self.http.post(f"/v1/agents/{agent_id}/sign-in", headers=headers)
            assert reply.status_code == 200, reply.text
        return headers

    async def call(self, caller: str = "13800138000", hotline: str = "12345") -> str:
        reply = await self.sim_api("call", hotline, caller)
        return reply.removeprefix("+OK ")

    async def live(self, uuid: str) -> dict[str, Any] | None:
        reply = await self.http.get(f"/v1/calls/{uuid}", headers=self.admin)
        return reply.json() if reply.status_code == 200 else None

    async def wait_state(self, uuid: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            live = await self.live(uuid)
            return live if live is not None and live["state"] == state else None

        try:
            return await self.wait_for(check, timeout)
        except TimeoutError:
            raise AssertionError(f"call {uuid} not {state}: {await self.live(uuid)}") from None

    async def talking(self, agent_headers: dict[str, str] | None = None) -> str:
        """A citizen's call answered by the (one) available agent."""
        uuid = await self.call()
        await self.wait_state(uuid, "talking")
        return uuid

    async def post(
        self, path: str, headers: dict[str, str] | None = None, json: Any = None
    ) -> httpx.Response:
        return await self.http.post(
            path, json={} if json is None else json, headers=headers or self.admin
        )

    async def agent_state(self, agent_id: str) -> str:
        reply = await self.http.get(f"/v1/agents/{agent_id}", headers=self.admin)
        return str(reply.json()["state"])

    async def wait_agent(self, agent_id: str, state: str, timeout: float = 15.0) -> None:
        async def check() -> bool:
            return await self.agent_state(agent_id) == state

        try:
            await self.wait_for(check, timeout)
        except TimeoutError:
            raise AssertionError(
                f"agent {agent_id} is {await self.agent_state(agent_id)}"
            ) from None

    async def wait_for(self, check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                await self.services.buffer.flushed()
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.05)

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        async with self.services.database.connect() as connection:
            return list((await connection.execute(text(sql), params)).mappings())

    async def ended_cdr(self, uuid: str, timeout: float = 15.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            rows = await self.fetch(
                "select * from calls where uuid = cast(:u as uuid) and ended_at is not null",
                u=uuid,
            )
            return dict(rows[0]) if rows else None

        result: dict[str, Any] = await self.wait_for(check, timeout)
        return result

    async def timeline(self, uuid: str) -> list[str]:
        rows = await self.fetch(
            "select kind from call_events where call_uuid = cast(:u as uuid) order by at, kind",
            u=uuid,
        )
        return [r["kind"] for r in rows]

    async def audits(self, action: str) -> list[dict[str, Any]]:
        rows = await self.fetch("select * from audit_log where action = :a", a=action)
        return [dict(r) for r in rows]

    async def channel_exists(self, uuid: str) -> bool:
        reply = await self.esl.api("uuid_exists", uuid, check=False)
        return reply.body.strip() == "true"


@pytest.fixture
async def control_rig(
    database: Database,
    engine: AsyncEngine,
    tmp_path: Path,
) -> AsyncIterator[ControlRig]:
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    url = database.url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=url, data_dir=tmp_path, freeswitch=f"esl://:ClueCon@127.0.0.1:{port}"
    )
    services = Services(settings, engine)
    await services.start(migrate=False)
    esl = EslConnection(
        f"esl://:ClueCon@127.0.0.1:{port}",
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    calls = CallEngine(
        esl,
        services.roster,
        services.buffer,
        # The ring timeout is the switch's (originate_timeout), so 60 s here is 3 s of real
        # time: 5 (0.25 s) turned one loop stall of a busy CI machine into an agent that
        # "did not answer", went busy, and left the test's only call queued.
        EngineSettings(recordings_dir=recordings, ring_timeout_s=60, wrap_up_s=0.5),
    )
    services.roster.on_available = lambda agent: calls.route()
    directory = EngineDirectory([calls])
    directory.hotline_areas = {"12345": "east", "12315": "west"}
    services.calls = directory
    runner = asyncio.create_task(calls.run())
    await esl.connect()
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    tokens = Tokens(services)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        admin = await tokens.headers("root", Role.ADMIN)
        yield ControlRig(sim, services, calls, esl, http, tokens, admin)
    await calls.close()
    runner.cancel()
    await esl.close()
    await services.stop()
    await sim.stop()
