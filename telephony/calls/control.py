"""Call control: the engine's part that carries out the API's commands on live calls.

The commands and the state machine are in :mod:`~telephony.calls.control_model`;
this part owns them, through three helpers that each own one concern:
:mod:`~telephony.calls.consult` (blind and attended transfer, three-way),
:mod:`~telephony.calls.monitor` (listen / whisper / barge) and
:mod:`~telephony.calls.dial` (the agent's outbound call, wrap-up). Here:
hold, retrieve, hang-up, the registry of the legs call control originates,
and the hooks the engine calls first for the events that may be ours:

* a citizen's re-park (``park_after_bridge``) is the agent leaving, unless a
  transfer or a consult expects it;
* a CHANNEL_BRIDGE may close a consult (back to the agent, or on to the
  consulted party) or join an outside party;
* the end of a leg we originated (consulted party, third party, supervisor,
  outside number), or of an agent's leg in the middle of a consult;
* the end of the call: every leg still up that call control made is hung up.

Every command is checked against the table before anything is sent to the
switch (a refusal sends nothing), moves the machine, and leaves a timeline
entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from telephony.acd.agent_state import AgentEvent, AgentState
from telephony.calls import records, values
from telephony.calls.consult import Consult
from telephony.calls.control_model import (
    API_STATE,
    CONTROL_MACHINE,
    CancelTransfer,
    ChangeMonitor,
    Command,
    CompleteTransfer,
    ControlInput,
    ControlState,
    Dial,
    Done,
    Hangup,
    Hold,
    LeaveThreeWay,
    Monitor,
    MonitorState,
    Party,
    Ready,
    Refused,
    Retrieve,
    StopMonitor,
    ThreeWay,
    Transfer,
)
from telephony.calls.core import EngineCore
from telephony.calls.dial import Dialing
from telephony.calls.leg import Leg, LegInput
from telephony.calls.model import Call, CallInput, CallState
from telephony.calls.monitor import Monitoring
from telephony.calls.values import clean_or_none
from telephony.esl import commands
from telephony.esl.messages import Event
from telephony.esl.port import EslChannelGone, EslDisconnected, EslError, SwitchPort
from telephony.fsm import IllegalTransition

log = logging.getLogger(__name__)

In, St = ControlInput, ControlState

#: How long music for a citizen set aside may play (the execute's timeout).
MUSIC_TIMEOUT = 24 * 3600.0


@dataclass
class MonitorSession:
    leg: str
    supervisor: str
    extension: str
    wanted: MonitorState
    state: MonitorState = MonitorState.RINGING


@dataclass
class Session:
    """What call control keeps about one call beside its state: the legs it made."""

    party: Party | None = None  # whom the consult / three-way / blind transfer goes to
    party_leg: str | None = None
    party_agent: str | None = None
    bridging: bool = False  # uuid_bridge agent<->party sent: the citizen's re-park is ours
    music: asyncio.Task[None] | None = None
    monitor: MonitorSession | None = None
    parked_agent_leg: bool = False  # park_after_bridge set on the agent's leg (consult)


@dataclass
class PartyLeg:
    """A leg call control originated: whose call it serves, its agent, what it is for."""

    call: str
    role: str  # consult, three_way, outside, supervisor, released
    agent: str | None = None
    answered: bool = False


class CallControl:
    """Call control for one node's calls; see the module docstring."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.sessions: dict[str, Session] = {}
        self.legs: dict[str, PartyLeg] = {}
        self.consult = Consult(self)
        self.monitoring = Monitoring(self)
        self.dialing = Dialing(self)

    # -- commands ------------------------------------------------------------------------

    async def handle(self, command: Command) -> Done:
        """Carry out one command; raises :class:`Refused` (nothing sent) when it cannot."""
        if isinstance(command, Dial):
            return await self.dialing.dial(command)
        if isinstance(command, Ready):
            return self.dialing.ready(command)
        call = self.core.calls.get(command.call)
        if call is None:
            raise Refused("unknown_call", f"no call {command.call} in progress")
        if isinstance(command, Hold):
            return await self.hold(call)
        if isinstance(command, Retrieve):
            return await self.retrieve(call)
        if isinstance(command, Hangup):
            return await self.hangup(call)
        if isinstance(command, Transfer):
            if command.attended:
                return await self.consult.start(call, command.to)
            return await self.consult.blind(call, command.to)
        if isinstance(command, CompleteTransfer):
            return await self.consult.complete(call)
        if isinstance(command, CancelTransfer):
            return await self.consult.cancel(call)
        if isinstance(command, ThreeWay):
            return await self.consult.three_way(call, command.to)
        if isinstance(command, LeaveThreeWay):
            return await self.consult.leave_three_way(call)
        if isinstance(command, Monitor):
            return await self.monitoring.start(call, command)
        if isinstance(command, ChangeMonitor):
            return await self.monitoring.change(call, command.mode)
        if isinstance(command, StopMonitor):
            return await self.monitoring.stop(call)
        raise Refused("invalid", f"unknown command {type(command).__name__}")

    async def hold(self, call: Call) -> Done:
        core = self.core
        self.require(call, In.HOLD)
        leg = call.agent_leg
        assert leg is not None
        self.move(call, In.HOLD)
        call.held_since = core.clock()
        try:
            await self.set_hold(call, leg, on=True)
        except (EslError, commands.UnsafeValue) as exc:
            self.move(call, In.RETRIEVE)
            call.held_since = None
            raise Refused("wrong_state", f"the switch did not hold the call: {exc}") from exc
        core.buffer.put(records.timeline(call, "held", call.held_since, agent=call.agent_id))
        return self.done(call, "the citizen hears music on hold")

    async def retrieve(self, call: Call) -> Done:
        core = self.core
        self.require(call, In.RETRIEVE)
        leg = call.agent_leg
        assert leg is not None
        self.move(call, In.RETRIEVE)
        seconds = self.end_hold(call)
        with contextlib.suppress(EslError):  # a leg gone meanwhile: its hangup says so
            await self.set_hold(call, leg, on=False)
        core.buffer.put(
            records.timeline(call, "retrieved", core.clock(), agent=call.agent_id, seconds=seconds)
        )
        return self.done(call, "the citizen and the agent talk again")

    async def set_hold(self, call: Call, agent_leg: str, *, on: bool) -> None:
        """Hold (or retrieve) the agent's leg: the switch plays the citizen the hold music."""
        if on:
            music = call.hold_music or self.core.settings.hold_music
            await self.core.port.api(
                "uuid_setvar", *commands.setvar(agent_leg, "hold_music", music)
            )
        await self.core.port.api("uuid_hold", *commands.hold_args(agent_leg, on))

    def end_hold(self, call: Call) -> float:
        """Count a running hold into the CDR's hold time; returns this hold's seconds."""
        if call.held_since is None:
            return 0.0
        seconds = max(0.0, self.core.clock() - call.held_since)
        call.hold_seconds += seconds
        call.held_since = None
        self.core.buffer.put(records.cdr(call))
        return round(seconds, 3)

    async def hangup(self, call: Call) -> Done:
        """挂机: the agent's side ends (the citizen hears the survey, as when the agent hangs
        up); a call with no agent on it (IVR, queue, survey) is ended."""
        core = self.core
        now = core.clock()
        if call.state is CallState.CONNECTED:
            state = self.current(call)
            if state not in (St.TALKING, St.HELD, St.CONFERENCE, St.OUTSIDE, St.DIALING):
                raise Refused(
                    "wrong_state",
                    f"the call is {state.value}: complete or cancel the transfer first",
                )
            leg = call.agent_leg if state is not St.OUTSIDE else self.session(call).party_leg
            core.buffer.put(records.timeline(call, "hangup_requested", now, agent=call.agent_id))
            if leg is not None:
                await core.kill(leg)
            return self.done(call, "the agent's leg is being hung up")
        if call.state is CallState.OFFERING and call.control is St.DIALING:
            core.buffer.put(records.timeline(call, "hangup_requested", now, agent=call.agent_id))
            self.dialing.abandon(call)
            return self.done(call, "the outbound call is being hung up")
        if call.state is CallState.ENDED:
            raise Refused("unknown_call", f"no call {call.uuid} in progress")
        core.buffer.put(records.timeline(call, "hangup_requested", now))
        await core.hang_up(call)
        return self.done(call, "the call is being hung up")

    # -- the machine ---------------------------------------------------------------------

    def current(self, call: Call) -> ControlState:
        """The call's control state; a call an agent just answered starts ``talking``."""
        if call.state is CallState.CONNECTED and call.control is St.NONE and call.agent_leg:
            self.move(call, In.CONNECT)
        return call.control

    def require(self, call: Call, event: ControlInput) -> None:
        """Refuse (409, nothing sent) a command the call's state does not allow."""
        state = self.current(call)
        if call.state is not CallState.CONNECTED and event is not In.DIAL:
            raise Refused("wrong_state", f"the call is {api_state(call)}, not talking to an agent")
        if not CONTROL_MACHINE.allows(state, event):
            raise Refused("wrong_state", f"{event.value} is not possible while {state.value}")

    def move(self, call: Call, event: ControlInput) -> bool:
        """Apply ``event``; False (logged by the machine) when the call is elsewhere."""
        try:
            rule = CONTROL_MACHINE.apply(call.uuid, call.control, event)
        except IllegalTransition:
            return False
        call.control = rule.target
        return True

    def session(self, call: Call) -> Session:
        return self.sessions.setdefault(call.uuid, Session())

    def done(self, call: Call, detail: str) -> Done:
        return Done(call.uuid, api_state(call), detail)

    # -- legs call control makes ---------------------------------------------------------

    def add_leg(
        self, call: Call, uuid: str, role: str, destination: str, agent: str | None = None
    ) -> None:
        """Register a leg we are about to originate (its end comes back to us)."""
        self.legs[uuid] = PartyLeg(call.uuid, role, agent)
        leg = Leg(uuid, role, destination[:64], self.core.clock())
        call.legs[uuid] = leg
        self.core.buffer.put(records.leg(call, leg))

    def release(self, call: Call, leg: str) -> None:
        """The agent's leg leaves the call (a transfer): the agent goes to wrap-up now and
        the leg is hung up by us (it may have been re-parked by park_after_bridge)."""
        core = self.core
        core.agent_legs.pop(leg, None)
        agent_id = call.agent_id
        self.legs[leg] = PartyLeg(call.uuid, "released", None, answered=True)
        call.agent_leg = None
        call.agent_ended_at = core.clock()
        if agent_id:
            core.end_agent_call(agent_id)
        core.spawn(core.kill(leg), f"release {leg}")

    def adopt_party_as_agent(self, call: Call, leg: str) -> None:
        """A consulted or transferred-to agent now has the citizen: its leg is the agent leg."""
        core = self.core
        party = self.legs.pop(leg, None)
        call.agent_id = party.agent if party is not None else call.agent_id
        call.agent_leg = leg
        call.agent_ended_at = None
        call.agent_left_first = False
        core.agent_legs[leg] = call.uuid

    async def originate(
        self,
        call: Call,
        leg: str,
        party: Party,
        *,
        app: str = "park",
        app_arg: str = "",
        caller_id: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> str:
        """Ring ``party`` (an agent's extension or an outside number) on a leg of ours;
        returns ``+OK``, or ``-ERR <cause>`` (also for a transport failure)."""
        core = self.core
        settings = core.settings
        try:
            if party.kind == "agent":
                agent = core.roster.get(party.id)
                endpoint = f"user/{agent.extension}"
            else:
                endpoint = commands.dial_string(
                    settings.outbound_dial, party.id, gateway=settings.outbound_gateway
                )
            variables = {
                "origination_uuid": leg,
                "origination_caller_id_number": caller_id or call.hotline,
                "origination_caller_id_name": caller_id or call.hotline,
                "hotline_call": call.uuid,
                "originate_timeout": str(settings.ring_timeout_s),
                **(extra or {}),
            }
            target, application = commands.originate_args(
                endpoint, variables=variables, app=app, app_arg=app_arg
            )
            job = await core.port.bgapi(
                "originate", target, application, timeout=settings.ring_timeout_s + 15
            )
        except (EslError, commands.UnsafeValue, KeyError) as exc:
            log.warning("originate failed", extra={"call": call.uuid, "error": str(exc)})
            await core.kill(leg)
            failed = isinstance(exc, EslError)
            return "-ERR " + ("DESTINATION_OUT_OF_ORDER" if failed else "INVALID_NUMBER_FORMAT")
        return (job.body or "").strip() or "-ERR UNKNOWN"

    def party_answered(self, leg: str) -> None:
        party = self.legs.get(leg)
        if party is None:
            return
        party.answered = True
        call = self.core.calls.get(party.call)
        if call is not None:
            self.core.leg(call, leg, LegInput.ANSWER)
        if party.agent:
            agent = self.core.roster.agents.get(party.agent)
            if agent is not None and agent.state is AgentState.RINGING:
                self.core.roster.apply(party.agent, AgentEvent.ANSWER)

    def party_failed(self, leg: str, cause: str) -> None:
        """An originate of ours got ``-ERR``: the agent it rang goes on (busy after a
        missed ring, available when we cancelled it)."""
        party = self.legs.pop(leg, None)
        if party is None:
            return
        call = self.core.calls.get(party.call)
        if call is not None:
            self.core.leg(
                call, leg, LegInput.HANGUP, hangup_cause=clean_or_none(cause, values.CAUSE)
            )
        if party.agent:
            agent = self.core.roster.agents.get(party.agent)
            if agent is not None and agent.state is AgentState.RINGING:
                missed = cause in ("NO_ANSWER", "CALL_REJECTED", "USER_BUSY", "NO_USER_RESPONSE")
                self.core.roster.apply(
                    party.agent, AgentEvent.NO_ANSWER if missed else AgentEvent.OFFER_CANCELLED
                )

    # -- music for a citizen set aside (consult, outside number ringing) ------------------

    def music_on(self, call: Call) -> None:
        session = self.session(call)
        if session.music is not None and not session.music.done():
            return
        session.music = asyncio.create_task(self._music(call), name=f"ctl moh {call.uuid}")

    async def _music(self, call: Call) -> None:
        music = call.hold_music or self.core.settings.hold_music
        while call.state is not CallState.ENDED:
            try:
                await self.core.port.execute(call.uuid, "playback", music, timeout=MUSIC_TIMEOUT)
            except (EslChannelGone, EslDisconnected, asyncio.CancelledError):
                return
            except EslError:
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(0.5)  # stopped by uuid_break: music_off cancels us meanwhile

    async def music_off(self, call: Call) -> None:
        session = self.sessions.get(call.uuid)
        task = session.music if session is not None else None
        if session is not None:
            session.music = None
        if task is not None:
            task.cancel()
        with contextlib.suppress(EslError):
            await self.core.port.api("uuid_break", *commands.break_args(call.uuid))

    # -- the engine's hooks --------------------------------------------------------------

    def on_park(self, event: Event) -> bool:
        """A citizen's re-park that call control expects; True when handled here."""
        call = self.core.calls.get(event.unique_id or "")
        if call is None or event.get("Channel-State") != "CS_PARK":
            return False
        if call.state is CallState.OFFERING and call.control is St.DIALING:
            return True  # the outside leg of an agent's call parks after its answer
        if call.state is not CallState.CONNECTED:
            return False
        state = call.control
        if state in (
            St.TRANSFERRING,
            St.CONSULT_RINGING,
            St.CONSULTING,
            St.RETURNING,
            St.COMPLETING,
            St.DIALING_OUT,
        ):
            return self.consult.on_citizen_parked(call)
        if state is St.OUTSIDE:
            self.core.buffer.put(records.timeline(call, "outside_hung_up", self.core.clock()))
            self.finish(call)
            self.core.spawn(self.core.hang_up(call), f"hang up {call.uuid}")
            return True
        # The agent left (hung up, or our hangup): the usual survey follows.
        if state is St.HELD:
            self.end_hold(call)
        self.hang_up_parties(call, keep_monitor=False)
        self.move(call, In.AGENT_GONE)
        return False

    def on_bridge(self, event: Event) -> bool:
        """A CHANNEL_BRIDGE on a citizen's leg that closes a consult or joins an outside
        party; True when handled here."""
        call = self.core.calls.get(event.unique_id or "")
        if call is None:
            return False
        other = event.get("Bridge-B-Unique-ID") or event.get("Other-Leg-Unique-ID") or ""
        if call.control is St.DIALING and call.state is CallState.OFFERING:
            return self.dialing.on_bridge(call, other)
        if call.state is not CallState.CONNECTED:
            return False
        return self.consult.on_bridge(call, other)

    def leg_gone(self, uuid: str, cause: str | None, disposition: str | None) -> bool:
        """A leg ended: ours (True), or an agent's leg that a consult depends on."""
        party = self.legs.pop(uuid, None)
        if party is None:
            call_uuid = self.core.agent_legs.get(uuid)
            call = self.core.calls.get(call_uuid or "")
            if call is not None and call.agent_leg == uuid:
                self.core.agent_leg_gone(uuid, cause, disposition)
                if call.control is St.DIALING:
                    self.dialing.abandon(call)  # the agent gave up before the number answered
                else:
                    self.consult.agent_gone(call)
                return True
            return False
        call = self.core.calls.get(party.call)
        if call is not None:
            self.core.leg(call, uuid, LegInput.HANGUP, hangup_cause=cause, disposition=disposition)
        if party.agent and party.answered:
            self.core.end_agent_call(party.agent)
        if call is None:
            return True
        if party.role == "supervisor":
            self.monitoring.leg_gone(call, uuid)
        elif party.role in ("consult", "three_way", "outside"):
            self.consult.party_gone(call, uuid, cause)
        return True

    def call_ended(self, call: Call) -> None:
        """The citizen's leg is gone: every leg call control made for the call is hung up."""
        session = self.sessions.pop(call.uuid, None)
        if call.held_since is not None:
            self.end_hold(call)
        if session is not None and session.music is not None:
            session.music.cancel()
        for uuid, party in list(self.legs.items()):
            if party.call == call.uuid:
                self.core.spawn(self.core.kill(uuid), f"kill {uuid}")
        if call.control is St.DIALING and call.agent_id:
            # An outbound call whose number failed: the agent who answered is done with it.
            self.core.end_agent_call(call.agent_id)
            if call.agent_leg:
                self.core.spawn(self.core.kill(call.agent_leg), f"kill {call.agent_leg}")
        elif session is not None and session.parked_agent_leg and call.agent_leg:
            # park_after_bridge on the agent's leg would keep it up without the citizen
            self.core.spawn(self.core.kill(call.agent_leg), f"kill {call.agent_leg}")
        if call.control is not St.NONE:
            self.move(call, In.END)

    def hang_up_parties(self, call: Call, *, keep_monitor: bool = True) -> None:
        """Hang up the consult / three-way / outside legs (and the monitor unless kept)."""
        session = self.sessions.get(call.uuid)
        for uuid, party in list(self.legs.items()):
            if party.call != call.uuid or (keep_monitor and party.role == "supervisor"):
                continue
            if party.role == "released":
                continue
            self.core.spawn(self.core.kill(uuid), f"kill {uuid}")
        if session is not None:
            session.party = session.party_leg = session.party_agent = None
            session.bridging = False

    def finish(self, call: Call) -> None:
        if call.held_since is not None:
            self.end_hold(call)
        self.move(call, In.AGENT_GONE)

    def requeue(self, call: Call, why: str) -> None:
        """The citizen, answered once, waits again in its skill group (never dropped)."""
        if self.set_waiting(call, why):
            self.core.requeue(call)
            self.core.route()

    def set_waiting(self, call: Call, why: str) -> bool:
        """The connected call goes back to ``queued`` (its agent released); False if it
        was not connected any more."""
        core = self.core
        if call.state is not CallState.CONNECTED:
            return False
        if call.held_since is not None:
            self.end_hold(call)
        if call.control is not St.NONE:
            self.move(
                call,
                In.REQUEUED if call.control in (St.TRANSFERRING, St.DIALING_OUT) else In.AGENT_GONE,
            )
        if call.agent_leg:
            self.release(call, call.agent_leg)
        call.agent_id = None
        core.carry(call, call.move(CallInput.TRANSFER))
        core.buffer.put(
            records.timeline(call, "requeued", core.clock(), group=call.skill_group, reason=why)
        )
        core.buffer.put(records.queue_entry(call))
        core.spawn(
            core.mark(call, tel_state="queued", tel_group=call.skill_group), f"mark {call.uuid}"
        )
        return True


class CommandTarget(Protocol):
    """An engine as :func:`run_command` sees it."""

    calls: dict[str, Call]

    @property
    def port(self) -> SwitchPort: ...
    def wrapping_up(self) -> set[str]: ...
    async def command(self, command: Command) -> Done: ...


async def run_command(engines: Sequence[CommandTarget], command: Command) -> Done:
    """Send ``command`` to the engine that has its call; an agent's to the engine running
    its wrap-up (``ready``) or to the first connected node (``dial``)."""
    if isinstance(command, Dial | Ready):
        chosen = None
        if isinstance(command, Ready):
            chosen = next((e for e in engines if command.agent in e.wrapping_up()), None)
        chosen = chosen or next((e for e in engines if e.port.connected), None)
        if chosen is None and isinstance(command, Ready) and engines:
            chosen = engines[0]
        if chosen is None:
            raise Refused("no_engine", "no FreeSWITCH node is connected")
        return await chosen.command(command)
    for engine in engines:
        if command.call in engine.calls:
            return await engine.command(command)
    raise Refused("unknown_call", f"no call {command.call} in progress")


def api_state(call: Call) -> str:
    """A live call's ``state`` for the API: ivr, queued, ringing, talking, held,
    consulting, conference, wrap_up."""
    if call.state is CallState.CONNECTED:
        return API_STATE[call.control]
    return _CALL_API_STATE[call.state]


_CALL_API_STATE = {
    CallState.PARKED: "ivr",
    CallState.IVR: "ivr",
    CallState.QUEUED: "queued",
    CallState.OFFERING: "ringing",
    CallState.CONNECTED: "talking",
    CallState.AFTER_AGENT: "wrap_up",
    CallState.ENDED: "ended",
}
