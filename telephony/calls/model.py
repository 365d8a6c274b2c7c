"""A citizen's call as the engine tracks it, and the call state machine.

Theory of operation
-------------------
A call is keyed by its caller leg's uuid (the channel FreeSWITCH parked for
the hotline). States:

``parked``        adopted from the dialplan's park, not answered yet
``ivr``           answered, hearing the greeting / IVR
``queued``        waiting in a skill group, hearing music on hold
``offering``      an agent's phone is ringing (the caller still hears music)
``connected``     bridged to the agent, recorded
``after_agent``   the agent hung up first; the caller is kept (survey, issue 4)
``ended``         the caller leg is gone; the CDR is written

While ``connected``, what the agent does with the call (hold, consult,
three-way, monitor) is the call-control machine's (``control_model``),
kept in ``control``; a blind or failed transfer moves the answered call back
to ``queued`` (event ``transfer``), and an agent's outbound call starts at
``dial`` (``parked`` → ``offering``: the phones ring) instead of the IVR.

Events: ``answer``, ``enqueue``, ``offer``, ``offer_failed`` (no answer,
reject, unreachable: back to the queue, that agent excluded), ``bridge``,
``agent_hangup``, ``hangup`` (the caller leg ended, whoever caused it).

The outcome is read from the state the call ended in: ``parked``/``ivr`` →
abandoned in IVR, ``queued``/``offering`` → abandoned in queue,
``connected``/``after_agent`` → answered; but a call that the switch ended
before it reached an agent, with no hang-up from the citizen (``recv_bye`` /
``recv_cancel``) and none asked by us, was lost by the system (``lost``,
呼损), not abandoned. An IVR ending (self-service, blocked) counts only when
we ended the call; a citizen who hangs up during the IVR abandoned it.
Effects tell the engine what to do besides moving: put the call back in the
queue and route, cancel a ringing agent leg, end the agent's call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from telephony.calls.control_model import ControlState
from telephony.calls.leg import Leg
from telephony.fsm import Machine, Rule


class CallState(Enum):
    PARKED = "parked"
    IVR = "ivr"
    QUEUED = "queued"
    OFFERING = "offering"
    CONNECTED = "connected"
    AFTER_AGENT = "after_agent"
    ENDED = "ended"


class CallInput(Enum):
    ANSWER = "answer"
    ENQUEUE = "enqueue"
    OFFER = "offer"
    OFFER_FAILED = "offer_failed"
    BRIDGE = "bridge"
    AGENT_HANGUP = "agent_hangup"
    HANGUP = "hangup"
    #: The agent's part is over but the citizen stays ours: a transfer to a skill group or
    #: an agent (call control) puts the answered call back to wait for its next agent.
    TRANSFER = "transfer"
    #: An agent's outbound call (外线拨打): the agent's phone and then the citizen's ring.
    DIAL = "dial"


class CallEffect(Enum):
    ROUTE = "route"  # the call (back) in its queue: look for an agent
    DEQUEUE = "dequeue"  # take the call out of its queue
    CANCEL_OFFER = "cancel_offer"  # kill the agent leg that is still ringing
    END_AGENT_CALL = "end_agent_call"  # the agent's side of the call is over
    WRITE_CDR = "write_cdr"


class Outcome(Enum):
    ANSWERED = "answered"
    ABANDONED_IN_QUEUE = "abandoned_in_queue"
    ABANDONED_IN_IVR = "abandoned_in_ivr"
    BLOCKED = "blocked"
    FAILED = "failed"
    # Ended by the IVR flow itself (self-service), not by the caller leaving it.
    SELF_SERVICE = "self_service"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"
    # The switch ended the call before it reached an agent (park timer, media timeout,
    # a failure): a system loss (呼损), not the citizen's abandon.
    LOST = "lost"
    # Refused at arrival because the control plane was over its capacity (also a loss).
    REFUSED = "refused"


St, In, Fx = CallState, CallInput, CallEffect

CALL_MACHINE: Machine[CallState, CallInput, CallEffect] = Machine(
    "call",
    {
        (St.PARKED, In.ANSWER): Rule(St.IVR),
        (St.IVR, In.ENQUEUE): Rule(St.QUEUED, (Fx.ROUTE,)),
        (St.QUEUED, In.OFFER): Rule(St.OFFERING),
        (St.OFFERING, In.OFFER_FAILED): Rule(St.QUEUED, (Fx.ROUTE,)),
        (St.OFFERING, In.BRIDGE): Rule(St.CONNECTED, (Fx.DEQUEUE,)),
        (St.CONNECTED, In.AGENT_HANGUP): Rule(St.AFTER_AGENT, (Fx.END_AGENT_CALL,)),
        (St.CONNECTED, In.TRANSFER): Rule(St.QUEUED),
        (St.PARKED, In.DIAL): Rule(St.OFFERING),
        (St.PARKED, In.HANGUP): Rule(St.ENDED, (Fx.WRITE_CDR,)),
        (St.IVR, In.HANGUP): Rule(St.ENDED, (Fx.WRITE_CDR,)),
        (St.QUEUED, In.HANGUP): Rule(St.ENDED, (Fx.DEQUEUE, Fx.WRITE_CDR)),
        (St.OFFERING, In.HANGUP): Rule(St.ENDED, (Fx.DEQUEUE, Fx.CANCEL_OFFER, Fx.WRITE_CDR)),
        (St.CONNECTED, In.HANGUP): Rule(St.ENDED, (Fx.END_AGENT_CALL, Fx.WRITE_CDR)),
        (St.AFTER_AGENT, In.HANGUP): Rule(St.ENDED, (Fx.WRITE_CDR,)),
    },
)

_OUTCOME_BY_LAST_STATE = {
    St.PARKED: Outcome.ABANDONED_IN_IVR,
    St.IVR: Outcome.ABANDONED_IN_IVR,
    St.QUEUED: Outcome.ABANDONED_IN_QUEUE,
    St.OFFERING: Outcome.ABANDONED_IN_QUEUE,
    St.CONNECTED: Outcome.ANSWERED,
    St.AFTER_AGENT: Outcome.ANSWERED,
}


def outcome_of(last_state: CallState) -> Outcome:
    """The CDR outcome of a call that ended in ``last_state``."""
    return _OUTCOME_BY_LAST_STATE.get(last_state, Outcome.FAILED)


@dataclass
class Call:
    """One citizen's call: its legs, its times (engine clock, seconds), and where it stands."""

    uuid: str
    node: str
    hotline: str
    caller: str
    arrived_at: float
    state: CallState = CallState.PARKED
    skill_group: str = "general"
    priority: int = 0
    ivr_answered_at: float | None = None
    queued_at: float | None = None
    agent_answered_at: float | None = None
    agent_ended_at: float | None = None
    ended_at: float | None = None
    agent_id: str | None = None
    agent_leg: str | None = None
    offered_agent: str | None = None
    offer_leg: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    recording_id: str | None = None
    recording_path: str | None = None
    recording_started_at: float | None = None
    recording_claimed: bool = False  # the file exists with audio (checked at RECORD_STOP)
    recording_failed: str | None = None  # why there is no recording (the switch's words)
    voicemail_path: str | None = None
    voicemail_failed: str | None = None
    agent_left_first: bool = False
    hangup_cause: str | None = None
    hangup_disposition: str | None = None
    last_state: CallState = CallState.PARKED
    ivr_keys: str = ""
    ivr_outcome: Outcome | None = None  # the flow ended the call (blocked, voicemail, ...)
    survey_score: int | None = None
    hold_music: str | None = None  # the dialplan's choice (``hold_music``), else the engine's
    controlled: bool = False  # out of the dialplan's park (and its park_timeout): ours
    we_hung_up: bool = False  # we asked the switch to end the caller's leg
    ended_unseen: bool = False  # ended while we were disconnected: nobody knows who hung up
    bridging: bool = False  # music stopped for a bridge that is not confirmed yet
    ivr_restarts: int = 0
    #: agent id -> when they last failed to take this call (not re-offered for a while)
    tried_at: dict[str, float] = field(default_factory=dict)
    #: ``inbound`` (a citizen called the hotline) or ``outbound`` (an agent dialled out).
    direction: str = "inbound"
    #: Where a connected call stands for call control (hold, consult, three-way, ...).
    control: ControlState = ControlState.NONE
    hold_seconds: float = 0.0  # the time the citizen was on hold, retrieved holds
    held_since: float | None = None  # on hold now, since then

    def move(self, event: CallInput) -> tuple[CallEffect, ...]:
        """Apply ``event`` with the call state machine; returns the effects to carry out."""
        rule = CALL_MACHINE.apply(self.uuid, self.state, event)
        self.last_state, self.state = self.state, rule.target
        return rule.effects

    def recently_tried(self, now: float, within: float) -> frozenset[str]:
        """Agents who failed to take this call less than ``within`` seconds ago."""
        return frozenset(a for a, at in self.tried_at.items() if now - at < within)

    @property
    def caller_hung_up(self) -> bool:
        return self.hangup_disposition in ("recv_bye", "recv_cancel")

    @property
    def outcome(self) -> Outcome:
        state = self.last_state if self.state is CallState.ENDED else self.state
        if self.direction == "outbound":
            return Outcome.ANSWERED if self.agent_answered_at is not None else Outcome.FAILED
        if state in (CallState.QUEUED, CallState.OFFERING) and self.agent_answered_at:
            state = CallState.CONNECTED  # answered, then transferred: still answered
        before_agent = state in (
            CallState.PARKED,
            CallState.IVR,
            CallState.QUEUED,
            CallState.OFFERING,
        )
        kept = self.ivr_outcome in (Outcome.TRANSFERRED, Outcome.VOICEMAIL) or self.we_hung_up
        if state in (CallState.PARKED, CallState.IVR) and self.ivr_outcome is not None and kept:
            return self.ivr_outcome
        if (
            before_agent
            and self.state is CallState.ENDED
            and not (self.caller_hung_up or self.we_hung_up or self.ended_unseen)
        ):
            return Outcome.LOST
        return outcome_of(state)

    @property
    def hung_up_by(self) -> str:
        """``caller``, ``agent`` or ``system``, from which leg ended first and how.

        A call that ended after the agent left was ended by the agent if the agent's
        leg ended with ``recv_bye`` (the phone hung up). Otherwise ``recv_bye`` or
        ``recv_cancel`` on the caller leg means the citizen hung up; anything else was us.
        """
        if self.ended_unseen:
            return "unknown"
        if self.state is CallState.ENDED and self.last_state is CallState.AFTER_AGENT:
            return "agent" if self.agent_left_first else "system"
        if self.agent_left_first and self.last_state is CallState.CONNECTED:
            return "agent"  # the agent's phone hung up and the switch ended the caller
        if self.caller_hung_up:
            return "caller"
        return "system"

    @property
    def wait_seconds(self) -> float | None:
        if self.queued_at is None:
            return None
        until = self.agent_answered_at or self.ended_at
        return None if until is None else max(0.0, until - self.queued_at)

    def hold_total(self, now: float) -> float:
        """Seconds on hold so far, a hold still running counted up to ``now``."""
        running = 0.0 if self.held_since is None else max(0.0, now - self.held_since)
        return self.hold_seconds + running

    @property
    def talk_seconds(self) -> float | None:
        until = self.agent_ended_at or self.ended_at
        if self.agent_answered_at is None or until is None:
            return None
        return max(0.0, until - self.agent_answered_at)
