"""Queue order and the longest-idle choice of agent."""

from __future__ import annotations

import pytest

from telephony.acd.agent_state import Agent, AgentEvent, AgentState
from telephony.acd.queue import SkillGroupQueue, longest_idle_agent


def _available(agent_id: str, idle_since: float, skills: dict[str, int] | None = None) -> Agent:
    agent = Agent(agent_id, "10" + agent_id[-2:], skills=skills or {})
    agent.handle(AgentEvent.SIGN_IN, idle_since)
    return agent


def test_longest_idle_available_agent_with_the_skill_is_chosen() -> None:
    agents = [
        _available("a01", 30.0),
        _available("a02", 10.0, {"tax": 1}),
        _available("a03", 5.0),
        _available("a04", 1.0, {"tax": 2}),
    ]
    agents[3].handle(AgentEvent.SET_BUSY, 2.0, reason="break")
    chosen = longest_idle_agent(agents, "general")
    assert chosen is not None and chosen.id == "a03"  # a04 is busy; a02 lacks general
    tax = longest_idle_agent(agents, "tax")
    assert tax is not None and tax.id == "a02"


def test_an_agent_that_missed_the_call_is_skipped() -> None:
    agents = [_available("a01", 1.0), _available("a02", 2.0)]
    chosen = longest_idle_agent(agents, "general", exclude=frozenset({"a01"}))
    assert chosen is not None and chosen.id == "a02"
    assert longest_idle_agent(agents, "general", exclude=frozenset({"a01", "a02"})) is None


def test_no_agent_signed_in_means_nobody_is_chosen() -> None:
    assert longest_idle_agent([Agent("a01", "1001")], "general") is None
    assert Agent("a01", "1001").state is AgentState.LOGGED_OUT


def test_queue_serves_priority_first_then_arrival() -> None:
    queue = SkillGroupQueue("general")
    queue.add("c1", 0, 1.0)
    queue.add("c2", 5, 2.0)
    queue.add("c3", 0, 0.5)
    queue.add("c4", 5, 3.0)
    assert [w.call_uuid for w in queue.waiting()] == ["c2", "c4", "c3", "c1"]
    assert queue.remove("c2") is not None
    head = queue.head()
    assert head is not None and head.call_uuid == "c4"
    assert len(queue) == 3 and "c2" not in queue


def test_a_call_cannot_be_queued_twice_in_one_group() -> None:
    queue = SkillGroupQueue("general")
    queue.add("c1", 0, 1.0)
    with pytest.raises(ValueError, match="already queued"):
        queue.add("c1", 0, 2.0)


def test_idle_since_zero_counts_as_the_longest_idle() -> None:
    agents = [_available("a01", 3.0), _available("a02", 0.0)]
    chosen = longest_idle_agent(agents, "general")
    assert chosen is not None and chosen.id == "a02"
