"""Call control on a connected call: the commands, their refusals, and the control state machine.

Theory of operation
-------------------
A citizen's call that reached an agent (call state ``connected``) is, for
call control, in one of these states (``Call.control``):

``talking``            citizen and agent bridged
``held``               the agent's leg on hold (``uuid_hold``): the citizen hears music
``consult_ringing``    attended transfer: the citizen held, the consulted party ringing
``consulting``         the agent bridged to the consulted party (``uuid_bridge agent
                       other``); the citizen, re-parked by ``park_after_bridge``, hears
                       music played by us
``returning``          the consult is over (cancelled, refused, the party left): the
                       citizen is being bridged back to the agent
``completing``         the citizen is being bridged to the consulted party; the first
                       agent's leg, which loses its partner, is hung up
``three_way_ringing``  a third party is being called to join (the call goes on)
``conference``         the third party hears both and is heard (``three_way``)
``transferring``       blind transfer: the agent's leg is being hung up, the citizen's
                       re-park awaited; then back to ``queued`` (a skill group, or
                       offered to one agent) or ``dialing_out``
``dialing_out``        blind transfer to a number: the citizen hears music, the number rings
``outside``            the citizen talks to an outside number (after a transfer)
``dialing``            an agent's outbound call: the agent's phone, then the number, ring

Events are what the API asked (``hold``, ``retrieve``, ``consult``,
``complete``, ``cancel``, ``three_way``, ``leave_three_way``, ``blind``,
``dial``) and what the switch said (the consulted party answered or failed,
the citizen was re-parked, a bridge came, a leg ended). The table says which
event is legal where; a command that is not is refused (409) before anything
is sent to the switch, and an event that comes in the wrong state is logged
and ignored. Monitoring (listen / whisper / barge) is its own small machine,
per call, beside this one: no event reaches the call's legs when a
supervisor listens, so this state is all there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from telephony.fsm import Machine, Rule


class ControlState(Enum):
    NONE = "none"
    TALKING = "talking"
    HELD = "held"
    CONSULT_RINGING = "consult_ringing"
    CONSULTING = "consulting"
    RETURNING = "returning"
    COMPLETING = "completing"
    THREE_WAY_RINGING = "three_way_ringing"
    CONFERENCE = "conference"
    TRANSFERRING = "transferring"
    DIALING_OUT = "dialing_out"
    OUTSIDE = "outside"
    DIALING = "dialing"


class ControlInput(Enum):
    CONNECT = "connect"  # bridged to an agent (an offer, or an outbound call)
    HOLD = "hold"
    RETRIEVE = "retrieve"
    CONSULT = "consult"
    CONSULT_JOINED = "consult_joined"  # the citizen re-parked: the agent talks to the party
    CONSULT_FAILED = "consult_failed"  # refused, not answered, or the party left
    CANCEL = "cancel"
    COMPLETE = "complete"
    RETURNED = "returned"  # the citizen bridged back to the agent
    COMPLETED = "completed"  # the citizen bridged to the consulted agent
    COMPLETED_OUTSIDE = "completed_outside"  # ... to the consulted outside number
    THREE_WAY = "three_way"
    THREE_WAY_JOINED = "three_way_joined"
    THREE_WAY_ENDED = "three_way_ended"
    BLIND = "blind"
    REQUEUED = "requeued"  # after a blind transfer: waiting again (queue or one agent)
    BLIND_OUT = "blind_out"
    OUTSIDE_ANSWERED = "outside_answered"
    DIAL = "dial"
    AGENT_GONE = "agent_gone"
    END = "end"


St, In = ControlState, ControlInput

#: Where the API's ``hold``/``transfer``/``three-way`` may start from.
_ACTIVE = (St.TALKING, St.HELD)
_ALL = tuple(ControlState)

CONTROL_MACHINE: Machine[ControlState, ControlInput, None] = Machine(
    "call_control",
    {
        (St.NONE, In.CONNECT): Rule(St.TALKING),
        (St.DIALING, In.CONNECT): Rule(St.TALKING),
        (St.NONE, In.DIAL): Rule(St.DIALING),
        (St.TALKING, In.HOLD): Rule(St.HELD),
        (St.HELD, In.RETRIEVE): Rule(St.TALKING),
        **{(s, In.CONSULT): Rule(St.CONSULT_RINGING) for s in _ACTIVE},
        (St.CONSULT_RINGING, In.CONSULT_JOINED): Rule(St.CONSULTING),
        (St.CONSULT_RINGING, In.CONSULT_FAILED): Rule(St.TALKING),
        (St.CONSULT_RINGING, In.CANCEL): Rule(St.TALKING),
        (St.CONSULTING, In.CONSULT_FAILED): Rule(St.RETURNING),
        (St.CONSULTING, In.CANCEL): Rule(St.RETURNING),
        (St.CONSULTING, In.COMPLETE): Rule(St.COMPLETING),
        (St.RETURNING, In.RETURNED): Rule(St.TALKING),
        (St.COMPLETING, In.COMPLETED): Rule(St.TALKING),
        (St.COMPLETING, In.COMPLETED_OUTSIDE): Rule(St.OUTSIDE),
        (St.TALKING, In.THREE_WAY): Rule(St.THREE_WAY_RINGING),
        (St.THREE_WAY_RINGING, In.THREE_WAY_JOINED): Rule(St.CONFERENCE),
        (St.THREE_WAY_RINGING, In.THREE_WAY_ENDED): Rule(St.TALKING),
        (St.CONFERENCE, In.THREE_WAY_ENDED): Rule(St.TALKING),
        **{(s, In.BLIND): Rule(St.TRANSFERRING) for s in _ACTIVE},
        (St.TRANSFERRING, In.REQUEUED): Rule(St.NONE),
        (St.TRANSFERRING, In.BLIND_OUT): Rule(St.DIALING_OUT),
        (St.DIALING_OUT, In.OUTSIDE_ANSWERED): Rule(St.OUTSIDE),
        (St.DIALING_OUT, In.REQUEUED): Rule(St.NONE),
        **{(s, In.AGENT_GONE): Rule(St.NONE) for s in _ALL},
        **{(s, In.END): Rule(St.NONE) for s in _ALL},
    },
)

#: The API's word for a connected call in each control state (``GET /v1/calls``).
API_STATE = {
    St.NONE: "talking",
    St.TALKING: "talking",
    St.HELD: "held",
    St.CONSULT_RINGING: "consulting",
    St.CONSULTING: "consulting",
    St.RETURNING: "consulting",
    St.COMPLETING: "consulting",
    St.THREE_WAY_RINGING: "talking",
    St.CONFERENCE: "conference",
    St.TRANSFERRING: "queued",
    St.DIALING_OUT: "ringing",
    St.OUTSIDE: "talking",
    St.DIALING: "ringing",
}


class MonitorMode(Enum):
    """What the supervisor's eavesdrop leg does; the digit ``uuid_recv_dtmf`` sends for it
    (``switch_ivr_eavesdrop_session``: 0 listen, 2 talk to the agent leg, 3 to both)."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"

    @property
    def digit(self) -> str:
        return {"listen": "0", "whisper": "2", "barge": "3"}[self.value]


class MonitorState(Enum):
    RINGING = "ringing"  # the supervisor's phone rings
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    ENDED = "ended"


class MonitorInput(Enum):
    ANSWERED = "answered"
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    STOP = "stop"  # asked, the supervisor's leg gone, or the call over


_MODES = (MonitorState.LISTEN, MonitorState.WHISPER, MonitorState.BARGE)

MONITOR_MACHINE: Machine[MonitorState, MonitorInput, None] = Machine(
    "monitor",
    {
        (MonitorState.RINGING, MonitorInput.ANSWERED): Rule(MonitorState.LISTEN),
        **{
            (s, i): Rule(MonitorState(i.value))
            for s in (MonitorState.RINGING, *_MODES)
            for i in (MonitorInput.LISTEN, MonitorInput.WHISPER, MonitorInput.BARGE)
        },
        **{
            (s, MonitorInput.STOP): Rule(MonitorState.ENDED)
            for s in (MonitorState.RINGING, *_MODES)
        },
    },
)


# -- commands (what the API asks the engine) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """Who a transfer or a three-way goes to: one of an agent, a skill group, a number."""

    kind: Literal["agent", "skill_group", "number"]
    id: str


@dataclass(frozen=True, slots=True)
class Hold:
    call: str


@dataclass(frozen=True, slots=True)
class Retrieve:
    call: str


@dataclass(frozen=True, slots=True)
class Hangup:
    call: str


@dataclass(frozen=True, slots=True)
class Transfer:
    call: str
    to: Party
    attended: bool = False


@dataclass(frozen=True, slots=True)
class CompleteTransfer:
    call: str


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    call: str


@dataclass(frozen=True, slots=True)
class ThreeWay:
    call: str
    to: Party


@dataclass(frozen=True, slots=True)
class LeaveThreeWay:
    call: str


@dataclass(frozen=True, slots=True)
class Monitor:
    call: str
    mode: MonitorMode
    extension: str
    supervisor: str


@dataclass(frozen=True, slots=True)
class ChangeMonitor:
    call: str
    mode: MonitorMode


@dataclass(frozen=True, slots=True)
class StopMonitor:
    call: str


@dataclass(frozen=True, slots=True)
class Dial:
    agent: str
    number: str
    #: The caller ID the citizen sees (default: ``outbound_caller_id``); a callback shows
    #: the hotline the citizen had called.
    caller_id: str | None = None
    #: The citizen's leg uuid, chosen by the caller (a callback records it before dialling).
    call_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """End the agent's wrap-up now (``extend_s``: extend it by that many seconds instead)."""

    agent: str
    extend_s: float | None = None


CallCommand = (
    Hold
    | Retrieve
    | Hangup
    | Transfer
    | CompleteTransfer
    | CancelTransfer
    | ThreeWay
    | LeaveThreeWay
    | Monitor
    | ChangeMonitor
    | StopMonitor
)
Command = CallCommand | Dial | Ready


@dataclass(frozen=True, slots=True)
class Done:
    """A command accepted: the call (or agent) and where it now stands, in words."""

    subject: str
    state: str
    detail: str


RefusalKind = Literal["unknown_call", "wrong_state", "unavailable", "invalid", "no_engine"]


class Refused(Exception):
    """A command the engine will not carry out, and why (nothing was sent to the switch)."""

    def __init__(self, kind: RefusalKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
