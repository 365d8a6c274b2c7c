"""The agent (坐席) state machine.

Theory of operation
-------------------
States: ``logged_out`` (签出), ``available`` (置闲, may be offered calls),
``busy`` (置忙, with a reason: a break, a meeting, or "no answer" after a
missed offer), ``ringing`` (a call is being offered to the extension),
``in_call``, ``wrap_up`` (after-call work; ends by timer or by the agent).

Events come from the agent (sign_in, sign_out, set_busy, set_idle,
wrap_up_done) or from the call engine (offer, answer, no_answer,
offer_cancelled, call_ended).

Rules:
* Only an ``available`` agent is offered a call.
* A missed offer (ring timeout, reject) makes the agent ``busy`` with the
  reason "no answer", so the next call is not offered to an empty seat.
* ``set_busy`` or ``sign_out`` during ``ringing``, ``in_call`` or ``wrap_up``
  is deferred, not refused: it is kept and applied as soon as the agent's
  current call is over, whichever way it ends (wrap-up done, the caller left
  while the phone rang, a missed offer); the API reply says so. ``set_idle``
  in those states clears a deferred request.
* ``resume_call`` (from any other state) is how a restarted controller puts
  an agent it finds bridged to a citizen back in ``in_call``.
* The end of a call starts wrap-up; the engine owns the timer (effect
  ``start_wrap_up``), so this module never sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from telephony.fsm import Machine, Rule


class AgentState(Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    BUSY = "busy"
    RINGING = "ringing"
    IN_CALL = "in_call"
    WRAP_UP = "wrap_up"


class AgentEvent(Enum):
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    SET_BUSY = "set_busy"
    SET_IDLE = "set_idle"
    OFFER = "offer"
    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    OFFER_CANCELLED = "offer_cancelled"
    CALL_ENDED = "call_ended"
    WRAP_UP_DONE = "wrap_up_done"
    RESUME_CALL = "resume_call"  # re-adoption after a restart found the agent bridged


class AgentEffect(Enum):
    START_WRAP_UP = "start_wrap_up"  # the engine arms the wrap-up timer
    ROUTE = "route"  # the agent can take a call: let the router look at the queues
    DEFER = "defer"  # keep the request (busy / sign-out) until wrap-up ends
    CLEAR_DEFERRED = "clear_deferred"


St, Ev, Fx = AgentState, AgentEvent, AgentEffect
_DEFERRABLE = (St.RINGING, St.IN_CALL, St.WRAP_UP)

AGENT_MACHINE: Machine[AgentState, AgentEvent, AgentEffect] = Machine(
    "agent",
    {
        (St.LOGGED_OUT, Ev.SIGN_IN): Rule(St.AVAILABLE, (Fx.ROUTE,)),
        (St.AVAILABLE, Ev.SIGN_OUT): Rule(St.LOGGED_OUT),
        (St.AVAILABLE, Ev.SET_BUSY): Rule(St.BUSY),
        (St.AVAILABLE, Ev.SET_IDLE): Rule(St.AVAILABLE),
        (St.AVAILABLE, Ev.OFFER): Rule(St.RINGING),
        (St.BUSY, Ev.SET_IDLE): Rule(St.AVAILABLE, (Fx.ROUTE,)),
        (St.BUSY, Ev.SET_BUSY): Rule(St.BUSY),
        (St.BUSY, Ev.SIGN_OUT): Rule(St.LOGGED_OUT),
        (St.RINGING, Ev.ANSWER): Rule(St.IN_CALL),
        (St.RINGING, Ev.NO_ANSWER): Rule(St.BUSY),
        (St.RINGING, Ev.OFFER_CANCELLED): Rule(St.AVAILABLE, (Fx.ROUTE,)),
        (St.IN_CALL, Ev.CALL_ENDED): Rule(St.WRAP_UP, (Fx.START_WRAP_UP,)),
        (St.WRAP_UP, Ev.WRAP_UP_DONE): Rule(St.AVAILABLE, (Fx.ROUTE,)),
        **{(s, Ev.SET_BUSY): Rule(s, (Fx.DEFER,)) for s in _DEFERRABLE},
        **{(s, Ev.SIGN_OUT): Rule(s, (Fx.DEFER,)) for s in _DEFERRABLE},
        **{(s, Ev.SET_IDLE): Rule(s, (Fx.CLEAR_DEFERRED,)) for s in _DEFERRABLE},
        **{(s, Ev.RESUME_CALL): Rule(St.IN_CALL) for s in St if s is not St.IN_CALL},
    },
)

NO_ANSWER_REASON = "no answer"


@dataclass(frozen=True, slots=True)
class AgentChange:
    """One applied event: what to store (agent_state_changes) and what to do next."""

    agent_id: str
    at: float
    from_state: AgentState
    event: AgentEvent
    to_state: AgentState
    reason: str | None
    effects: tuple[AgentEffect, ...]

    @property
    def deferred(self) -> bool:
        return AgentEffect.DEFER in self.effects


@dataclass
class Agent:
    """An agent's live state. Only the engine's loop calls :meth:`handle`."""

    id: str
    extension: str
    name: str = ""
    area: str | None = None
    skills: dict[str, int] = field(default_factory=dict)
    state: AgentState = AgentState.LOGGED_OUT
    reason: str | None = None
    since: float = 0.0
    idle_since: float | None = None
    deferred: tuple[AgentEvent, str | None] | None = None

    def handle(self, event: AgentEvent, now: float, reason: str | None = None) -> list[AgentChange]:
        """Apply ``event`` at ``now``; returns the changes made (a deferred request may add one)."""
        rule = AGENT_MACHINE.apply(self.id, self.state, event)
        if event is AgentEvent.NO_ANSWER:
            reason = NO_ANSWER_REASON
        change = AgentChange(self.id, now, self.state, event, rule.target, reason, rule.effects)
        if AgentEffect.DEFER in rule.effects:
            self.deferred = (event, reason)
        elif AgentEffect.CLEAR_DEFERRED in rule.effects:
            self.deferred = None
        if rule.target is not self.state:
            self.since = now
        self.reason = reason if rule.target is AgentState.BUSY else None
        if rule.target is AgentState.AVAILABLE and self.state is not AgentState.AVAILABLE:
            self.idle_since = now
        elif rule.target is not AgentState.AVAILABLE:
            self.idle_since = None
        self.state = rule.target
        changes = [change]
        if self.deferred is not None and self.state not in _DEFERRABLE:
            pending, pending_reason = self.deferred
            self.deferred = None
            changes.extend(self.handle(pending, now, pending_reason))
        return changes
