"""The process's dependencies, built in one place (``STYLE.md`` 7).

:class:`Services` is the typed bundle every part of ``telephony serve`` gets
its collaborators from: settings, the database engine, the write buffer, the
agent roster, the metrics, the live-call directory and the ESL nodes. Nothing
here is created at import time.

Lifecycle: :func:`open_services` connects the database (``DATABASE_URL``, or
an embedded PostgreSQL in ``DATA_DIR/postgres``) and attaches the call engine;
:meth:`Services.start` migrates, loads the agents into the roster, starts the
write buffer and then every attached :class:`Component`;
:meth:`Services.stop` undoes that in reverse order.

The call engine plugs in at :func:`attach_call_engine` (see its docstring);
``Services.skill_groups_changed`` is called after the API changes a skill group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony import logs
from telephony.acd.agent_state import Agent, AgentState
from telephony.acd.roster import Roster
from telephony.api.ports import CallDirectory, LiveCall, NoCalls
from telephony.calls.control import api_state, run_command
from telephony.calls.control_model import Command, Done
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.calls.model import Call
from telephony.calls.outbound_port import EngineOutbound
from telephony.calls.overload import OverloadGuard, OverloadSettings
from telephony.calls.records import at
from telephony.config import Settings
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS, EslError, SwitchPort
from telephony.esl.transport import EslConnection
from telephony.ivr.flows_port import EngineFlows
from telephony.ivr.service import IvrService, IvrSettings
from telephony.live.feed import LiveFeed, call_finder
from telephony.live.hub import EventHub
from telephony.metrics import BufferMetrics, EslMetrics, Metrics
from telephony.outbound.dialer import Dialer, DialerSettings
from telephony.recording.archive import open_archive, recording_jobs
from telephony.recording.folders import FolderPolicy, prepare
from telephony.recording.probe import NodeProbe, RecordingHealth
from telephony.reports.availability import NodeHistory
from telephony.store.blocked import BlockedNumbers
from telephony.store.buffer import WriteBuffer
from telephony.store.database import EmbeddedPostgres, create_engine, writer_engine
from telephony.store.migrate import upgrade
from telephony.store.models import Agent as AgentRow
from telephony.store.models import AgentSkill, BlockedNumber, Hotline, table_of

log = logging.getLogger(__name__)
_AGENTS = table_of(AgentRow)
_SKILLS = table_of(AgentSkill)
_HOTLINES = table_of(Hotline)
_BLOCKED = table_of(BlockedNumber)
DATABASE_CHECK_TIMEOUT = 2.0


class Component(Protocol):
    """Something with a lifetime inside the process (the call engine, an ESL connection)."""

    async def start(self) -> None:
        """Begin work; return once running."""
        ...

    async def stop(self) -> None:
        """Stop work and release resources; must not raise for an already-stopped component."""
        ...


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One configured FreeSWITCH node: its ESL connection, and whether it can record.

    ``recording`` is ``ok``, why the node's last recording probe failed, ``not
    checked yet``, or None when no probe runs (no call engine attached).
    """

    node: str
    connected: bool
    recording: str | None = None

    @property
    def ready(self) -> bool:
        """Connected, and recording proven (when a probe runs)."""
        return self.connected and self.recording in (None, "ok")


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports."""

    database: bool
    database_error: str | None
    nodes: tuple[NodeHealth, ...]

    @property
    def ready(self) -> bool:
        """Database reachable, every configured node connected and (probed) able to record."""
        return self.database and bool(self.nodes) and all(n.ready for n in self.nodes)


class Services:
    """The dependency bundle; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        database: AsyncEngine,
        *,
        embedded: EmbeddedPostgres | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.database = database
        self.embedded = embedded
        self.clock = clock
        self.metrics = metrics or Metrics()
        # Past its memory bound, the buffer spills to an append-only file in the data folder
        # and replays it in order (a long database outage loses no CDR).
        self.writer = writer_engine(database)
        self.buffer = WriteBuffer(
            self.writer, spill_dir=settings.data_dir / "spool", hooks=BufferMetrics(self.metrics)
        )
        logs.on_dropped(self.metrics.log_lines_dropped.inc)
        self.roster = Roster(self.buffer, clock)
        # The call engine's hook (filled by attach_call_engine): until an engine is attached
        # there are no live calls and no ESL connection, and /readyz says so.
        self.calls: CallDirectory = NoCalls()
        self.switches: list[SwitchPort] = []
        # The nodes' recording probes (filled by attach_call_engine): None, no probe runs.
        self.recording: RecordingHealth | None = None
        # Recordings after the switch wrote them: off-site copy, verification, removal.
        self.recordings = open_archive(settings, database, self.metrics)
        self.blocked = BlockedNumbers(database)
        self.components: list[Component] = [self.blocked]
        # Callbacks and follow-ups (filled by attach_call_engine): None, no dialer runs.
        self.outbound: Dialer | None = None
        # Called with a skill group's id after the API created, changed or deleted it.
        self.skill_groups_changed: Callable[[str], None] = lambda group_id: None
        self._started: list[Component] = []
        # Live events (WS /v1/events): the feed sees every write as it is put.
        self.live = EventHub()
        self.live_feed = LiveFeed(self.live, self.roster, database, calls=lambda: self.calls)
        self.buffer.observers.append(self.live_feed.observe)
        self.components.append(self.live_feed)

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate (if asked), load the agents, start the write buffer, then the components."""
        if migrate:
            await upgrade(self.database)
        self.roster.load(await self._read_agents())
        log.info("agents loaded", extra={"agents": len(self.roster.agents)})
        self.buffer.start()
        for component in self.components:
            await component.start()
            self._started.append(component)
        log.info("services started", extra={"components": len(self._started)})

    async def stop(self) -> None:
        """Stop the components (newest first), flush the write buffer, close the database."""
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("component failed to stop", extra={"component": repr(component)})
        await self.buffer.close()
        await self.writer.dispose()
        await self.database.dispose()
        log.info("services stopped", extra={"buffer_depth": self.buffer.depth})

    async def readiness(self) -> Readiness:
        """Check the database (``SELECT 1``) and every configured node's connection."""
        error: str | None = None
        try:
            async with asyncio.timeout(DATABASE_CHECK_TIMEOUT):
                async with self.database.connect() as connection:
                    await connection.execute(text("select 1"))
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        up = {s.node for s in self.switches if s.connected}
        health = self.recording
        nodes = tuple(
            NodeHealth(n.name, n.name in up, None if health is None else health.status(n.name))
            for n in self.settings.nodes
        )
        return Readiness(error is None, error, nodes)

    def refresh_gauges(self) -> None:
        """Set the gauges computed from live state (agents by state) before a scrape."""
        counts = dict.fromkeys(AgentState, 0)
        for agent in self.roster.agents.values():
            counts[agent.state] += 1
        for state, count in counts.items():
            self.metrics.agents.labels(state.value).set(count)
        self.metrics.db_buffer_depth.set(self.buffer.depth)

    async def _read_agents(self) -> list[Agent]:
        async with self.database.connect() as connection:
            rows = (await connection.execute(select(_AGENTS))).all()
            skills = (await connection.execute(select(_SKILLS))).all()
        by_agent: dict[str, dict[str, int]] = {}
        for skill in skills:
            by_agent.setdefault(skill.agent_id, {})[skill.group_id] = skill.level
        return [agent_from_row(row, by_agent.get(row.id, {})) for row in rows]


def agent_from_row(row: Row[Any], skills: dict[str, int]) -> Agent:
    """A roster agent from an ``agents`` row (its stored state kept)."""
    changed: datetime | None = row.state_changed_at
    return Agent(
        id=row.id,
        extension=row.extension,
        name=row.name,
        area=row.area,
        skills=dict(skills),
        state=AgentState(row.state),
        reason=row.state_reason,
        since=(changed or datetime.now(UTC)).timestamp(),
    )


async def open_database(settings: Settings) -> tuple[AsyncEngine, EmbeddedPostgres | None]:
    """``DATABASE_URL`` when set, else the embedded PostgreSQL in ``DATA_DIR/postgres``."""
    if settings.database_url:
        log.info("using DATABASE_URL")
        return create_engine(settings.database_url), None
    server = EmbeddedPostgres(settings.embedded_postgres_dir)
    url = await asyncio.to_thread(server.start)
    return create_engine(url), server


class EngineDirectory:
    """The API's view of the engines' live calls (:class:`CallDirectory`)."""

    def __init__(self, engines: list[CallEngine]) -> None:
        self.engines = engines
        self.hotline_areas: dict[str, str | None] = {}

    def _live(self, call: Call) -> LiveCall:
        return LiveCall(
            uuid=call.uuid,
            node=call.node,
            caller=call.caller,
            hotline=call.hotline,
            state=api_state(call),
            arrived_at=datetime.fromtimestamp(call.arrived_at, UTC),
            area=self.hotline_areas.get(call.hotline),
            skill_group_id=call.skill_group,
            agent_id=call.agent_id,
            answered_at=at(call.agent_answered_at),
        )

    def live_calls(self) -> Sequence[LiveCall]:
        calls = [c for engine in self.engines for c in engine.calls.values()]
        return [self._live(c) for c in sorted(calls, key=lambda c: c.arrived_at)]

    def live_call(self, uuid: str) -> LiveCall | None:
        for engine in self.engines:
            if uuid in engine.calls:
                return self._live(engine.calls[uuid])
        return None

    async def command(self, command: Command) -> Done:
        """A call-control command, to the engine that has its call (or agent)."""
        return await run_command(self.engines, command)


class NodeEngine:
    """One FreeSWITCH node's ESL connection and call engine, as a :class:`Component`.

    Start does not wait for the node: if it is down, the connection is retried
    with backoff in the background and ``/readyz`` says the node is not connected.
    """

    def __init__(
        self, connection: EslConnection, engine: CallEngine, probe: NodeProbe | None = None
    ) -> None:
        self.connection = connection
        self.engine = engine
        self.probe = probe
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.engine.run(), name=f"engine {self.connection.node}"),
            asyncio.create_task(self._connect(), name=f"connect {self.connection.node}"),
        ]

    async def _connect(self) -> None:
        attempt = 0
        while True:
            try:
                await self.connection.connect()
                return
            except EslError as exc:
                delay = self.connection.backoff.delay(attempt)
                log.warning(
                    "FreeSWITCH node not reachable; retrying",
                    extra={"node": self.connection.node, "error": str(exc), "retry_in_s": delay},
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.probe is not None:
            await self.probe.close()
        await self.engine.close()
        await self.connection.close()


def attach_call_engine(services: Services) -> None:
    """Give ``services`` one ESL connection and one call engine per configured node."""
    settings = services.settings
    prepare_recording_folders(settings)
    recording = services.recording = RecordingHealth(services.metrics)
    engine_settings = EngineSettings(
        recordings_dir=settings.recordings,
        ring_timeout_s=max(1, round(settings.ring_timeout_seconds)),
        wrap_up_s=settings.wrap_up_seconds,
        outbound_dial=settings.outbound_dial_string,
        outbound_gateway=settings.outbound_gateway,
        outbound_caller_id=settings.outbound_caller_id,
    )
    guard = OverloadGuard(
        OverloadSettings(
            max_cpu=settings.overload_max_cpu,
            max_rate=settings.overload_max_calls_per_second,
            max_loop_lag_s=settings.overload_max_lag_ms / 1000,
            max_event_age_s=settings.overload_max_event_age_ms / 1000,
            max_reaction_s=settings.overload_max_reaction_ms / 1000,
            max_buffer_depth=settings.overload_max_buffered_writes,
        ),
        buffer_depth=lambda: services.buffer.depth,
        metrics=services.metrics,
    )
    services.components.append(_Guard(guard))
    flows = EngineFlows(
        IvrService(
            IvrSettings(flows_dir=settings.ivr_flows, voicemail_dir=str(settings.voicemail)),
            blocked=services.blocked.contains,
            hooks=IvrMetrics(services.metrics, on_reaction=guard.reaction_seen),
            voicemail_check=lambda node: recording.reason(node, settings.voicemail),
        )
    )
    services.components.append(flows.service)
    engines: list[CallEngine] = []
    # Every node's connects and drops, for 呼叫接入系统可用率 (telephony/reports/kpis.py).
    history = NodeHistory(services.buffer, services.clock, [a.name for a in settings.nodes])
    services.components.append(history)
    for address in settings.nodes:
        connection = EslConnection(
            address,
            events=ENGINE_EVENTS,
            drop_applications=DIALPLAN_APPLICATIONS,
            hooks=EslMetrics(services.metrics),
            on_state=history.observe,
            io=settings.esl_io,
        )
        probe = NodeProbe(
            connection,
            [settings.recordings, settings.voicemail],
            recording,
            timeout=settings.recording_probe_timeout_seconds,
        )
        CallEngine(  # appends itself to `engines`, its peers (several nodes)
            connection,
            services.roster,
            services.buffer,
            engine_settings,
            clock=services.clock,
            metrics=services.metrics,
            flows=flows,
            peers=engines,
            overload=guard,
            # After each (re)connect's adoption: prove the node can record where it will.
            on_connect=[probe],
        )
        engine = engines[-1]
        services.switches.append(connection)
        services.components.append(NodeEngine(connection, engine, probe))

    def route_everywhere(agent: Agent) -> None:
        for engine in engines:
            engine.route()

    services.roster.on_available = route_everywhere
    directory = EngineDirectory(engines)
    services.calls = directory
    services.live_feed.find_call = call_finder(engines)
    if settings.outbound_channels:
        services.outbound = Dialer(
            services.database,
            EngineOutbound(engines, services.roster),
            surveys=flows.service,
            blocked=services.blocked.contains,
            settings=DialerSettings(
                channels=settings.outbound_channels, tick_s=settings.outbound_tick_seconds
            ),
            clock=services.clock,
        )
        services.components.append(services.outbound)
    services.components.insert(0, _HotlineAreas(services.database, directory))


class _Guard:
    """The overload guard's sampling task, as a :class:`Component`."""

    def __init__(self, guard: OverloadGuard) -> None:
        self.guard = guard

    async def start(self) -> None:
        self.guard.start()

    async def stop(self) -> None:
        self.guard.stop()


def prepare_recording_folders(settings: Settings) -> None:
    """Make ``<recordings>`` and ``<recordings>/voicemail`` writable by the switch's group.

    See :mod:`telephony.recording.folders`; what cannot be applied is logged, and the
    recording probe then shows whether the switch can write there.
    """
    policy = FolderPolicy(
        mode=settings.recordings_mode,
        group=settings.recordings_group,
        owner=settings.recordings_owner,
    )
    for folder in (settings.recordings, settings.voicemail):
        prepare(folder, policy)


class IvrMetrics:
    """The IVR's measurements, into the process's metrics (and each reaction time to
    ``on_reaction``: the overload guard's signal of the service citizens get)."""

    def __init__(
        self, metrics: Metrics, on_reaction: Callable[[float], None] | None = None
    ) -> None:
        self.metrics = metrics
        self.on_reaction = on_reaction

    def reaction(self, seconds: float) -> None:
        self.metrics.ivr_reaction.observe(seconds)
        if self.on_reaction is not None:
            self.on_reaction(seconds)

    def reload_error(self, path: str, errors: int) -> None:
        self.metrics.ivr_flow_rejected.labels(path).inc()

    def flow_finished(self, flow: str, action: str) -> None:
        self.metrics.ivr_flows_finished.labels(flow, action).inc()


class _HotlineAreas:
    """Loads each hotline's area at start, for scoping live calls to supervisors' areas."""

    def __init__(self, database: AsyncEngine, directory: EngineDirectory) -> None:
        self.database = database
        self.directory = directory

    async def start(self) -> None:
        async with self.database.connect() as connection:
            rows = (await connection.execute(select(_HOTLINES.c.number, _HOTLINES.c.area))).all()
        self.directory.hotline_areas = {row.number: row.area for row in rows}

    async def stop(self) -> None:
        return None


async def open_services(settings: Settings) -> Services:
    """Connect the database and attach the call engine; call :meth:`Services.start` next."""
    database, embedded = await open_database(settings)
    services = Services(settings, database, embedded=embedded)
    attach_call_engine(services)
    services.components.append(recording_jobs(settings, services.recordings))
    return services
