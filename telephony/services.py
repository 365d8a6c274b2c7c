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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.acd.agent_state import Agent, AgentState
from telephony.acd.roster import Roster
from telephony.api.ports import CallDirectory, NoCalls
from telephony.config import Settings
from telephony.esl.port import SwitchPort
from telephony.metrics import Metrics
from telephony.store.buffer import WriteBuffer
from telephony.store.database import EmbeddedPostgres, create_engine
from telephony.store.migrate import upgrade
from telephony.store.models import Agent as AgentRow
from telephony.store.models import AgentSkill, table_of

log = logging.getLogger(__name__)
_AGENTS = table_of(AgentRow)
_SKILLS = table_of(AgentSkill)
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
    """One configured FreeSWITCH node and whether its ESL connection is up."""

    node: str
    connected: bool


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports."""

    database: bool
    database_error: str | None
    nodes: tuple[NodeHealth, ...]

    @property
    def ready(self) -> bool:
        """Database reachable and every configured node connected."""
        return self.database and bool(self.nodes) and all(n.connected for n in self.nodes)


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
        self.buffer = WriteBuffer(database, on_depth=self.metrics.db_buffer_depth.set)
        self.roster = Roster(self.buffer, clock)
        # The call engine's hook (filled by attach_call_engine): until an engine is attached
        # there are no live calls and no ESL connection, and /readyz says so.
        self.calls: CallDirectory = NoCalls()
        self.switches: list[SwitchPort] = []
        self.components: list[Component] = []
        # Called with a skill group's id after the API created, changed or deleted it.
        self.skill_groups_changed: Callable[[str], None] = lambda group_id: None
        self._started: list[Component] = []

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
        nodes = tuple(NodeHealth(n.name, n.name in up) for n in self.settings.nodes)
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


def attach_call_engine(services: Services) -> None:
    """HOOK for the call engine (``telephony/calls/``): plug it into ``services`` here.

    Expected, once the engine exists: build one ESL connection per
    ``services.settings.nodes`` and append each to ``services.switches`` (they
    implement :class:`telephony.esl.port.SwitchPort`; ``/readyz`` reads their
    ``node`` and ``connected``); build the engine with ``services.roster``,
    ``services.buffer`` and ``services.metrics``; set ``services.calls`` to
    its :class:`telephony.api.ports.CallDirectory`; and append the engine and
    the connections to ``services.components`` so that start/stop run them.

    Until then nothing is attached, and ``/readyz`` reports every configured
    node as not connected (it never pretends).
    """
    log.warning(
        "no call engine attached: the API runs, calls are not handled",
        extra={"nodes": [n.name for n in services.settings.nodes]},
    )


async def open_services(settings: Settings) -> Services:
    """Connect the database and attach the call engine; call :meth:`Services.start` next."""
    database, embedded = await open_database(settings)
    services = Services(settings, database, embedded=embedded)
    attach_call_engine(services)
    return services
