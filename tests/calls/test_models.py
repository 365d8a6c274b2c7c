"""The call and leg state machines on their own, without a switch."""

from __future__ import annotations

import pytest

from telephony.calls.leg import Leg, LegInput, LegState
from telephony.calls.model import Call, CallEffect, CallInput, CallState, Outcome
from telephony.fsm import IllegalTransition


def _call() -> Call:
    return Call("c1", "node", "12345", "13800138000", arrived_at=100.0)


def test_leg_lives_ringing_answered_bridged_unbridged_ended() -> None:
    leg = Leg("l1", "caller", "12345", created_at=1.0)
    for event, now in ((LegInput.ANSWER, 2.0), (LegInput.BRIDGE, 3.0), (LegInput.UNBRIDGE, 4.0)):
        leg.move(event, now)
    leg.move(LegInput.HANGUP, 9.0)
    assert (leg.state, leg.answered_at, leg.ended_at) == (LegState.ENDED, 2.0, 9.0)
    with pytest.raises(IllegalTransition):
        leg.move(LegInput.HANGUP, 10.0)
    assert leg.ended_at == 9.0


def test_a_ringing_leg_cannot_be_bridged() -> None:
    with pytest.raises(IllegalTransition):
        Leg("l1", "agent", "1001", created_at=1.0).move(LegInput.BRIDGE, 2.0)


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ([], Outcome.ABANDONED_IN_IVR),
        ([CallInput.ANSWER], Outcome.ABANDONED_IN_IVR),
        ([CallInput.ANSWER, CallInput.ENQUEUE], Outcome.ABANDONED_IN_QUEUE),
        ([CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER], Outcome.ABANDONED_IN_QUEUE),
        (
            [CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER, CallInput.BRIDGE],
            Outcome.ANSWERED,
        ),
    ],
)
def test_outcome_follows_the_state_the_call_ended_in(
    path: list[CallInput], outcome: Outcome
) -> None:
    call = _call()
    for event in path:
        call.move(event)
    call.hangup_disposition = "recv_bye"  # the citizen hung up
    effects = call.move(CallInput.HANGUP)
    assert call.state is CallState.ENDED and call.outcome is outcome
    assert CallEffect.WRITE_CDR in effects


@pytest.mark.parametrize(
    "path",
    [[], [CallInput.ANSWER], [CallInput.ANSWER, CallInput.ENQUEUE]],
)
def test_a_call_the_switch_ended_before_an_agent_is_a_system_loss(
    path: list[CallInput],
) -> None:
    call = _call()
    for event in path:
        call.move(event)
    call.hangup_cause, call.hangup_disposition = "NORMAL_TEMPORARY_FAILURE", "send_bye"
    call.move(CallInput.HANGUP)
    assert (call.outcome, call.hung_up_by) == (Outcome.LOST, "system")


def test_self_service_needs_us_to_end_the_call_and_a_citizen_leaving_abandons() -> None:
    left, served = _call(), _call()
    for call in (left, served):
        call.move(CallInput.ANSWER)
        call.ivr_outcome = Outcome.SELF_SERVICE
    left.hangup_disposition = "recv_bye"
    served.we_hung_up, served.hangup_disposition = True, "send_bye"
    for call in (left, served):
        call.move(CallInput.HANGUP)
    assert left.outcome is Outcome.ABANDONED_IN_IVR
    assert served.outcome is Outcome.SELF_SERVICE


def test_a_voice_message_ended_by_the_citizen_is_a_voice_message() -> None:
    call = _call()
    call.move(CallInput.ANSWER)
    call.ivr_outcome, call.hangup_disposition = Outcome.VOICEMAIL, "recv_bye"
    call.move(CallInput.HANGUP)
    assert call.outcome is Outcome.VOICEMAIL


def test_a_call_ended_while_we_were_disconnected_says_nobody_knows_who_hung_up() -> None:
    call = _call()
    for event in (CallInput.ANSWER, CallInput.ENQUEUE):
        call.move(event)
    call.ended_unseen = True
    call.move(CallInput.HANGUP)
    assert (call.outcome, call.hung_up_by) == (Outcome.ABANDONED_IN_QUEUE, "unknown")


def test_hanging_up_while_the_agent_rings_cancels_the_offer() -> None:
    call = _call()
    for event in (CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER):
        call.move(event)
    assert CallEffect.CANCEL_OFFER in call.move(CallInput.HANGUP)


def test_a_failed_offer_puts_the_call_back_and_routes_again() -> None:
    call = _call()
    for event in (CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER):
        call.move(event)
    assert call.move(CallInput.OFFER_FAILED) == (CallEffect.ROUTE,)
    assert call.state is CallState.QUEUED


def test_who_hung_up_and_the_seconds() -> None:
    call = _call()
    for event in (CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER, CallInput.BRIDGE):
        call.move(event)
    call.queued_at, call.agent_answered_at = 101.0, 111.0
    call.agent_left_first = True
    call.move(CallInput.AGENT_HANGUP)
    call.agent_ended_at, call.ended_at = 171.0, 180.0
    call.move(CallInput.HANGUP)
    assert call.hung_up_by == "agent"
    assert (call.wait_seconds, call.talk_seconds) == (10.0, 60.0)


def test_an_ended_call_takes_no_more_events() -> None:
    call = _call()
    call.move(CallInput.HANGUP)
    with pytest.raises(IllegalTransition):
        call.move(CallInput.ANSWER)


def test_an_agent_who_hangs_up_first_hung_up_even_when_the_caller_is_not_kept() -> None:
    call = _call()
    for event in (CallInput.ANSWER, CallInput.ENQUEUE, CallInput.OFFER, CallInput.BRIDGE):
        call.move(event)
    call.agent_left_first = True  # the agent leg ended with recv_bye
    call.hangup_disposition = "send_bye"  # then the switch ended the caller's leg
    call.move(CallInput.HANGUP)
    assert (call.outcome, call.hung_up_by) == (Outcome.ANSWERED, "agent")
