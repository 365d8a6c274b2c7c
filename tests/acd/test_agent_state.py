"""The agent state machine, without sleeping: time is an argument."""

from __future__ import annotations

import pytest

from telephony.acd.agent_state import (
    AGENT_MACHINE,
    Agent,
    AgentEffect,
    AgentEvent,
    AgentState,
)
from telephony.fsm import IllegalTransition

Ev, St = AgentEvent, AgentState


def _agent() -> Agent:
    agent = Agent("a1", "1001")
    agent.handle(Ev.SIGN_IN, 0.0)
    return agent


def test_sign_in_makes_the_agent_available_and_asks_for_routing() -> None:
    agent = Agent("a1", "1001")
    (change,) = agent.handle(Ev.SIGN_IN, 5.0)
    assert (change.from_state, change.to_state) == (St.LOGGED_OUT, St.AVAILABLE)
    assert AgentEffect.ROUTE in change.effects
    assert agent.idle_since == 5.0


def test_a_missed_offer_makes_the_agent_busy_with_reason_no_answer() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    (change,) = agent.handle(Ev.NO_ANSWER, 16.0)
    assert agent.state is St.BUSY
    assert agent.reason == change.reason == "no answer"
    assert agent.idle_since is None


def test_answered_call_goes_through_wrap_up_back_to_available() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.ANSWER, 3.0)
    (ended,) = agent.handle(Ev.CALL_ENDED, 60.0)
    assert AgentEffect.START_WRAP_UP in ended.effects
    (done,) = agent.handle(Ev.WRAP_UP_DONE, 75.0)
    assert done.to_state is St.AVAILABLE and agent.idle_since == 75.0


def test_busy_during_a_call_is_deferred_until_wrap_up_ends() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.ANSWER, 2.0)
    (request,) = agent.handle(Ev.SET_BUSY, 10.0, reason="meeting")
    assert request.deferred and agent.state is St.IN_CALL
    agent.handle(Ev.CALL_ENDED, 20.0)
    done, busy = agent.handle(Ev.WRAP_UP_DONE, 30.0)
    assert (done.to_state, busy.to_state) == (St.AVAILABLE, St.BUSY)
    assert agent.state is St.BUSY and agent.reason == "meeting"


def test_idle_during_a_call_cancels_a_deferred_sign_out() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.ANSWER, 2.0)
    agent.handle(Ev.SIGN_OUT, 3.0)
    agent.handle(Ev.SET_IDLE, 4.0)
    agent.handle(Ev.CALL_ENDED, 5.0)
    (done,) = agent.handle(Ev.WRAP_UP_DONE, 6.0)
    assert agent.state is St.AVAILABLE and done.to_state is St.AVAILABLE


def test_busy_asked_while_ringing_applies_when_the_caller_leaves() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.SET_BUSY, 2.0, reason="lunch")
    cancelled, busy = agent.handle(Ev.OFFER_CANCELLED, 3.0)
    assert (cancelled.to_state, busy.to_state) == (St.AVAILABLE, St.BUSY)
    assert agent.state is St.BUSY and agent.reason == "lunch" and agent.deferred is None


def test_sign_out_asked_while_ringing_applies_after_a_missed_offer() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.SIGN_OUT, 2.0)
    missed, out = agent.handle(Ev.NO_ANSWER, 16.0)
    assert (missed.to_state, out.to_state) == (St.BUSY, St.LOGGED_OUT)
    assert agent.deferred is None


def test_a_deferred_sign_out_does_not_wait_for_a_later_call() -> None:
    agent = _agent()
    agent.handle(Ev.OFFER, 1.0)
    agent.handle(Ev.SIGN_OUT, 2.0)
    agent.handle(Ev.OFFER_CANCELLED, 3.0)
    assert agent.state is St.LOGGED_OUT
    with pytest.raises(IllegalTransition):
        agent.handle(Ev.OFFER, 4.0)  # nobody offers a call to an agent who signed out


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (St.LOGGED_OUT, Ev.OFFER),
        (St.BUSY, Ev.OFFER),
        (St.AVAILABLE, Ev.ANSWER),
        (St.LOGGED_OUT, Ev.SET_BUSY),
        (St.IN_CALL, Ev.SIGN_IN),
    ],
)
def test_illegal_moves_are_refused_and_leave_the_state_alone(
    state: AgentState, event: AgentEvent
) -> None:
    agent = Agent("a1", "1001", state=state)
    with pytest.raises(IllegalTransition):
        agent.handle(event, 1.0)
    assert agent.state is state


def test_only_an_available_agent_can_be_offered_a_call() -> None:
    offerable = {s for s in St if AGENT_MACHINE.allows(s, Ev.OFFER)}
    assert offerable == {St.AVAILABLE}
