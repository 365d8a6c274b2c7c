"""The whole control plane in this test's event loop, over real HTTP and WebSocket.

The simulator, :class:`~telephony.services.Services` with the call engine attached
(as ``telephony serve`` wires it: engine, IVR, write buffer, live feed) and the
API under a real uvicorn on a free port, for clients that need real sockets
(WebSocket clients, a browser).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from telephony.api.app import create_app
from telephony.auth import Role, create_principal
from telephony.services import Services, attach_call_engine
from telephony.sim import Simulator
from telephony.store.database import create_engine
from tests.api.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
TIME_SCALE = 20.0


@dataclass
class LiveStack:
    """A running simulator and control plane; ``http`` is a client of its API."""

    sim: Simulator
    services: Services
    base_url: str
    http: httpx.AsyncClient
    admin: dict[str, str]

    @property
    def ws_url(self) -> str:
        """The live events' URL."""
        return self.base_url.replace("http://", "ws://") + "/v1/events"

    async def sim_api(self, *words: str) -> str:
        """``api sim ...`` on the simulator, through the engine's own ESL connection."""
        reply = await self.services.switches[0].api("sim", *words)
        return reply.body.strip()

    async def call(self, caller: str, *options: str, hotline: str = "12345") -> str:
        """A citizen calls ``hotline``; the caller leg's uuid."""
        return (await self.sim_api("call", hotline, caller, *options)).removeprefix("+OK ")

    async def token(
        self, name: str, role: Role, *, area: str | None = None, agent_id: str | None = None
    ) -> str:
        """A new principal's bearer token."""
        async with self.services.database.begin() as connection:
            _, token = await create_principal(connection, name, role, area=area, agent_id=agent_id)
        return token

    async def add_agent(self, agent_id: str, extension: str, **fields: Any) -> None:
        """An agent created through the API (admin)."""
        body = {"id": agent_id, "name": agent_id.upper(), "extension": extension, **fields}
        reply = await self.http.post("/v1/agents", headers=self.admin, json=body)
        assert reply.status_code == 201, reply.text

    async def sign_in(self, agent_id: str) -> None:
        reply = await self.http.post(f"/v1/agents/{agent_id}/sign-in", headers=self.admin)
        assert reply.status_code == 200, reply.text

    async def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Until ``/readyz`` would say ready: the node connected, its recording probed."""
        async with asyncio.timeout(timeout):
            while not (await self.services.readiness()).ready:
                await asyncio.sleep(0.05)


@asynccontextmanager
async def live_stack(
    database_url: str, data_dir: Path, **settings: Any
) -> AsyncIterator[LiveStack]:
    """Start the simulator, the services with the engine, and uvicorn; stop them after."""
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    config = make_settings(
        data_dir,
        database_url,
        freeswitch=f"esl://:ClueCon@127.0.0.1:{port}",
        ivr_flows=REPO / "ivr_flows",
        wrap_up_seconds=0.5,
        # A test's machine is busy (two cores, other suites) and the simulator shares this
        # process (its CPU and its late prompts would count as ours): no refusals for load.
        overload_max_lag_ms=60_000,
        overload_max_event_age_ms=60_000,
        overload_max_cpu=0,
        overload_max_reaction_ms=0,
        **settings,
    )
    services = Services(config, create_engine(database_url))
    attach_call_engine(services)
    await services.start(migrate=False)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    host, http_port = listener.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), log_config=None, lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    base_url = f"http://{host}:{http_port}"
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            stack = LiveStack(sim, services, base_url, http, {})
            stack.admin = {"Authorization": f"Bearer {await stack.token('admin', Role.ADMIN)}"}
            await stack.wait_until_ready()
            yield stack
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        listener.close()
        await services.stop()
        await sim.stop()
