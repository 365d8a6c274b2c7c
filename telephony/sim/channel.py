"""A simulated channel (one call leg) and its session state machine.

Theory of operation
-------------------
A channel's FreeSWITCH state (``Channel-State``: ``CS_INIT``, ``CS_EXECUTE``,
``CS_SOFT_EXECUTE``, ``CS_EXCHANGE_MEDIA``, ``CS_PARK``, ``CS_REPORTING`` ...) is
what events show. What the simulator needs to decide what happens next is the
*session mode*, a coarser state machine:

=============  =================================================================
``NEW``        created, nothing run yet
``RINGING``    outbound leg being originated (the phone rings)
``DIALPLAN``   running dialplan applications (set, answer, ...)
``PARKED``     inside the ``park`` application; queued ``sendmsg`` apps run nested
``BRIDGED``    in a ``uuid_bridge``; queued apps still run (inside the bridge)
``REPARKED``   app-less park in ``CS_PARK``: after a bridge (``park_after_bridge``), or
               ``uuid_park``
``APP``        running a one-shot originate application (``&eavesdrop(...)``)
``HUNGUP``     hung up; only the hangup bookkeeping events remain
=============  =================================================================

:data:`TRANSITIONS` lists every legal ``(mode, event) -> mode``; :meth:`Channel.move`
applies it, logs ``from -> event -> to`` with the uuid, and rejects (logs and
ignores) anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from telephony.sim.headers import Profile, Times

log = logging.getLogger(__name__)


class Mode(Enum):
    NEW = "new"
    RINGING = "ringing"
    DIALPLAN = "dialplan"
    PARKED = "parked"
    BRIDGED = "bridged"
    REPARKED = "reparked"
    APP = "app"
    HUNGUP = "hungup"


TRANSITIONS: dict[tuple[Mode, str], Mode] = {
    (Mode.NEW, "route"): Mode.DIALPLAN,
    (Mode.NEW, "originate"): Mode.RINGING,
    (Mode.RINGING, "answered"): Mode.DIALPLAN,
    (Mode.DIALPLAN, "park"): Mode.PARKED,
    (Mode.DIALPLAN, "run_app"): Mode.APP,
    (Mode.APP, "park"): Mode.PARKED,
    (Mode.APP, "route"): Mode.DIALPLAN,
    (Mode.PARKED, "bridge"): Mode.BRIDGED,
    (Mode.REPARKED, "bridge"): Mode.BRIDGED,
    (Mode.DIALPLAN, "bridge"): Mode.BRIDGED,
    (Mode.APP, "bridge"): Mode.BRIDGED,
    (Mode.BRIDGED, "bridge"): Mode.BRIDGED,
    (Mode.BRIDGED, "repark"): Mode.REPARKED,
    (Mode.PARKED, "repark"): Mode.REPARKED,
    (Mode.PARKED, "route"): Mode.DIALPLAN,
    (Mode.BRIDGED, "route"): Mode.DIALPLAN,
    (Mode.REPARKED, "route"): Mode.DIALPLAN,
    (Mode.DIALPLAN, "route"): Mode.DIALPLAN,
}
for _mode in Mode:
    if _mode is not Mode.HUNGUP:
        TRANSITIONS[(_mode, "hangup")] = Mode.HUNGUP

#: Modes in which queued ``sendmsg`` applications are executed.
CONTROLLABLE = frozenset({Mode.PARKED, Mode.BRIDGED, Mode.REPARKED})


#: The eavesdrop mix (switch_ivr_eavesdrop_session, src/switch_ivr_async.c): whether the
#: listener's voice is mixed into what the target *reads* (ED_MUX_READ: the target's bridge
#: partner, the caller, hears it) and into what is *written* to the target (ED_MUX_WRITE: the
#: target, the agent, hears it) -> the mode's name. The listener always hears both sides.
EAVESDROP_MODES: dict[tuple[bool, bool], str] = {
    (False, False): "listen",
    (True, False): "talk_to_partner",
    (False, True): "whisper",
    (True, True): "barge",
}
#: The digit commands of the eavesdrop loop (with ED_DTMF): digit -> (mux_read, mux_write);
#: ``*`` ends the eavesdrop; any other digit changes nothing.
EAVESDROP_DIGITS: dict[str, tuple[bool, bool]] = {
    "0": (False, False),
    "1": (True, False),
    "2": (False, True),
    "3": (True, True),
}
EAVESDROP_STOP = "*"


@dataclass(slots=True)
class Eavesdrop:
    """A running ``eavesdrop``/``three_way`` on its listener channel."""

    target: Channel
    #: ED_DTMF: digits on the listener change the mode (eavesdrop_enable_dtmf, default on).
    dtmf: bool
    mux_read: bool = False
    mux_write: bool = False
    stopped: bool = False

    @property
    def mode(self) -> str:
        """``listen``, ``talk_to_partner``, ``whisper`` or ``barge``."""
        return EAVESDROP_MODES[(self.mux_read, self.mux_write)]

    def command(self, digit: str) -> None:
        """One digit dequeued by the eavesdrop loop (only called with ED_DTMF)."""
        if digit == EAVESDROP_STOP:
            self.stopped = True
        elif digit in EAVESDROP_DIGITS:
            self.mux_read, self.mux_write = EAVESDROP_DIGITS[digit]

    def describe(self, listener: Channel) -> dict[str, object]:
        """What a test reads: who hears the listener, whom the listener hears."""
        partner = self.target.partner
        talks_to = [self.target.uuid] if self.mux_write else []
        if self.mux_read and partner is not None:
            talks_to.append(partner.uuid)
        hears = [self.target.uuid] + ([partner.uuid] if partner is not None else [])
        return {
            "listener": listener.uuid,
            "target": self.target.uuid,
            "target_partner": partner.uuid if partner is not None else None,
            "mode": self.mode,
            "dtmf": self.dtmf,
            "hears": hears,
            "heard_by": talks_to,
        }


class QueuedDtmf(NamedTuple):
    """A digit in the channel's DTMF queue: RFC 2833 (``RTP``) or ``uuid_recv_dtmf`` (``APP``)."""

    digit: str
    duration: int
    source: str


class IllegalTransition(Exception):
    pass


@dataclass(slots=True)
class ExecRequest:
    """One queued ``sendmsg ... call-command: execute``."""

    app: str
    arg: str
    app_uuid: str
    loops: int = 1


@dataclass(slots=True)
class RecordRun:
    """A ``uuid_record``/``record_session`` media bug writing ``path`` (one per path)."""

    path: str
    started_us: int
    limit_timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class AppRun:
    """The outer ``park`` (or one-shot) application, completed when the channel leaves it."""

    app: str
    arg: str
    app_uuid: str


@dataclass(eq=False, repr=False)
class Channel:
    """One leg. Mutated only by :class:`telephony.sim.switch.Switch` on the event loop."""

    uuid: str
    name: str
    direction: str  # inbound | outbound
    profile: Profile
    presence_id: str
    tokens: dict[str, str]
    times: Times
    state: str = "CS_NEW"
    state_number: int | None = None  # overrides the number of ``state`` when set
    callstate: str = "DOWN"
    answer_state: str = "ringing"
    hit_dialplan: bool = True
    call_uuid: str = ""
    media: bool = False
    codec: str = "PCMU"
    #: What ``show channels`` lists as application / application_data.
    show_app: tuple[str, str] = ("", "")
    #: State, call state and call uuid ``show channels`` keeps showing once hung up.
    show_state: tuple[str, str, str] | None = None
    nested_ran: bool = False
    break_requested: bool = False
    mode: Mode = Mode.NEW
    variables: dict[str, str] = field(default_factory=dict)
    managed: set[str] = field(default_factory=set)
    other: tuple[str, Profile] | None = None
    hangup_cause: str | None = None
    disposition: str = "send_bye"
    queue: deque[ExecRequest] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    park: AppRun | None = None
    last_response: str = "_none_"
    partner: Channel | None = None
    bridge_owner: bool = False
    bridged_ever: bool = False
    held: bool = False
    hold_started: int = 0
    hold_music_on: Channel | None = None
    hold_music_run: AppRun | None = None
    #: Session recordings (media bugs) by path, as FreeSWITCH keys them (channel private).
    recordings: dict[str, RecordRun] = field(default_factory=dict)
    dtmf_buffer: list[QueuedDtmf] = field(default_factory=list)
    reading: bool = False
    digits_dialed: str = ""
    #: The park loop (switch_ivr_park) is running: CF_CONTROLLED, a nested park is refused.
    in_park_loop: bool = False
    #: Its timer: whole epoch second of the deadline (None: no park_timeout), the cause,
    #: and the pending test.
    park_expires: int | None = None
    park_cause: str = "NORMAL_CLEARING"
    park_check: asyncio.TimerHandle | None = None
    #: CF_TRANSFER set by uuid_park: the channel is not ready, media apps stop at once.
    unready: bool = False
    #: uuid_park of the dialplan park: CS_PARK follows once the queued apps are done.
    repark_pending: bool = False
    #: uuid_park of a channel already in CS_PARK: no loop until the next state change.
    limbo: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    hungup: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    destroyed: bool = False
    ext: str | None = None  # agent extension for outbound legs
    #: The captured variable phases an outbound leg follows: ``out`` (an agent's
    #: ``user/EXT``) or ``gw`` (a citizen through a carrier gateway).
    phases: str = "out"
    app_run: AppRun | None = None
    #: Channels an eavesdrop/three_way on this channel listens to, and who listens to this one.
    watching: set[Channel] = field(default_factory=set)
    watchers: set[Channel] = field(default_factory=set)
    #: The eavesdrop/three_way this channel runs (its mode), if any.
    eavesdrop: Eavesdrop | None = None
    answered_evt: asyncio.Event = field(default_factory=asyncio.Event)

    def __repr__(self) -> str:
        return f"<Channel {self.uuid} {self.direction} {self.mode.value} {self.state}>"

    def move(self, event: str) -> bool:
        """Apply ``event`` to the session mode; illegal moves are logged and refused."""
        new = TRANSITIONS.get((self.mode, event))
        if new is None:
            log.warning(
                "illegal channel transition",
                extra={"uuid": self.uuid, "mode": self.mode.value, "event": event},
            )
            return False
        log.debug(
            "%s -> %s -> %s",
            self.mode.value,
            event,
            new.value,
            extra={"uuid": self.uuid},
        )
        self.mode = new
        return True

    @property
    def is_up(self) -> bool:
        return self.mode is not Mode.HUNGUP

    def set_var(self, name: str, value: str | None) -> None:
        """Set (``None``: unset) a variable the simulator manages."""
        if value is None:
            self.variables.pop(name, None)
            self.managed.discard(name)
            return
        self.variables.pop(name, None)
        self.variables[name] = value
        self.managed.add(name)

    def var(self, name: str) -> str | None:
        return self.variables.get(name)
