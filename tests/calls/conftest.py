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
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
from telephony.esl.transport import EslConnection
from telephony.ivr.flows_port import EngineFlows
from telephony.ivr.service import IvrHooks, IvrService, IvrSettings
from telephony.metrics import Metrics
from telephony.services import IvrMetrics, agent_from_row
from telephony.sim.server import Simulator
from telephony.store.blocked import BlockedNumbers
from telephony.store.buffer import WriteBuffer
from telephony.store.database import EmbeddedPostgres
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401

TIME_SCALE = 20.0


@dataclass
class Controller:
    """One control plane: its ESL connection, write buffer, roster and engine."""

    esl: EslConnection
    buffer: WriteBuffer
    roster: Roster
    calls: CallEngine
    runner: asyncio.Task[None]
    ivr: IvrService | None = None

    async def crash(self) -> None:
        """Stop dead: no flush of pending writes, no goodbye to FreeSWITCH."""
        self.runner.cancel()
        await self.calls.close()
        await self.esl.close()
        if self.ivr is not None:
            await self.ivr.stop()
        if self.buffer._task is not None:  # what a SIGKILL would lose, it loses
            self.buffer._task.cancel()

    async def stop(self) -> None:
        await self.calls.close()
        self.runner.cancel()
        await self.esl.close()
        await self.buffer.close()
        if self.ivr is not None:
            await self.ivr.stop()


async def start_controller(
    sim_port: int,
    db: AsyncEngine,
    recordings: Path,
    flows_dir: Path | None = None,
    ivr_hooks: IvrHooks | None = None,
    voicemail_check: Callable[[str], str | None] | None = None,
) -> Controller:
    """Start a controller the way `telephony serve` does, agents loaded from the database.

    With ``flows_dir``, calls run the IVR flows found there (reloaded every 0.1 s).
    """
    esl = EslConnection(
        f"esl://:ClueCon@127.0.0.1:{sim_port}",
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    metrics = Metrics()
    ivr: IvrService | None = None
    if flows_dir is not None:
        (recordings / "voicemail").mkdir(exist_ok=True)
        ivr = IvrService(
            IvrSettings(
                flows_dir=flows_dir,
                voicemail_dir=str(recordings / "voicemail"),
                reload_interval_s=0.1,
            ),
            blocked=BlockedNumbers(db).contains,
            hooks=ivr_hooks or IvrMetrics(metrics),
            voicemail_check=voicemail_check,
        )
        await ivr.start()
    buffer = WriteBuffer(db)
    buffer.start()
    roster = Roster(buffer, clock=lambda: 0.0)
    async with db.connect() as connection:
        rows = (await connection.execute(text("select * from agents"))).all()
    roster.load([agent_from_row(row, {}) for row in rows])  # as `serve` loads them
    calls = CallEngine(
        esl,
        roster,
        buffer,
        EngineSettings(recordings_dir=recordings, ring_timeout_s=5, wrap_up_s=0.2),
        metrics=metrics,
        flows=EngineFlows(ivr) if ivr is not None else None,
    )
    roster.clock = calls.clock
    runner = asyncio.create_task(calls.run())
    await esl.connect()
    return Controller(esl, buffer, roster, calls, runner, ivr)


@dataclass
class Rig:
    """A simulator, a database and a running controller, as `telephony serve` wires them."""

    sim: Simulator
    sim_port: int
    db: AsyncEngine
    recordings: Path
    controller: Controller
    server: EmbeddedPostgres | None

    @property
    def esl(self) -> EslConnection:
        return self.controller.esl

    @property
    def roster(self) -> Roster:
        return self.controller.roster

    @property
    def buffer(self) -> WriteBuffer:
        return self.controller.buffer

    async def sim_api(self, *words: str) -> str:
        reply = await self.esl.api("sim", *words)
        return reply.body.strip()

    async def call(self, caller: str, *options: str, hotline: str = "12345") -> str:
        """A simulated citizen calls ``hotline``; returns the caller leg's uuid."""
        reply = await self.sim_api("call", hotline, caller, *options)
        return reply.removeprefix("+OK ")

    async def ended_cdr(self, call_uuid: str) -> dict[str, Any] | None:
        """The call's CDR once the call has ended (None before)."""
        rows = await self.fetch(
            "select * from calls where uuid = cast(:u as uuid) and ended_at is not null",
            u=call_uuid,
        )
        return dict(rows[0]) if rows else None

    async def add_agent(self, agent_id: str, extension: str, **skills: int) -> None:
        async with self.db.begin() as connection:
            await connection.execute(
                text("insert into agents (id, name, extension, state) values (:i, :n, :e, :s)"),
                {"i": agent_id, "n": agent_id.upper(), "e": extension, "s": "logged_out"},
            )
        self.roster.load([Agent(agent_id, extension, name=agent_id.upper(), skills=skills)])

    def sign_in(self, agent_id: str) -> None:
        self.roster.apply(agent_id, AgentEvent.SIGN_IN)

    async def restart(self) -> None:
        """Kill the controller as SIGKILL would, and start a new one on the same switch."""
        await self.controller.crash()
        self.controller = await start_controller(self.sim_port, self.db, self.recordings)

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
async def rig(
    database: Database,  # noqa: F811
    engine: AsyncEngine,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    controller = await start_controller(port, engine, recordings)
    rig = Rig(sim, port, engine, recordings, controller, database.server)
    yield rig
    await rig.controller.stop()
    await sim.stop()
