"""Transfers and three-way calls: the citizen handed on, or a third party joined.

How the switch does it (``../shared/freeswitch`` sessions d, h, i):

* **Blind** (to a skill group, an agent, a number): the agent's leg is hung
  up; ``park_after_bridge`` re-parks the citizen, and that re-park puts the
  call back in a queue with its priority (a skill group), offers it to the
  one agent (if that agent no longer can, to its queue), or plays music while
  the number is called and then bridges to it. A number that fails sends the
  citizen back to its queue.
* **Attended** (consult): the citizen is held (``uuid_hold`` of the agent's
  leg: the switch plays it music) while the consulted party rings. When it
  answers, ``uuid_bridge <agent> <party>`` of the already-bridged agent leg
  re-parks the citizen, who hears music from us. Complete:
  ``uuid_bridge <citizen> <party>``; the agent's leg, which loses its
  partner, is re-parked (we set ``park_after_bridge`` on it for the consult)
  and hung up by us. Cancel: ``uuid_bridge <citizen> <agent>``; the party's
  leg is torn down by the switch and by us. A party that refuses, does not
  answer or hangs up sends the citizen back to the agent; an agent who leaves
  mid-consult sends the citizen back to its queue.
* **Three-way**: the third party's leg is originated and parked, then runs
  ``three_way <agent leg>`` (it hears both and is heard by both); leaving it
  hangs that leg up.
"""

from __future__ import annotations

import contextlib
import logging
import uuid as uuidlib
from typing import TYPE_CHECKING

from telephony.acd.agent_state import AgentEvent, AgentState
from telephony.calls import records
from telephony.calls.control_model import ControlInput, ControlState, Done, Party, Refused
from telephony.calls.model import Call, CallState
from telephony.esl import commands
from telephony.esl.messages import failure_cause
from telephony.esl.port import EslChannelGone, EslError

if TYPE_CHECKING:
    from telephony.calls.control import CallControl

log = logging.getLogger(__name__)

In, St = ControlInput, ControlState


class Consult:
    """Blind and attended transfers and three-way calls of one node's calls."""

    def __init__(self, control: CallControl) -> None:
        self.control = control
        self.core = control.core

    # -- checks ----------------------------------------------------------------------------

    def _check_party(self, call: Call, party: Party) -> None:
        core = self.core
        if party.kind == "agent":
            agent = core.roster.agents.get(party.id)
            if agent is None:
                raise Refused("invalid", f"no agent {party.id!r}")
            if agent.id == call.agent_id:
                raise Refused("wrong_state", f"agent {agent.id!r} is already on the call")
            if agent.state is not AgentState.AVAILABLE:
                raise Refused("unavailable", f"agent {agent.id!r} is {agent.state.value}")
        elif party.kind == "number":
            try:
                commands.dial_string(
                    core.settings.outbound_dial, party.id, gateway=core.settings.outbound_gateway
                )
            except commands.UnsafeValue as exc:
                raise Refused("invalid", f"{party.id!r} is not a number to dial: {exc}") from exc

    # -- blind -----------------------------------------------------------------------------

    async def blind(self, call: Call, party: Party) -> Done:
        core, control = self.core, self.control
        control.require(call, In.BLIND)
        self._check_party(call, party)
        agent_leg = call.agent_leg
        assert agent_leg is not None
        control.move(call, In.BLIND)
        session = control.session(call)
        session.party = party
        core.buffer.put(
            records.timeline(
                call,
                "transfer",
                core.clock(),
                mode="blind",
                to=party.kind,
                target=party.id,
                agent=call.agent_id,
            )
        )
        if call.held_since is not None:
            control.end_hold(call)
        await core.kill(agent_leg)  # the citizen's re-park (park_after_bridge) goes on
        return control.done(call, f"transferring to {party.kind} {party.id}")

    def _after_blind(self, call: Call) -> None:
        """The citizen was re-parked after a blind transfer: where it goes now."""
        core, control = self.core, self.control
        session = control.session(call)
        party = session.party
        if call.agent_leg:
            control.release(call, call.agent_leg)
        if party is None:
            control.requeue(call, "transfer")
            return
        if party.kind == "number":
            control.move(call, In.BLIND_OUT)
            control.music_on(call)
            leg = str(uuidlib.uuid4())
            session.party_leg = leg
            control.add_leg(call, leg, "outside", party.id)
            core.spawn(self._dial_out(call, leg), f"transfer out {call.uuid}")
            return
        if party.kind == "skill_group":
            call.skill_group = party.id
            session.party = None
            control.requeue(call, "transfer")
            return
        agent = core.roster.agents.get(party.id)
        session.party = None
        if agent is None or agent.state is not AgentState.AVAILABLE:
            control.requeue(call, "transfer_agent_unavailable")
            return
        control.set_waiting(call, "transfer")
        core.ensure_music(call)
        core.offer(call, agent)  # not answered: back to its queue (offer_failed)

    async def _dial_out(self, call: Call, leg: str) -> None:
        core, control = self.core, self.control
        session = control.session(call)
        assert session.party is not None
        result = await control.originate(call, leg, session.party)
        cause = failure_cause(result)
        if cause is not None:
            control.party_failed(leg, cause)
            if call.control is St.DIALING_OUT:
                core.buffer.put(
                    records.timeline(call, "transfer_failed", core.clock(), cause=cause)
                )
                await control.music_off(call)
                control.requeue(call, "transfer_failed")
            return
        control.party_answered(leg)
        if call.control is not St.DIALING_OUT or call.state is CallState.ENDED:
            await core.kill(leg)
            return
        await control.music_off(call)
        try:
            await core.port.api("uuid_bridge", *commands.bridge_args(call.uuid, leg))
        except EslError as exc:
            log.warning("transfer bridge failed", extra={"call": call.uuid, "error": str(exc)})
            await core.kill(leg)
            control.requeue(call, "transfer_failed")

    # -- attended --------------------------------------------------------------------------

    async def start(self, call: Call, party: Party) -> Done:
        core, control = self.core, self.control
        control.require(call, In.CONSULT)
        if party.kind == "skill_group":
            raise Refused("invalid", "an attended transfer goes to an agent or a number")
        self._check_party(call, party)
        agent_leg = call.agent_leg
        assert agent_leg is not None
        was_held = call.control is St.HELD
        control.move(call, In.CONSULT)
        session = control.session(call)
        leg = str(uuidlib.uuid4())
        session.party, session.party_leg, session.bridging = party, leg, False
        session.party_agent = party.id if party.kind == "agent" else None
        destination = party.id
        if party.kind == "agent":
            agent = core.roster.get(party.id)
            destination = agent.extension
            core.roster.apply(agent.id, AgentEvent.OFFER)
        control.add_leg(call, leg, "consult", destination, session.party_agent)
        if call.held_since is None:
            call.held_since = core.clock()
        core.buffer.put(
            records.timeline(
                call, "consult", core.clock(), to=party.kind, target=party.id, agent=call.agent_id
            )
        )
        try:
            # A party that hangs up must not take the agent's leg with it.
            await core.port.api(
                "uuid_setvar_multi",
                *commands.setvar_multi(agent_leg, {"park_after_bridge": "true"}),
            )
            session.parked_agent_leg = True
            if not was_held:
                await control.set_hold(call, agent_leg, on=True)
        except EslError as exc:
            log.warning("consult hold failed", extra={"call": call.uuid, "error": str(exc)})
        core.spawn(self._ring(call, leg), f"consult {call.uuid}")
        return control.done(call, f"calling {party.kind} {party.id}; the citizen is on hold")

    async def _ring(self, call: Call, leg: str) -> None:
        core, control = self.core, self.control
        session = control.session(call)
        assert session.party is not None
        result = await control.originate(call, leg, session.party)
        cause = failure_cause(result)
        if cause is not None:
            control.party_failed(leg, cause)
            if call.control is St.CONSULT_RINGING and session.party_leg == leg:
                core.buffer.put(records.timeline(call, "consult_failed", core.clock(), cause=cause))
                await self._back_to_agent_held(call)
            return
        control.party_answered(leg)
        if call.control is not St.CONSULT_RINGING or session.party_leg != leg:
            await core.kill(leg)  # cancelled, or the call ended, while it rang
            return
        agent_leg = call.agent_leg
        if agent_leg is None:
            await core.kill(leg)
            return
        session.bridging = True
        try:
            await control.set_hold(call, agent_leg, on=False)
            await core.port.api("uuid_bridge", *commands.bridge_args(agent_leg, leg))
        except EslError as exc:
            session.bridging = False
            log.warning("consult bridge failed", extra={"call": call.uuid, "error": str(exc)})
            await core.kill(leg)

    async def _back_to_agent_held(self, call: Call) -> None:
        """Consult over before it connected: the citizen, held, is retrieved by the agent."""
        control = self.control
        control.move(call, In.CONSULT_FAILED if call.control is St.CONSULT_RINGING else In.CANCEL)
        self._clear_party(call)
        seconds = control.end_hold(call)
        if call.agent_leg:
            with contextlib.suppress(EslError):
                await control.set_hold(call, call.agent_leg, on=False)
        self.core.buffer.put(
            records.timeline(call, "consult_ended", self.core.clock(), hold_seconds=seconds)
        )

    def _clear_party(self, call: Call) -> None:
        session = self.control.session(call)
        session.party = session.party_leg = session.party_agent = None
        session.bridging = False

    async def complete(self, call: Call) -> Done:
        core, control = self.core, self.control
        control.require(call, In.COMPLETE)
        session = control.session(call)
        leg = session.party_leg
        assert leg is not None
        control.move(call, In.COMPLETE)
        core.buffer.put(records.timeline(call, "transfer_completing", core.clock()))
        await control.music_off(call)
        try:
            await core.port.api("uuid_bridge", *commands.bridge_args(call.uuid, leg))
        except EslError as exc:
            log.warning("transfer completion failed", extra={"call": call.uuid, "error": str(exc)})
            control.move(call, In.CONSULT_FAILED)
            await self._return(call)
        return control.done(call, "the citizen is being joined to the consulted party")

    async def cancel(self, call: Call) -> Done:
        core, control = self.core, self.control
        control.require(call, In.CANCEL)
        session = control.session(call)
        leg = session.party_leg
        core.buffer.put(records.timeline(call, "consult_cancelled", core.clock()))
        if call.control is St.CONSULT_RINGING:
            await self._back_to_agent_held(call)
            if leg is not None:
                await core.kill(leg, "ORIGINATOR_CANCEL")
            return control.done(call, "consult cancelled; the citizen talks to the agent again")
        control.move(call, In.CANCEL)
        await self._return(call)
        return control.done(call, "consult cancelled; the citizen is being returned to the agent")

    async def _return(self, call: Call) -> None:
        """``returning``: bridge the citizen back to the agent (or queue it if it left)."""
        core, control = self.core, self.control
        session = control.session(call)
        party_leg = session.party_leg
        await control.music_off(call)
        if call.agent_leg is None:
            if party_leg:
                await core.kill(party_leg)
            control.requeue(call, "agent_left_consult")
            return
        try:
            await core.port.api("uuid_bridge", *commands.bridge_args(call.uuid, call.agent_leg))
        except EslError as exc:
            log.warning("return to agent failed", extra={"call": call.uuid, "error": str(exc)})
            control.requeue(call, "agent_left_consult")
        if party_leg:
            await core.kill(party_leg)

    # -- three-way -------------------------------------------------------------------------

    async def three_way(self, call: Call, party: Party) -> Done:
        core, control = self.core, self.control
        control.require(call, In.THREE_WAY)
        if party.kind == "skill_group":
            raise Refused("invalid", "a three-way call is with an agent or a number")
        self._check_party(call, party)
        control.move(call, In.THREE_WAY)
        session = control.session(call)
        leg = str(uuidlib.uuid4())
        session.party, session.party_leg = party, leg
        session.party_agent = party.id if party.kind == "agent" else None
        destination = party.id
        if party.kind == "agent":
            agent = core.roster.get(party.id)
            destination = agent.extension
            core.roster.apply(agent.id, AgentEvent.OFFER)
        control.add_leg(call, leg, "three_way", destination, session.party_agent)
        core.buffer.put(
            records.timeline(call, "three_way", core.clock(), to=party.kind, target=party.id)
        )
        core.spawn(self._join(call, leg), f"three-way {call.uuid}")
        return control.done(call, f"calling {party.kind} {party.id} to join")

    async def _join(self, call: Call, leg: str) -> None:
        core, control = self.core, self.control
        session = control.session(call)
        assert session.party is not None
        result = await control.originate(call, leg, session.party)
        cause = failure_cause(result)
        if cause is not None:
            control.party_failed(leg, cause)
            if call.control is St.THREE_WAY_RINGING and session.party_leg == leg:
                control.move(call, In.THREE_WAY_ENDED)
                self._clear_party(call)
                core.buffer.put(
                    records.timeline(call, "three_way_failed", core.clock(), cause=cause)
                )
            return
        control.party_answered(leg)
        agent_leg = call.agent_leg
        if call.control is not St.THREE_WAY_RINGING or session.party_leg != leg or not agent_leg:
            await core.kill(leg)
            return
        control.move(call, In.THREE_WAY_JOINED)
        core.buffer.put(records.timeline(call, "conference", core.clock()))
        # It returns when the third party leaves (its hangup moves the call back to talking).
        with contextlib.suppress(EslChannelGone, EslError):
            await core.port.execute(leg, "three_way", agent_leg, timeout=24 * 3600.0)

    async def leave_three_way(self, call: Call) -> Done:
        core, control = self.core, self.control
        state = control.current(call)
        if call.state is not CallState.CONNECTED or state not in (
            St.CONFERENCE,
            St.THREE_WAY_RINGING,
        ):
            raise Refused("wrong_state", f"the call is {state.value}, not in a three-way call")
        leg = control.session(call).party_leg
        control.move(call, In.THREE_WAY_ENDED)
        self._clear_party(call)
        core.buffer.put(records.timeline(call, "three_way_ended", core.clock(), by="request"))
        if leg is not None:
            await core.kill(leg)
        return control.done(call, "the third party is being hung up")

    # -- what the switch says --------------------------------------------------------------

    def on_citizen_parked(self, call: Call) -> bool:
        """The citizen's re-park while a transfer or consult runs."""
        control = self.control
        session = control.session(call)
        state = call.control
        if state is St.TRANSFERRING:
            self._after_blind(call)
            return True
        if state is St.CONSULT_RINGING and session.bridging:
            control.move(call, In.CONSULT_JOINED)
            session.bridging = False
            control.music_on(call)
            self.core.buffer.put(records.timeline(call, "consult_connected", self.core.clock()))
            return True
        if state in (St.CONSULTING, St.RETURNING, St.COMPLETING, St.DIALING_OUT):
            return True  # set aside already (a second park of the same move)
        # The agent left while the party rang: the consult is off, the citizen waits again.
        party_leg = session.party_leg
        if party_leg:
            self.core.spawn(self.core.kill(party_leg, "ORIGINATOR_CANCEL"), f"kill {party_leg}")
        self._clear_party(call)
        control.requeue(call, "agent_left_consult")
        return True

    def on_bridge(self, call: Call, other: str) -> bool:
        core, control = self.core, self.control
        session = control.session(call)
        state = call.control
        if state is St.RETURNING and other == call.agent_leg:
            control.move(call, In.RETURNED)
            seconds = control.end_hold(call)
            self._clear_party(call)
            core.buffer.put(
                records.timeline(call, "consult_ended", core.clock(), hold_seconds=seconds)
            )
            return True
        if state is St.COMPLETING and other and other == session.party_leg:
            party = session.party
            old = call.agent_leg
            from_agent = call.agent_id
            if old:
                control.release(call, old)
            control.end_hold(call)
            if party is not None and party.kind == "agent":
                control.move(call, In.COMPLETED)
                control.adopt_party_as_agent(call, other)
                self._clear_party(call)
                core.spawn(
                    core.mark(call, tel_agent=call.agent_id or "", tel_agent_leg=other),
                    f"mark {call.uuid}",
                )
            else:
                control.move(call, In.COMPLETED_OUTSIDE)
                party_leg = control.legs.get(other)
                if party_leg is not None:
                    party_leg.role = "outside"
            core.buffer.put(
                records.timeline(
                    call,
                    "transferred",
                    core.clock(),
                    mode="attended",
                    agent=from_agent,
                    to=party.kind if party else None,
                    target=party.id if party else None,
                )
            )
            core.buffer.put(records.cdr(call))
            return True
        if state is St.DIALING_OUT and other and other == session.party_leg:
            control.move(call, In.OUTSIDE_ANSWERED)
            core.buffer.put(
                records.timeline(
                    call,
                    "transferred",
                    core.clock(),
                    mode="blind",
                    to="number",
                    target=session.party.id if session.party else None,
                )
            )
            return True
        return state in (St.CONSULTING, St.CONSULT_RINGING, St.TRANSFERRING)

    def agent_gone(self, call: Call) -> None:
        """The agent's leg ended (after its usual bookkeeping) in the middle of a consult."""
        state = call.control
        if state in (St.CONSULTING, St.RETURNING):
            session = self.control.session(call)
            if session.party_leg:
                self.core.spawn(self.core.kill(session.party_leg), f"kill {session.party_leg}")
            self._clear_party(call)
            self.core.spawn(self._requeue_after_music(call), f"requeue {call.uuid}")

    async def _requeue_after_music(self, call: Call) -> None:
        await self.control.music_off(call)
        self.control.requeue(call, "agent_left_consult")

    def party_gone(self, call: Call, leg: str, cause: str | None) -> None:
        """A consult, three-way or outside leg ended."""
        core, control = self.core, self.control
        session = control.session(call)
        if session.party_leg != leg:
            return
        state = call.control
        if state in (St.CONSULTING, St.COMPLETING):
            core.buffer.put(records.timeline(call, "consult_failed", core.clock(), cause=cause))
            control.move(call, In.CONSULT_FAILED)
            core.spawn(self._return(call), f"return {call.uuid}")
        elif state is St.CONFERENCE:
            control.move(call, In.THREE_WAY_ENDED)
            self._clear_party(call)
            core.buffer.put(records.timeline(call, "three_way_ended", core.clock(), by="party"))
        elif state is St.OUTSIDE:
            pass  # the citizen's re-park ends the call
