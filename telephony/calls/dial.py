"""An agent's outbound call (外线拨打) and the end of wrap-up (话后处理).

Dial: the agent's phone rings first (``user/<extension>``, showing the number
it will call); once it answers, the number is called from the hotline's
caller ID (``outbound_caller_id``, 12345) through the outbound dial string
(``sofia/gateway/{gateway}/{number}``), and the two legs are bridged. The call
is a :class:`~telephony.calls.model.Call` like any other, keyed by the
citizen's leg (our ``origination_uuid``), ``direction`` outbound: it has a CDR
(outcome ``answered`` once bridged, else ``failed``) and a timeline. The agent
goes ringing → in_call → wrap-up as for a hotline call; an agent's phone not
answered is not a missed hotline offer (the agent stays available).
"""

from __future__ import annotations

import contextlib
import logging
import uuid as uuidlib
from typing import TYPE_CHECKING

from telephony.acd.agent_state import AgentEvent, AgentState
from telephony.calls import records, values
from telephony.calls.control_model import ControlInput, Dial, Done, Party, Ready, Refused
from telephony.calls.leg import LegInput
from telephony.calls.model import Call, CallInput, CallState
from telephony.calls.values import clean
from telephony.esl import commands
from telephony.esl.messages import failure_cause
from telephony.esl.port import EslError

if TYPE_CHECKING:
    from telephony.calls.control import CallControl

log = logging.getLogger(__name__)


class Dialing:
    """Agents' outbound calls of one node, and ending wrap-up."""

    def __init__(self, control: CallControl) -> None:
        self.control = control
        self.core = control.core

    async def dial(self, command: Dial) -> Done:
        core, control = self.core, self.control
        settings = core.settings
        agent = core.roster.agents.get(command.agent)
        if agent is None:
            raise Refused("invalid", f"no agent {command.agent!r}")
        try:
            commands.dial_string(
                settings.outbound_dial, command.number, gateway=settings.outbound_gateway
            )
        except commands.UnsafeValue as exc:
            raise Refused("invalid", f"{command.number!r} is not a number to dial") from exc
        if agent.state is not AgentState.AVAILABLE:
            raise Refused("unavailable", f"agent {agent.id!r} is {agent.state.value}")
        if not core.port.connected:
            raise Refused("no_engine", "the switch is not connected")
        now = core.clock()
        call = Call(
            uuid=command.call_uuid or str(uuidlib.uuid4()),
            node=clean(core.port.node, values.NODE),
            hotline=clean(command.caller_id or settings.outbound_caller_id, values.HOTLINE),
            caller=clean(command.number, values.CALLER),
            arrived_at=now,
            skill_group=settings.default_group,
            direction="outbound",
            controlled=True,
        )
        core.adopt(call)
        call.move(CallInput.DIAL)
        control.move(call, ControlInput.DIAL)
        agent_leg = str(uuidlib.uuid4())
        call.agent_id = agent.id
        control.add_leg(call, agent_leg, "agent", agent.extension, agent.id)
        core.roster.apply(agent.id, AgentEvent.OFFER)
        core.buffer.put(
            records.timeline(call, "dialing", now, agent=agent.id, number=command.number)
        )
        core.spawn(self._run(call, agent.id, agent_leg), f"dial {call.uuid}")
        return Done(call.uuid, "ringing", f"ringing agent {agent.id}, then {command.number}")

    async def _run(self, call: Call, agent_id: str, agent_leg: str) -> None:
        core, control = self.core, self.control
        result = await control.originate(
            call, agent_leg, Party("agent", agent_id), caller_id=call.caller
        )
        cause = failure_cause(result)
        if cause is not None:
            control.party_failed(agent_leg, "ORIGINATOR_CANCEL")  # not a missed offer
            self._failed(call, cause, "agent_phone")
            return
        control.party_answered(agent_leg)
        if call.state is not CallState.OFFERING:
            await core.kill(agent_leg)
            return
        # The agent's leg is now the call's agent leg: its end is the agent's end.
        control.adopt_party_as_agent(call, agent_leg)
        core.buffer.put(records.timeline(call, "agent_answered", core.clock(), agent=agent_id))
        result = await control.originate(
            call, call.uuid, Party("number", call.caller), caller_id=call.hotline
        )
        cause = failure_cause(result)
        if cause is not None:
            self._failed(call, cause, "number")
            await core.kill(agent_leg)
            return
        control.legs.pop(call.uuid, None)  # the citizen's leg is the call itself
        if call.state is not CallState.OFFERING or call.agent_leg != agent_leg:
            await core.kill(call.uuid)
            return
        core.leg(call, call.uuid, LegInput.ANSWER)
        try:
            await core.port.api("uuid_bridge", *commands.bridge_args(call.uuid, agent_leg))
        except EslError as exc:
            log.warning("outbound bridge failed", extra={"call": call.uuid, "error": str(exc)})
            await core.kill(call.uuid)

    def _failed(self, call: Call, cause: str, where: str) -> None:
        core = self.core
        core.buffer.put(records.timeline(call, "dial_failed", core.clock(), cause=cause, at=where))
        if call.state is CallState.ENDED:
            return  # the citizen's leg ended first (a refusal comes before the job result)
        # The citizen's leg may never have existed: end the call here (its hangup, if it
        # comes, finds no call).
        if call.uuid in core.calls:
            core.caller_gone(call, cause[:64], None)

    def on_bridge(self, call: Call, other: str) -> bool:
        core, control = self.core, self.control
        if other and other != call.agent_leg:
            return True
        call.agent_answered_at = core.clock()
        core.leg(call, call.uuid, LegInput.BRIDGE)
        if call.agent_leg:
            core.leg(call, call.agent_leg, LegInput.BRIDGE)
        core.carry(call, call.move(CallInput.BRIDGE))
        control.move(call, ControlInput.CONNECT)
        core.buffer.put(
            records.timeline(call, "connected", call.agent_answered_at, agent=call.agent_id)
        )
        core.buffer.put(records.cdr(call))
        if call.recording_id is None:  # 外线拨打 and callbacks are recorded like any call
            core.spawn(core.record(call), f"record {call.uuid}")
        return True

    def abandon(self, call: Call) -> None:
        """Hang up an outbound call that is still ringing (either phone)."""
        core = self.core
        for uuid in [u for u, p in self.control.legs.items() if p.call == call.uuid]:
            core.spawn(core.kill(uuid, "ORIGINATOR_CANCEL"), f"kill {uuid}")
        if call.agent_leg:
            core.spawn(core.kill(call.agent_leg), f"kill {call.agent_leg}")
        core.spawn(core.kill(call.uuid, "ORIGINATOR_CANCEL"), f"kill {call.uuid}")

    # -- wrap-up ---------------------------------------------------------------------------

    def ready(self, command: Ready) -> Done:
        core = self.core
        agent = core.roster.agents.get(command.agent)
        if agent is None:
            raise Refused("invalid", f"no agent {command.agent!r}")
        if agent.state is not AgentState.WRAP_UP:
            raise Refused(
                "wrong_state", f"agent {agent.id!r} is {agent.state.value}, not in wrap-up"
            )
        with contextlib.suppress(Exception):
            core.wrap_up(agent.id, command.extend_s)
        detail = (
            f"wrap-up extended by {command.extend_s:g} s" if command.extend_s else "wrap-up ended"
        )
        return Done(agent.id, agent.state.value, detail)
