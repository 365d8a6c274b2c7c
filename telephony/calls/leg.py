"""A leg: one FreeSWITCH channel of a call (the citizen's, an agent's), and its state machine.

Theory of operation
-------------------
States: ``ringing`` (the caller's channel parked unanswered, or an agent's
phone being originated), ``answered``, ``bridged`` (to the other leg),
``ended``. Events: ``answer``, ``bridge``, ``unbridge`` (the partner left
and the leg stayed, as park_after_bridge keeps the caller), ``hangup``.
A leg ends once; anything after that is illegal and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from telephony.fsm import Machine, Rule


class LegState(Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"


class LegInput(Enum):
    ANSWER = "answer"
    BRIDGE = "bridge"
    UNBRIDGE = "unbridge"
    HANGUP = "hangup"


St, In = LegState, LegInput

LEG_MACHINE: Machine[LegState, LegInput, None] = Machine(
    "leg",
    {
        (St.RINGING, In.ANSWER): Rule(St.ANSWERED),
        (St.RINGING, In.HANGUP): Rule(St.ENDED),
        (St.ANSWERED, In.BRIDGE): Rule(St.BRIDGED),
        (St.ANSWERED, In.HANGUP): Rule(St.ENDED),
        (St.BRIDGED, In.UNBRIDGE): Rule(St.ANSWERED),
        (St.BRIDGED, In.HANGUP): Rule(St.ENDED),
    },
)


@dataclass
class Leg:
    """One channel: who it is (``caller``, ``agent``), where it rang, and its times."""

    uuid: str
    role: str
    destination: str | None
    created_at: float
    state: LegState = LegState.RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: str | None = None
    disposition: str | None = None

    def move(self, event: LegInput, now: float) -> None:
        """Apply ``event`` at ``now``; raises IllegalTransition (logged) if not allowed."""
        rule = LEG_MACHINE.apply(self.uuid, self.state, event)
        self.state = rule.target
        if event is LegInput.ANSWER:
            self.answered_at = now
        elif event is LegInput.HANGUP:
            self.ended_at = now
