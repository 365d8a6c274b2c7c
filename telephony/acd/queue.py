"""Skill-group queues and the choice of agent.

Theory of operation
-------------------
Each skill group keeps its waiting calls ordered by priority (higher first)
and then by arrival. When an agent becomes available, or a call enters a
queue, the router pairs the head of a queue with the agent that has been
idle longest among the available agents holding the group's skill (an agent
with no skills serves ``general``). An agent that was just offered a call
and did not answer is not offered the same call again. Pure data and
functions: the engine calls them on its loop and carries out the result.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from telephony.acd.agent_state import Agent, AgentState

GENERAL = "general"


def serves(agent: Agent, group_id: str) -> bool:
    """Whether ``agent`` has the skill of ``group_id``."""
    if not agent.skills:
        return group_id == GENERAL
    return group_id in agent.skills


def longest_idle_agent(
    agents: Iterable[Agent], group_id: str, exclude: frozenset[str] = frozenset()
) -> Agent | None:
    """The available agent of the group idle the longest, skipping ``exclude`` (agent ids)."""
    candidates = [
        agent
        for agent in agents
        if agent.state is AgentState.AVAILABLE
        and agent.id not in exclude
        and serves(agent, group_id)
    ]
    return min(candidates, key=_idle_since, default=None)


def _idle_since(agent: Agent) -> float:
    return agent.idle_since if agent.idle_since is not None else float("-inf")


@dataclass
class Waiting:
    """A call waiting in a skill group."""

    call_uuid: str
    group_id: str
    priority: int
    entered_at: float


class SkillGroupQueue:
    """Waiting calls of one skill group: priority first, then first come, first served."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self._heap: list[tuple[int, float, int, str]] = []
        self._entries: dict[str, Waiting] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, call_uuid: object) -> bool:
        return call_uuid in self._entries

    def add(self, call_uuid: str, priority: int, now: float) -> Waiting:
        if call_uuid in self._entries:
            raise ValueError(f"call {call_uuid} is already queued in {self.group_id}")
        entry = Waiting(call_uuid, self.group_id, priority, now)
        self._entries[call_uuid] = entry
        heapq.heappush(self._heap, (-priority, now, next(self._order), call_uuid))
        return entry

    def remove(self, call_uuid: str) -> Waiting | None:
        """Take a call out (answered, abandoned, moved); the heap drops it lazily."""
        return self._entries.pop(call_uuid, None)

    def waiting(self) -> list[Waiting]:
        """Calls in the order they will be served."""
        return [self._entries[c] for *_, c in sorted(self._heap) if c in self._entries]

    def head(self) -> Waiting | None:
        while self._heap and self._heap[0][3] not in self._entries:
            heapq.heappop(self._heap)
        return self._entries[self._heap[0][3]] if self._heap else None
