"""Intake: a hotline call from the dialplan's park to its IVR's outcome.

The dialplan parks every hotline call with ``park_timeout`` (the fallback for a
call that no controller takes). FreeSWITCH reads that timer once, when the
park starts, and checks it on every loop of the park in which no nested
application runs (``switch_ivr_park`` in ``src/switch_ivr.c``): after a ``*``
(the default ``playback_terminators``), after music that ends, between
``uuid_break`` and ``uuid_bridge``, between two IVR prompts. So the first
thing the engine does with a new call is ``uuid_park``: the dialplan's park
ends and the core parks the channel again in ``CS_PARK``
(``switch_ivr_park_session`` → ``switch_core_standard_on_park``), where
``park_timeout``, already consumed, arms no timer. From that second
CHANNEL_PARK on the call is ours: a call the controller has taken is never
released by the park timer, and a call nobody takes still gets the fallback.

Then: answer, the hotline's flow (or the greeting), and the flow's outcome:
queue, transfer out, voice message, refusal, or the end of the call.
"""

from __future__ import annotations

import logging

from telephony.calls import records, values
from telephony.calls.core import EngineCore
from telephony.calls.flows import FlowOutcome
from telephony.calls.leg import LegInput
from telephony.calls.model import Call, CallInput, CallState, Outcome
from telephony.calls.values import clean, is_uuid
from telephony.esl import commands
from telephony.esl.messages import Event
from telephony.esl.port import EslChannelGone, EslError

log = logging.getLogger(__name__)


class Intake:
    """New calls: take them out of the park timer's reach, answer, run the IVR."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core

    def on_park(self, event: Event) -> None:
        core = self.core
        uid = event.unique_id
        if not uid or uid in core.agent_legs:
            return  # our agent leg parking after it answered
        if not is_uuid(uid):
            log.warning("park of a channel whose Unique-ID is no uuid", extra={"uuid": uid[:64]})
            return
        call = core.calls.get(uid)
        if call is not None:
            if call.state is CallState.CONNECTED:
                core.bridge_ended(call)  # park_after_bridge kept the caller: the agent left
            elif call.state is CallState.PARKED and not call.controlled and _core_park(event):
                call.controlled = True  # our uuid_park took it out of the dialplan's park
                core.spawn(core.intake(call), f"intake {uid}")
            return
        hotline = event.variable("hotline")
        if (
            not hotline
            or event.variable("hotline_call")
            or event.get("Call-Direction") != "inbound"
        ):
            return
        call = Call(
            uuid=uid,
            node=clean(core.port.node, values.NODE),
            hotline=clean(hotline, values.HOTLINE),
            caller=clean(event.get("Caller-Caller-ID-Number") or "", values.CALLER),
            arrived_at=core.clock(),
            skill_group=core.settings.default_group,
            hold_music=event.variable("hold_music"),
        )
        core.adopt(call)
        if core.overload is not None and not _core_park(event) and not core.overload.admit():
            # Over capacity: refused before answer (a 503 for the citizen), with its CDR.
            call.ivr_outcome = Outcome.REFUSED
            core.metrics.calls_refused.labels(core.port.node).inc()
            core.spawn(core.hang_up(call, core.overload.settings.refuse_cause), f"refuse {uid}")
            return
        if _core_park(event):  # already out of the dialplan's park (adopted mid-way)
            call.controlled = True
            core.spawn(core.intake(call), f"intake {uid}")
        else:
            core.spawn(core.take(call), f"take {uid}")

    async def take(self, call: Call) -> None:
        """``uuid_park``: out of the dialplan's park and its timer; the re-park continues."""
        try:
            await self.core.port.api("uuid_park", commands.check_uuid(call.uuid))
        except EslError as exc:
            # The caller left (the hangup ends the call), or the node is gone: the
            # reconnect's re-adoption finds the call still in the dialplan's park.
            log.warning("could not take the call", extra={"call": call.uuid, "error": str(exc)})

    async def intake(self, call: Call) -> None:
        """Answer, then run the hotline's IVR flow (or play the greeting) and act on it."""
        core = self.core
        try:
            await core.port.execute(call.uuid, "answer")
            if not core.move(call, CallInput.ANSWER):
                return
            call.ivr_answered_at = core.clock()
            core.leg(call, call.uuid, LegInput.ANSWER)
            core.buffer.put(records.timeline(call, "answered", call.ivr_answered_at))
            # park_after_bridge keeps the caller when the agent hangs up first (the survey);
            # playback_terminators=none keeps a `*` from stopping music and prompts.
            await core.mark(
                call,
                park_after_bridge="true",
                playback_terminators="none",
                tel_state="ivr",
                tel_arrived_at=call.arrived_at,
                tel_ivr_answered_at=call.ivr_answered_at,
            )
        except EslChannelGone:
            return  # the caller hung up; the hangup handler has ended the call
        except EslError as exc:
            log.warning("call intake failed", extra={"call": call.uuid, "error": str(exc)})
            return
        await self.run_flow(call)

    async def run_flow(self, call: Call) -> None:
        """The hotline's flow on an answered call, then its outcome."""
        core = self.core
        try:
            outcome = None
            if core.flows is not None:
                outcome = await core.flows.run(
                    core.port, call.uuid, hotline=call.hotline, caller=call.caller
                )
            if outcome is not None and outcome.voicemail_failed:
                core.voicemail_failed(call, outcome.voicemail_failed)  # ended or not
            if call.state is not CallState.IVR:
                return  # the caller hung up during the flow
            if outcome is None:
                await core.port.execute(call.uuid, "playback", core.settings.greeting)
                core.enqueue(call)
            elif outcome.reason == "channel_error" and not core.port.connected:
                # The connection dropped mid-flow: where the citizen was is lost with it.
                # The flow starts again once the node is back (adoption), not `general`.
                call.ivr_restarts += 1
                core.buffer.put(records.timeline(call, "ivr_interrupted", core.clock()))
            else:
                await self._after_flow(call, outcome)
        except EslChannelGone:
            pass
        except EslError as exc:
            log.warning("call intake failed", extra={"call": call.uuid, "error": str(exc)})

    async def _after_flow(self, call: Call, outcome: FlowOutcome) -> None:
        """Carry out how the IVR flow ended: queue, transfer, or end the call."""
        core = self.core
        call.ivr_keys = clean(outcome.keys, values.KEYS)
        core.buffer.put(
            records.timeline(
                call,
                "ivr_done",
                core.clock(),
                flow=outcome.flow,
                version=outcome.version,
                action=outcome.action,
                keys=call.ivr_keys,
                group=outcome.group,
            )
        )
        if outcome.action == "hangup" and outcome.reason == "caller_hung_up":
            return  # the citizen left during the flow: the hangup handler ends the call
        if outcome.action == "queue":
            call.skill_group = outcome.group or core.settings.default_group
            call.priority = outcome.priority
            core.enqueue(call)
            return
        if outcome.action == "transfer" and outcome.number:
            call.ivr_outcome = Outcome.TRANSFERRED
            # Once transferred out the call is not ours: when the outside party hangs up
            # the citizen must be hung up, not re-parked in silence (park_after_bridge).
            await core.mark(call, park_after_bridge="false", hangup_after_bridge="true")
            await core.port.api(
                "uuid_transfer", call.uuid, *commands.transfer_args(outcome.number, "outbound")
            )
            return
        call.ivr_outcome = {
            "blocked": Outcome.BLOCKED,
            "voicemail": Outcome.VOICEMAIL,
        }.get(outcome.action, Outcome.SELF_SERVICE)
        if outcome.voicemail_failed:
            call.ivr_outcome = Outcome.LOST  # not served: the message could not be taken
        await core.hang_up(
            call, "CALL_REJECTED" if outcome.action == "blocked" else "NORMAL_CLEARING"
        )


def _core_park(event: Event) -> bool:
    """A park by the core in ``CS_PARK`` (uuid_park, park_after_bridge), not the ``park`` app."""
    return event.get("Channel-State") == "CS_PARK"
