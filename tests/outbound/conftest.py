"""The simulator, the engine, the outbound dialer and the API together, as `serve` wires
them, with short retry schedules (the simulator runs 20 times faster than real time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.api.app import create_app
from telephony.auth import Role
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.calls.outbound_port import EngineOutbound
from telephony.config import Settings
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
from telephony.esl.transport import EslConnection
from telephony.ivr.service import IvrService, IvrSettings
from telephony.outbound.dialer import Dialer, DialerSettings
from telephony.outbound.model import Rules
from telephony.outbound.store import ANY_HOTLINE, save_rules
from telephony.services import EngineDirectory, Services
from telephony.sim.channel import Channel
from telephony.sim.server import Simulator
from tests.api.fakes import Tokens
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401

TIME_SCALE = 20.0
FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
#: Short schedules: a busy or unanswered number is tried again 1 s later, 3 times at most.
FAST_RULES = Rules(
    # this hotline also calls back citizens who hung up in the IVR
    outcomes=("abandoned_in_ivr", "abandoned_in_queue", "refused", "lost", "voicemail"),
    quiet_hours=None,
    merge_window_seconds=3600,
    max_attempts=3,
    retry_seconds={
        "busy": (1.0,),
        "no_answer": (1.0,),
        "rejected": (1.5,),
        "agent_missed": (0.3,),
        "interrupted": (0.3,),
        "error": (0.5,),
    },
)


@dataclass
class OutboundRig:
    sim: Simulator
    port: int
    services: Services
    engine: CallEngine
    esl: EslConnection
    ivr: IvrService
    dialer: Dialer
    http: httpx.AsyncClient
    tokens: Tokens
    admin: dict[str, str]
    channels: int
    #: every gateway leg the simulator made (to a citizen), in order
    gateway_legs: list[Channel] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None

    async def sim_api(self, *words: str) -> str:
        return (await self.esl.api("sim", *words, check=False)).body.strip()

    async def agent(self, agent_id: str, extension: str) -> None:
        body = {"id": agent_id, "name": agent_id, "extension": extension}
        reply = await self.http.post("/v1/agents", json=body, headers=self.admin)
        assert reply.status_code == 201, reply.text
        await self.sim_api("phone", extension, "answer_after_ms=300")
        reply = await self.http.post(f"/v1/agents/{agent_id}/sign-in", headers=self.admin)
        assert reply.status_code == 200, reply.text

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        async with self.services.database.connect() as connection:
            return list((await connection.execute(text(sql), params)).mappings())

    async def wait_for(self, check: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                await self.services.buffer.flushed()
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.1)

    async def settled(self, kind: str, timeout: float = 90.0) -> None:
        """Every task of ``kind`` is reached, failed or not required."""

        async def check() -> bool:
            rows = await self.fetch(
                "select count(*) as n from outbound_tasks where kind = :k"
                " and state in ('pending', 'dialing')",
                k=kind,
            )
            return rows[0]["n"] == 0 and not self.dialer.active

        await self.wait_for(check, timeout)

    async def restart_dialer(self) -> None:
        """Kill the dialer and the engine dead (as SIGKILL would) and start new ones."""
        await self.dialer.stop()
        assert self.runner is not None
        self.runner.cancel()
        await self.engine.close()
        await self.esl.close()
        self.engine, self.esl, self.runner = await _engine(self.port, self.services)
        self.dialer = _dialer(self.services, self.engine, self.ivr, self.channels)
        self.services.outbound = self.dialer
        await self.dialer.start()


async def _engine(
    port: int, services: Services
) -> tuple[CallEngine, EslConnection, asyncio.Task[None]]:
    esl = EslConnection(
        f"esl://:ClueCon@127.0.0.1:{port}",
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    recordings = services.settings.recordings
    recordings.mkdir(parents=True, exist_ok=True)
    calls = CallEngine(
        esl,
        services.roster,
        services.buffer,
        EngineSettings(recordings_dir=recordings, ring_timeout_s=5, wrap_up_s=0.2),
    )
    services.roster.on_available = lambda agent: calls.route()
    directory = EngineDirectory([calls])
    directory.hotline_areas = {"12345": "east", "12315": "west"}
    services.calls = directory
    runner = asyncio.create_task(calls.run())
    await esl.connect()
    return calls, esl, runner


def _dialer(services: Services, calls: CallEngine, ivr: IvrService, channels: int) -> Dialer:
    return Dialer(
        services.database,
        EngineOutbound([calls], services.roster),
        surveys=ivr,
        blocked=services.blocked.contains,
        settings=DialerSettings(
            channels=channels, tick_s=0.1, write_retry_max_s=0.5, scan_every_s=0
        ),
    )


@pytest.fixture
async def outbound_rig(
    database: Database,  # noqa: F811
    engine: AsyncEngine,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[OutboundRig]:
    sim = Simulator(time_scale=TIME_SCALE)
    port = await sim.start("127.0.0.1", 0)
    rig_legs: list[Channel] = []
    original = sim.switch.new_gateway

    def recorded(*args: Any, **kwargs: Any) -> Channel:
        ch = original(*args, **kwargs)
        rig_legs.append(ch)
        return ch

    sim.switch.new_gateway = recorded  # type: ignore[method-assign]
    url = database.url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=url, data_dir=tmp_path, freeswitch=f"esl://:ClueCon@127.0.0.1:{port}"
    )
    services = Services(settings, engine)
    await services.start(migrate=False)
    async with engine.begin() as connection:
        await save_rules(connection, ANY_HOTLINE, FAST_RULES)
        await connection.execute(
            text(
                "insert into hotlines (number, name, flow, area, enabled) values "
                "('12345', '12345', 'hotline-12345', 'east', true),"
                " ('12315', '12315', 'hotline-12315', 'west', true) on conflict do nothing"
            )
        )
    ivr = IvrService(IvrSettings(flows_dir=FLOWS, reload_interval_s=60))
    await ivr.start()
    calls, esl, runner = await _engine(port, services)
    channels = 4
    dialer = _dialer(services, calls, ivr, channels)
    services.outbound = dialer
    app = create_app(services)
    tokens = Tokens(services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as http:
        admin = await tokens.headers("root", Role.ADMIN)
        rig = OutboundRig(
            sim,
            port,
            services,
            calls,
            esl,
            ivr,
            dialer,
            http,
            tokens,
            admin,
            channels,
            rig_legs,
            runner,
        )
        yield rig
        await rig.dialer.stop()
    await rig.engine.close()
    assert rig.runner is not None
    rig.runner.cancel()
    await rig.esl.close()
    await ivr.stop()
    await services.stop()
    await sim.stop()


async def insert_cdr(
    db: AsyncEngine,
    caller: str,
    outcome: str,
    arrived_at: dt.datetime,
    *,
    hotline: str = "12345",
    direction: str = "inbound",
) -> str:
    """A CDR row as the engine writes it for a call that ended ``outcome``."""
    uid = str(uuid.uuid4())
    async with db.begin() as connection:
        await connection.execute(
            text(
                "insert into calls (uuid, hotline, caller, arrived_at, ended_at, outcome,"
                " direction) values (cast(:u as uuid), :h, :c, :a, :e, :o, :d)"
            ),
            {
                "u": uid,
                "h": hotline,
                "c": caller,
                "a": arrived_at,
                "e": arrived_at + dt.timedelta(seconds=20),
                "o": outcome,
                "d": direction,
            },
        )
    return uid
