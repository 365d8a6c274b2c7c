"""Agent legs: ringing an agent, bridging the citizen to them, recording, and the end of it.

* An offer originates ``user/<extension>`` with our own ``origination_uuid``
  (so a ringing leg can be cancelled), the hotline as caller ID and
  ``hotline_call=<caller uuid>``, then parks it.
* The job's ``-ERR`` is the phone's answer (no answer, rejected, unreachable):
  the agent goes busy ("no answer"). A transport failure (the connection
  dropped, no job result in time) says nothing about the phone: the agent
  stays available, and the leg, if one was made, is hung up.
* On ``+OK`` the music stops (``uuid_break``) and ``uuid_bridge`` joins the
  legs. Its ``+OK`` is not yet a bridge: the call is connected at the
  caller's CHANNEL_BRIDGE. If the agent leg ends first, or the bridge event
  does not come in time, the offer failed and the call goes back to its queue
  with its music.
* When the agent hangs up first, park_after_bridge re-parks the caller: that
  re-park alone says the agent left (the order of the agent leg's
  HANGUP_COMPLETE and the caller's re-park varies), and the flow's survey
  plays.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from pathlib import Path

from telephony.acd.agent_state import Agent, AgentEvent, AgentState
from telephony.calls import records, values
from telephony.calls.audio import file_size, has_audio
from telephony.calls.core import EngineCore
from telephony.calls.leg import Leg, LegInput
from telephony.calls.model import Call, CallInput, CallState, Outcome
from telephony.calls.values import clean_or_none
from telephony.esl import commands
from telephony.esl.messages import Event, failure_cause
from telephony.esl.port import EslError

log = logging.getLogger(__name__)


class AgentLegs:
    """The agent's side of each call of one node, and agents' wrap-up timers."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.wrap_up_timers: dict[str, asyncio.TimerHandle] = {}
        self._bridge_timers: dict[str, asyncio.TimerHandle] = {}
        self._ringing: dict[str, str] = {}  # agent id -> the leg of the offer it is ringing for

    # -- offering ----------------------------------------------------------------------------

    def offer(self, call: Call, agent: Agent) -> None:
        core = self.core
        call.move(CallInput.OFFER)
        call.offered_agent = agent.id
        call.offer_leg = str(uuidlib.uuid4())
        core.agent_legs[call.offer_leg] = call.uuid
        ringing = Leg(call.offer_leg, "agent", agent.extension, core.clock())
        call.legs[ringing.uuid] = ringing
        core.buffer.put(records.leg(call, ringing))
        core.roster.apply(agent.id, AgentEvent.OFFER)
        self._ringing[agent.id] = call.offer_leg
        core.buffer.put(
            records.timeline(call, "offered", core.clock(), agent=agent.id, leg=call.offer_leg)
        )
        core.spawn(self._ring(call, agent, call.offer_leg), f"offer {call.uuid}")

    async def _ring(self, call: Call, agent: Agent, leg: str) -> None:
        core = self.core
        target, app = commands.originate_args(
            f"user/{agent.extension}",
            variables={
                "origination_uuid": leg,
                "origination_caller_id_number": call.hotline,
                "origination_caller_id_name": call.hotline,
                "hotline_call": call.uuid,
                "tel_agent": agent.id,
                "originate_timeout": str(core.settings.ring_timeout_s),
            },
        )
        try:
            job = await core.port.bgapi(
                "originate", target, app, timeout=core.settings.ring_timeout_s + 15
            )
        except EslError as exc:
            # No answer from the switch is not an unanswered phone.
            self.offer_failed(call, agent.id, leg, f"TRANSPORT: {exc}", agent_missed=False)
            return
        result = (job.body or "").strip()
        cause = failure_cause(result)
        if cause is not None:
            self.offer_failed(call, agent.id, leg, cause)
            return
        core.leg(call, leg, LegInput.ANSWER)
        if call.state is not CallState.OFFERING or call.offer_leg != leg:
            # The caller left while the phone rang; the agent answered into nothing.
            self.offer_failed(call, agent.id, leg, "ORIGINATOR_CANCEL", agent_missed=False)
            return
        await self._bridge(call, agent.id, leg)

    def offer_failed(
        self, call: Call, agent_id: str, leg: str, cause: str, *, agent_missed: bool = True
    ) -> None:
        """The offer ended without a bridge: the agent goes busy ("no answer") if the phone
        was not answered (``agent_missed``), else back to available; the call, if still
        waiting, goes back to its queue (that agent not offered it again for a while)."""
        core = self.core
        core.agent_legs.pop(leg, None)
        self._cancel_bridge_timer(call.uuid)
        cause = clean_or_none(cause, values.CAUSE) or "UNKNOWN"
        core.leg(call, leg, LegInput.HANGUP, hangup_cause=cause)
        core.spawn(core.kill(leg), f"kill {leg}")  # a leg still ringing must not linger
        cancelled = call.state is not CallState.OFFERING or call.offer_leg != leg
        missed = agent_missed and not cancelled
        if self._ringing.get(agent_id) == leg:  # the agent's phone rang for this offer
            del self._ringing[agent_id]
            agent = core.roster.agents.get(agent_id)
            if agent is not None and agent.state is AgentState.RINGING:
                core.roster.apply(
                    agent_id, AgentEvent.NO_ANSWER if missed else AgentEvent.OFFER_CANCELLED
                )
        log.debug(
            "offer failed",
            extra={"call": call.uuid, "agent": agent_id, "cause": cause, "cancelled": cancelled},
        )
        if cancelled:
            return
        call.offer_leg = call.offered_agent = None
        call.bridging = False
        call.tried_at[agent_id] = core.clock()
        core.buffer.put(
            records.timeline(call, "offer_failed", core.clock(), agent=agent_id, cause=cause)
        )
        core.requeue(call)
        core.carry(call, call.move(CallInput.OFFER_FAILED))

    # -- bridging ----------------------------------------------------------------------------

    async def _bridge(self, call: Call, agent_id: str, leg: str) -> None:
        core = self.core
        call.bridging = True  # the music loop must not start the music again
        try:
            await core.port.api("uuid_break", call.uuid, "all")  # stop music on hold
            await core.port.api("uuid_bridge", call.uuid, leg)
        except EslError as exc:
            log.warning("bridge failed", extra={"call": call.uuid, "error": str(exc)})
            self.offer_failed(call, agent_id, leg, "BRIDGE_FAILED", agent_missed=False)
            return
        if call.state is not CallState.OFFERING or call.offer_leg != leg:
            return  # the caller or the agent left meanwhile; their hangup handled it
        loop = asyncio.get_running_loop()
        self._bridge_timers[call.uuid] = loop.call_later(
            core.settings.bridge_timeout_s, self._bridge_timed_out, call.uuid, agent_id, leg
        )

    def _bridge_timed_out(self, call_uuid: str, agent_id: str, leg: str) -> None:
        self._bridge_timers.pop(call_uuid, None)
        call = self.core.calls.get(call_uuid)
        if call is not None and call.state is CallState.OFFERING and call.offer_leg == leg:
            self.offer_failed(call, agent_id, leg, "BRIDGE_TIMEOUT", agent_missed=False)

    def _cancel_bridge_timer(self, call_uuid: str) -> None:
        timer = self._bridge_timers.pop(call_uuid, None)
        if timer is not None:
            timer.cancel()

    def on_bridge(self, event: Event) -> None:
        """CHANNEL_BRIDGE on the caller: now the citizen and the agent talk."""
        core = self.core
        call = core.calls.get(event.unique_id or "")
        if call is None or call.state is not CallState.OFFERING or not call.bridging:
            return
        leg = call.offer_leg
        other = event.get("Bridge-B-Unique-ID") or event.get("Other-Leg-Unique-ID")
        if leg is None or call.offered_agent is None or (other and other != leg):
            return
        self._cancel_bridge_timer(call.uuid)
        agent_id = call.offered_agent
        self._ringing.pop(agent_id, None)
        call.agent_id, call.agent_leg, call.offer_leg = agent_id, leg, None
        call.bridging = False
        now = core.clock()
        # A transferred call keeps its first answer (the CDR's wait); the talk runs on.
        call.agent_answered_at = call.agent_answered_at or now
        call.agent_ended_at = None
        call.agent_left_first = False
        core.leg(call, call.uuid, LegInput.BRIDGE)
        core.leg(call, leg, LegInput.BRIDGE)
        core.carry(call, call.move(CallInput.BRIDGE))
        if agent_id in core.roster.agents:
            core.roster.apply(agent_id, AgentEvent.ANSWER)
        core.buffer.put(records.queue_entry(call, left_at=now, result="answered"))
        core.buffer.put(records.timeline(call, "connected", now, agent=agent_id))
        core.spawn(self._record_and_mark(call, agent_id, leg), f"record {call.uuid}")

    async def _record_and_mark(self, call: Call, agent_id: str, leg: str) -> None:
        core = self.core
        if call.recording_id is None:  # a transferred call is recorded already
            await self.record(call)
        await core.mark(
            call,
            tel_state="connected",
            tel_agent=agent_id,
            tel_agent_leg=leg,
            tel_agent_answered_at=call.agent_answered_at or core.clock(),
            tel_recording=call.recording_id or "",
        )
        core.buffer.put(records.cdr(call))

    # -- recording ---------------------------------------------------------------------------

    async def record(self, call: Call) -> None:
        """Record the whole conversation to ``<recordings>/<call uuid>.wav``.

        The recording is claimed (its row, the CDR's ``recording_id``) only at
        RECORD_STOP, when the file exists with audio; a recording that did not
        start or has no audio is counted, logged and written to the CDR as
        ``recording_failed`` with the switch's reason.
        """
        core = self.core
        call.recording_id = str(uuidlib.uuid4())
        call.recording_path = str(core.settings.recordings_dir / f"{call.uuid}.wav")
        call.recording_started_at = core.clock()
        try:
            await core.port.api("uuid_record", call.uuid, "start", call.recording_path)
        except EslError as exc:
            reason = getattr(exc, "reply", None) or str(exc)
            call.recording_id = call.recording_path = None
            self._recording_failed(call, "start_failed", reason)

    def _recording_failed(self, call: Call, kind: str, reason: str) -> None:
        core = self.core
        call.recording_failed = clean_or_none(reason, values.REASON) or kind
        core.metrics.recordings_failed.labels(core.port.node, kind).inc()
        log.error("call not recorded", extra={"call": call.uuid, "why": kind, "reason": reason})
        core.buffer.put(records.timeline(call, "recording_failed", core.clock(), reason=reason))
        core.buffer.put(records.cdr(call))

    def on_record_start(self, event: Event) -> None:
        """A recording started on a caller's leg in the IVR: the citizen's voice message."""
        call = self.core.calls.get(event.unique_id or "")
        if call is not None and call.state is CallState.IVR:
            call.voicemail_path = clean_or_none(event.get("Record-File-Path"), values.PATH)
            call.ivr_outcome = Outcome.VOICEMAIL

    def on_record_stop(self, event: Event) -> None:
        call = self.core.calls.get(event.unique_id or "")
        if call is None:
            return
        path = event.get("Record-File-Path") or ""
        ms = event.variable("record_ms")
        seconds = _number(ms) / 1000 if ms else _number(event.variable("record_seconds"))
        if call.voicemail_path and path == call.voicemail_path:
            self.core.spawn(self._check_voicemail(call, path, seconds), f"message {call.uuid}")
        elif call.recording_id is not None and path == call.recording_path:
            self.core.spawn(
                self._claim_recording(call, path, seconds, self.core.clock()),
                f"recorded {call.uuid}",
            )

    async def _claim_recording(
        self, call: Call, path: str, seconds: float, ended_at: float
    ) -> None:
        # The recordings folder may be on NFS: stat() off the loop.
        size = await asyncio.to_thread(file_size, Path(path))
        if not has_audio(size) or seconds <= 0:
            call.recording_id = None
            self._recording_failed(call, "no_audio", "no audio")
            return
        call.recording_claimed = True
        self.core.buffer.put(
            records.recording(
                call,
                started_at=call.recording_started_at or ended_at,
                ended_at=ended_at,
                seconds=seconds,
                size_bytes=size,
            )
        )
        self.core.buffer.put(records.cdr(call))

    async def _check_voicemail(self, call: Call, path: str, seconds: float) -> None:
        size = await asyncio.to_thread(file_size, Path(path))
        if not has_audio(size) or seconds <= 0:
            self.voicemail_failed(call, "no audio")
        else:
            self.core.buffer.put(records.cdr(call))

    def voicemail_failed(self, call: Call, reason: str) -> None:
        """The citizen's voice message was not recorded (the flow goes on at its fallback)."""
        core = self.core
        call.voicemail_failed = clean_or_none(reason, values.REASON) or "failed"
        if call.ivr_outcome is Outcome.VOICEMAIL:
            call.ivr_outcome = None
        core.metrics.recordings_failed.labels(core.port.node, "voicemail_failed").inc()
        log.error("voice message not recorded", extra={"call": call.uuid, "reason": reason})
        core.buffer.put(records.timeline(call, "voicemail_failed", core.clock(), reason=reason))
        core.buffer.put(records.cdr(call))

    # -- the end of the agent's part ---------------------------------------------------------

    def agent_leg_gone(self, leg: str, cause: str | None, disposition: str | None) -> None:
        """The agent's leg ended: the agent's call is over, whoever hung up."""
        core = self.core
        call = core.calls.get(core.agent_legs.get(leg, ""))
        if call is None:
            core.agent_legs.pop(leg, None)
            return
        if call.offer_leg == leg and call.bridging and call.offered_agent:
            # Answered, told to bridge, and gone before the bridge: not a conversation.
            self.offer_failed(
                call, call.offered_agent, leg, cause or "AGENT_GONE", agent_missed=False
            )
            return
        if call.agent_leg != leg:
            return  # a ringing leg that failed: its job result handles it
        core.agent_legs.pop(leg, None)
        call.agent_ended_at = call.agent_ended_at or core.clock()
        # recv_bye: the agent's phone hung up. send_bye: FreeSWITCH ended the leg because
        # the caller left (its hangup completes after ours) or because we killed it.
        if disposition in ("recv_bye", "recv_cancel"):
            call.agent_left_first = True
        core.leg(call, leg, LegInput.HANGUP, hangup_cause=cause, disposition=disposition)
        if call.agent_id:
            self.end_agent_call(call.agent_id)

    def bridge_ended(self, call: Call) -> None:
        """The caller was re-parked after the bridge: the agent is gone, the caller is not."""
        core = self.core
        now = core.clock()
        call.agent_ended_at = call.agent_ended_at or now
        call.agent_left_first = True  # the caller is still here, so the agent left first
        core.leg(call, call.uuid, LegInput.UNBRIDGE)
        core.buffer.put(records.timeline(call, "agent_hung_up", now, agent=call.agent_id))
        core.carry(call, call.move(CallInput.AGENT_HANGUP))
        core.spawn(self._survey_then_hang_up(call), f"survey {call.uuid}")

    async def _survey_then_hang_up(self, call: Call) -> None:
        """The agent hung up first: the caller hears the flow's survey (按键满意率)."""
        core = self.core
        await core.mark(call, tel_state="after_agent")
        if core.flows is not None:
            try:
                score = await core.flows.survey(
                    core.port, call.uuid, caller=call.caller, hotline=call.hotline
                )
            except EslError:
                score = None  # the caller left during the survey
            if score is not None:
                call.survey_score = score
                core.buffer.put(records.timeline(call, "survey", core.clock(), score=score))
                core.buffer.put(records.cdr(call))
        await core.hang_up(call)

    def end_agent_call(self, agent_id: str) -> None:
        core = self.core
        agent = core.roster.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.IN_CALL:
            return
        core.roster.apply(agent_id, AgentEvent.CALL_ENDED)
        loop = asyncio.get_running_loop()
        self.wrap_up_timers[agent_id] = loop.call_later(
            core.settings.wrap_up_s, self._wrap_up_done, agent_id
        )

    def wrap_up(self, agent_id: str, extend_s: float | None = None) -> bool:
        """End the agent's wrap-up now (``POST /v1/agents/{id}/ready``), or restart its
        timer ``extend_s`` from now; False when no wrap-up timer runs here."""
        timer = self.wrap_up_timers.pop(agent_id, None)
        if timer is None:
            agent = self.core.roster.agents.get(agent_id)
            if extend_s is None and agent is not None and agent.state is AgentState.WRAP_UP:
                self._wrap_up_done(agent_id)  # its timer died with a previous process
            return False
        timer.cancel()
        if extend_s:
            loop = asyncio.get_running_loop()
            self.wrap_up_timers[agent_id] = loop.call_later(extend_s, self._wrap_up_done, agent_id)
        else:
            self._wrap_up_done(agent_id)
        return True

    def _wrap_up_done(self, agent_id: str) -> None:
        self.wrap_up_timers.pop(agent_id, None)
        agent = self.core.roster.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.WRAP_UP:
            self.core.roster.apply(agent_id, AgentEvent.WRAP_UP_DONE)

    def close(self) -> None:
        for timer in [*self.wrap_up_timers.values(), *self._bridge_timers.values()]:
            timer.cancel()


def _number(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0
