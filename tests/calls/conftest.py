"""A running call engine on the simulator, the real ESL transport and real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.acd.agent_state import Agent, AgentEvent
from telephony.acd.roster import Roster
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.esl.transport import EslConnection
from telephony.sim.server import Simulator
from telephony.store.buffer import WriteBuffer
from tests.store.conftest import database, embedded_server, engine  # noqa: F401 (fixtures)

TIME_SCALE = 20.0


@dataclass
class Rig:
    """Everything a call-path test needs, started and wired like `telephony serve` does."""

    sim: Simulator
    esl: EslConnection
    db: AsyncEngine
    buffer: WriteBuffer
    roster: Roster
    calls: CallEngine
    recordings: Path

    async def sim_api(self, *words: str) -> str:
        reply = await self.esl.api("sim", *words)
        return reply.body.strip()

    async def add_agent(self, agent_id: str, extension: str, **skills: int) -> None:
        async with self.db.begin() as connection:
            await connection.execute(
                text("insert into agents (id, name, extension, state) values (:i, :n, :e, :s)"),
                {"i": agent_id, "n": agent_id.upper(), "e": extension, "s": "logged_out"},
            )
        self.roster.load([Agent(agent_id, extension, name=agent_id.upper(), skills=skills)])

    def sign_in(self, agent_id: str) -> None:
        self.roster.apply(agent_id, AgentEvent.SIGN_IN)

    async def wait_for(self, check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
        """Poll ``check`` (after flushing writes) until it returns something truthy."""
        async with asyncio.timeout(timeout):
            while True:
                await self.buffer.flushed()
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.05)

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.connect() as connection:
            return list((await connection.execute(text(sql), params)).mappings())


@pytest.fixture
async def rig(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Rig]:  # noqa: F811
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    esl = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    await esl.connect()
    buffer = WriteBuffer(engine)
    buffer.start()
    roster = Roster(buffer, clock=lambda: asyncio.get_running_loop().time())
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    calls = CallEngine(
        esl,
        roster,
        buffer,
        EngineSettings(recordings_dir=recordings, ring_timeout_s=5, wrap_up_s=0.2),
    )
    roster.clock = calls.clock
    runner = asyncio.create_task(calls.run())
    yield Rig(sim, esl, engine, buffer, roster, calls, recordings)
    await calls.close()
    runner.cancel()
    await esl.close()
    await buffer.close()
    await sim.stop()
