"""The roster: every agent's live state, changed only on the engine's loop, every change stored.

API handlers and the call engine ask the roster to apply agent events
(sign in, busy, offer, answer, ...). Each applied change is written through
the write buffer twice: as a row of ``agent_state_changes`` (for per-agent
statistics) and as the agent's current state in ``agents``. When an agent
becomes able to take a call, the roster calls ``on_available`` so that the
distributor can look at the queues.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from telephony.acd.agent_state import Agent, AgentChange, AgentEffect, AgentEvent
from telephony.store.buffer import Write, WriteBuffer
from telephony.store.models import Agent as AgentRow
from telephony.store.models import AgentStateChange, table_of

_AGENTS = table_of(AgentRow)
_CHANGES = table_of(AgentStateChange)


class UnknownAgent(KeyError):
    """No agent has that id."""


class Roster:
    """Live agents by id."""

    def __init__(
        self,
        buffer: WriteBuffer,
        clock: Callable[[], float],
        on_available: Callable[[Agent], None] = lambda agent: None,
    ) -> None:
        self._buffer = buffer
        self.clock = clock
        self.on_available = on_available
        self.agents: dict[str, Agent] = {}

    def load(self, agents: Iterable[Agent]) -> None:
        """Take the agents read from the database at start (their stored states kept)."""
        for agent in agents:
            self.agents[agent.id] = agent

    def get(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def by_extension(self, extension: str) -> Agent | None:
        return next((a for a in self.agents.values() if a.extension == extension), None)

    def apply(
        self, agent_id: str, event: AgentEvent, reason: str | None = None
    ) -> list[AgentChange]:
        """Apply one event to one agent, store the changes, and wake the distributor if needed."""
        agent = self.get(agent_id)
        changes = agent.handle(event, self.clock(), reason)
        for change in changes:
            self._store(agent, change)
        if any(AgentEffect.ROUTE in c.effects for c in changes):
            self.on_available(agent)
        return changes

    def _store(self, agent: Agent, change: AgentChange) -> None:
        at = datetime.fromtimestamp(change.at, UTC)
        self._buffer.put(
            Write(
                _CHANGES,
                {
                    "id": uuid.uuid4(),
                    "agent_id": agent.id,
                    "at": at,
                    "from_state": change.from_state.value,
                    "event": change.event.value,
                    "to_state": change.to_state.value,
                    "reason": change.reason,
                },
            )
        )
        self._buffer.put(
            Write(
                _AGENTS,
                {
                    "id": agent.id,
                    "name": agent.name,
                    "extension": agent.extension,
                    "state": agent.state.value,
                    "state_reason": agent.reason,
                    "state_changed_at": datetime.fromtimestamp(agent.since, UTC),
                },
                update=("state", "state_reason", "state_changed_at"),
            )
        )
