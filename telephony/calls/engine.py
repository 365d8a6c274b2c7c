"""The call engine: takes each parked hotline call from FreeSWITCH to an agent and to its CDR.

Theory of operation
-------------------
One engine per FreeSWITCH node, all on the control plane's one asyncio loop:
it is the only writer of calls, queues and (through the roster) agents.

* A CHANNEL_PARK of an inbound channel that carries ``hotline`` (set by our
  dialplan) and is not one of our agent legs is a new call. The engine
  answers it, plays the greeting, queues it in its skill group and plays
  music on hold.
* Routing pairs queued calls with the longest-idle available agent of the
  group. An offer originates ``user/<extension>`` with our own
  ``origination_uuid`` (so a ringing leg can be cancelled), the hotline as
  caller ID and ``hotline_call=<caller uuid>``, then parks it. On the job's
  ``+OK`` the engine stops the music, ``uuid_bridge``\\ s caller and agent and
  starts recording; on ``-ERR`` the agent goes busy ("no answer") and the
  call goes back to the head of its queue, that agent excluded.
* ``park_after_bridge=true`` is set on the caller once it is parked, so an
  agent who hangs up first leaves the caller parked (for the survey of
  issue 4); today the engine then ends the call.
* The caller leg's CHANNEL_HANGUP_COMPLETE ends the call and writes the CDR;
  ``variable_sip_hangup_disposition`` says who hung up.
* Facts a restarted controller needs are also kept on the caller channel as
  ``tel_*`` variables; on every (re)connect the engine lists the node's
  channels and re-adopts what it owns (:mod:`telephony.calls.adoption`).

All times are this process's clock (seconds since the epoch), so a CDR's
times are consistent with each other whatever the switch's clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuidlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telephony.acd.agent_state import Agent, AgentEvent, AgentState
from telephony.acd.queue import SkillGroupQueue, longest_idle_agent
from telephony.acd.roster import Roster
from telephony.calls import records
from telephony.calls.adoption import adopt_node
from telephony.calls.flows import CallFlows, FlowOutcome
from telephony.calls.leg import Leg, LegInput
from telephony.calls.model import Call, CallEffect, CallInput, CallState, Outcome
from telephony.esl import commands
from telephony.esl.messages import Event
from telephony.esl.port import (
    EslChannelGone,
    EslError,
    NodeConnected,
    NodeDisconnected,
    SwitchEvent,
    SwitchPort,
)
from telephony.fsm import IllegalTransition
from telephony.metrics import Metrics
from telephony.store.buffer import WriteBuffer

log = logging.getLogger(__name__)

#: How long music on hold may play (the execute's timeout): longer than any queue wait.
MUSIC_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What the engine needs to know besides the switch, the roster and the database."""

    recordings_dir: Path
    greeting: str = "tone_stream://%(500,0,440)"
    hold_music: str = "local_stream://moh"
    ring_timeout_s: int = 15
    wrap_up_s: float = 10.0
    default_group: str = "general"


class CallEngine:
    """Drives one FreeSWITCH node's hotline calls; see the module docstring."""

    def __init__(
        self,
        port: SwitchPort,
        roster: Roster,
        buffer: WriteBuffer,
        settings: EngineSettings,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        flows: CallFlows | None = None,
    ) -> None:
        self.port = port
        self.flows = flows
        self.metrics = metrics or Metrics()
        self.roster = roster
        self.buffer = buffer
        self.settings = settings
        self.clock = clock
        self.calls: dict[str, Call] = {}
        self.agent_legs: dict[str, str] = {}  # agent leg uuid -> caller uuid
        self.queues: dict[str, SkillGroupQueue] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wrap_up_timers: dict[str, asyncio.TimerHandle] = {}
        roster.on_available = self._agent_available

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume the node's events until the stream ends (the connection was closed)."""
        async for event in self.port.events():
            self.dispatch(event)

    async def close(self) -> None:
        """Cancel the engine's own tasks and timers (calls stay up in FreeSWITCH)."""
        for timer in self._wrap_up_timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def dispatch(self, event: SwitchEvent) -> None:
        """Handle one event or connection notice; never raises."""
        try:
            if isinstance(event, NodeConnected):
                self.metrics.esl_connected.labels(event.node).set(1)
                if event.reconnect:
                    self.metrics.esl_reconnects.labels(event.node).inc()
                self._spawn(adopt_node(self), "adopt")
            elif isinstance(event, NodeDisconnected):
                self.metrics.esl_connected.labels(event.node).set(0)
                log.warning("node lost; calls stay in FreeSWITCH", extra={"node": event.node})
            else:
                self.metrics.esl_events.labels(self.port.node, event.name).inc()
                if self.flows is not None:
                    self.flows.feed(event)
                handler = _HANDLERS.get(event.name)
                if handler is not None:
                    handler(self, event)
        except Exception:
            log.exception("event handling failed", extra={"event": getattr(event, "name", "?")})

    def _spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "engine task failed",
                extra={"task": task.get_name(), "error": repr(task.exception())},
            )

    # -- event handlers -------------------------------------------------------------------

    def _on_park(self, event: Event) -> None:
        uid = event.unique_id
        if not uid or uid in self.agent_legs:
            return  # our agent leg parking after it answered
        call = self.calls.get(uid)
        if call is not None:
            if call.state is CallState.CONNECTED:
                self._bridge_ended(call)  # park_after_bridge kept the caller: the agent left
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
            node=self.port.node,
            hotline=hotline,
            caller=event.get("Caller-Caller-ID-Number") or "",
            arrived_at=self.clock(),
            skill_group=self.settings.default_group,
        )
        self.adopt(call)
        self._spawn(self._intake(call, event.variable("hold_music")), f"intake {uid}")

    def _on_hangup_complete(self, event: Event) -> None:
        uid = event.unique_id or ""
        if uid in self.calls:
            self._caller_gone(self.calls[uid], event)
        elif uid in self.agent_legs:
            self._agent_leg_gone(uid, event)

    def _on_record_stop(self, event: Event) -> None:
        call = self.calls.get(event.unique_id or "")
        if call is None or call.recording_id is None:
            return
        seconds = event.variable("record_seconds")
        path = Path(call.recording_path or "")
        self.buffer.put(
            records.recording(
                call,
                started_at=call.agent_answered_at or self.clock(),
                ended_at=self.clock(),
                seconds=float(seconds) if seconds and seconds.isdigit() else None,
                size_bytes=path.stat().st_size if path.is_file() else None,
            )
        )

    # -- the call's path ------------------------------------------------------------------

    def adopt(self, call: Call) -> None:
        """Register a call (new, or re-adopted after a restart) and write its CDR row."""
        self.calls[call.uuid] = call
        self.metrics.calls_in_progress.set(len(self.calls))
        self.buffer.put(records.cdr(call))
        caller = call.legs.setdefault(
            call.uuid, Leg(call.uuid, "caller", call.hotline, call.arrived_at)
        )
        self.buffer.put(records.leg(call, caller))
        if call.state is CallState.PARKED:
            self.buffer.put(records.timeline(call, "arrived", call.arrived_at, caller=call.caller))
        log.info(
            "call adopted",
            extra={"call": call.uuid, "hotline": call.hotline, "state": call.state.value},
        )

    async def _intake(self, call: Call, hold_music: str | None) -> None:
        """Answer, run the hotline's IVR flow (or play the greeting), then act on its outcome."""
        try:
            await self.port.execute(call.uuid, "answer")
            if not self._move(call, CallInput.ANSWER):
                return
            call.ivr_answered_at = self.clock()
            self._leg(call, call.uuid, LegInput.ANSWER)
            self.buffer.put(records.timeline(call, "answered", call.ivr_answered_at))
            await self.port.api(
                "uuid_setvar", *commands.setvar(call.uuid, "park_after_bridge", "true")
            )
            await self._mark(
                call, tel_arrived_at=call.arrived_at, tel_ivr_answered_at=call.ivr_answered_at
            )
            outcome = None
            if self.flows is not None:
                outcome = await self.flows.run(
                    self.port, call.uuid, hotline=call.hotline, caller=call.caller
                )
            if outcome is None:
                await self.port.execute(call.uuid, "playback", self.settings.greeting)
                self.enqueue(call, hold_music)
            else:
                await self._after_flow(call, outcome, hold_music)
        except EslChannelGone:
            pass  # the caller hung up; the hangup handler has ended the call
        except EslError as exc:
            log.warning("call intake failed", extra={"call": call.uuid, "error": str(exc)})

    async def _after_flow(self, call: Call, outcome: FlowOutcome, hold_music: str | None) -> None:
        """Carry out how the IVR flow ended: queue, transfer, or end the call."""
        if call.state is not CallState.IVR:
            return  # the caller hung up during the flow
        call.ivr_keys = outcome.keys
        self.buffer.put(
            records.timeline(
                call,
                "ivr_done",
                self.clock(),
                flow=outcome.flow,
                version=outcome.version,
                action=outcome.action,
                keys=outcome.keys,
                group=outcome.group,
            )
        )
        if outcome.action == "queue":
            call.skill_group = outcome.group or self.settings.default_group
            call.priority = outcome.priority
            self.enqueue(call, hold_music)
            return
        if outcome.action == "transfer" and outcome.number:
            call.ivr_outcome = Outcome.TRANSFERRED
            await self.port.api(
                "uuid_transfer", call.uuid, *commands.transfer_args(outcome.number, "outbound")
            )
            return
        call.ivr_outcome = {
            "blocked": Outcome.BLOCKED,
            "voicemail": Outcome.VOICEMAIL,
        }.get(outcome.action, Outcome.SELF_SERVICE)
        await self.port.hangup(
            call.uuid, "CALL_REJECTED" if outcome.action == "blocked" else "NORMAL_CLEARING"
        )

    def enqueue(self, call: Call, hold_music: str | None = None) -> None:
        """Put a call in its skill group's queue, start music on hold, and route."""
        if call.state is not CallState.IVR:
            return
        call.queued_at = self.clock()
        self.buffer.put(records.timeline(call, "queued", call.queued_at, group=call.skill_group))
        self.buffer.put(records.queue_entry(call))
        self._queue(call.skill_group).add(call.uuid, call.priority, call.queued_at)
        self._spawn(self._music(call, hold_music or self.settings.hold_music), f"moh {call.uuid}")
        self._spawn(
            self._mark(
                call, tel_state="queued", tel_queued_at=call.queued_at, tel_group=call.skill_group
            ),
            f"mark {call.uuid}",
        )
        self._carry(call, call.move(CallInput.ENQUEUE))

    async def _music(self, call: Call, music: str) -> None:
        with contextlib.suppress(EslError):
            await self.port.execute(call.uuid, "playback", music, timeout=MUSIC_TIMEOUT)

    def route(self) -> None:
        """Offer waiting calls to available agents, queue by queue, until no pair is left."""
        for group, queue in self.queues.items():
            while True:
                head = queue.head()
                if head is None:
                    break
                call = self.calls.get(head.call_uuid)
                if call is None or call.state is not CallState.QUEUED:
                    queue.remove(head.call_uuid)
                    continue
                agent = longest_idle_agent(
                    self.roster.agents.values(), group, frozenset(call.tried_agents)
                )
                if agent is None:
                    break
                queue.remove(call.uuid)
                self._offer(call, agent)
        self._queue_changed()

    def _agent_available(self, agent: Agent) -> None:
        self.route()

    def _offer(self, call: Call, agent: Agent) -> None:
        call.move(CallInput.OFFER)
        call.offered_agent = agent.id
        call.offer_leg = str(uuidlib.uuid4())
        call.tried_agents.add(agent.id)
        self.agent_legs[call.offer_leg] = call.uuid
        ringing = Leg(call.offer_leg, "agent", agent.extension, self.clock())
        call.legs[ringing.uuid] = ringing
        self.buffer.put(records.leg(call, ringing))
        self.roster.apply(agent.id, AgentEvent.OFFER)
        self.buffer.put(
            records.timeline(call, "offered", self.clock(), agent=agent.id, leg=call.offer_leg)
        )
        self._spawn(self._ring(call, agent, call.offer_leg), f"offer {call.uuid}")

    async def _ring(self, call: Call, agent: Agent, leg: str) -> None:
        target, app = commands.originate_args(
            f"user/{agent.extension}",
            variables={
                "origination_uuid": leg,
                "origination_caller_id_number": call.hotline,
                "origination_caller_id_name": call.hotline,
                "hotline_call": call.uuid,
                "tel_agent": agent.id,
                "originate_timeout": str(self.settings.ring_timeout_s),
            },
        )
        try:
            job = await self.port.bgapi(
                "originate", target, app, timeout=self.settings.ring_timeout_s + 15
            )
            result = (job.body or "").strip()
        except EslError as exc:
            result = f"-ERR {exc}"
        if not result.startswith("+OK"):
            self._offer_failed(call, agent, leg, result.removeprefix("-ERR").strip())
            return
        self._leg(call, leg, LegInput.ANSWER)
        if call.state is not CallState.OFFERING or call.offer_leg != leg:
            # The caller left while the phone rang; the agent answered into nothing.
            self._offer_failed(call, agent, leg, "ORIGINATOR_CANCEL", agent_missed=False)
            return
        await self._connect(call, agent, leg)

    def _offer_failed(
        self, call: Call, agent: Agent, leg: str, cause: str, *, agent_missed: bool = True
    ) -> None:
        """The offer ended without a bridge: the agent goes busy ("no answer") if the phone
        was not answered (``agent_missed``), else back to available; the call, if still
        waiting, goes back to its queue with that agent excluded."""
        self.agent_legs.pop(leg, None)
        self._leg(call, leg, LegInput.HANGUP, hangup_cause=cause)
        self._spawn(self._kill(leg), f"kill {leg}")  # a leg still ringing must not linger
        cancelled = call.state is not CallState.OFFERING or call.offer_leg != leg
        missed = agent_missed and not cancelled
        self.roster.apply(agent.id, AgentEvent.NO_ANSWER if missed else AgentEvent.OFFER_CANCELLED)
        log.info(
            "offer failed",
            extra={"call": call.uuid, "agent": agent.id, "cause": cause, "cancelled": cancelled},
        )
        if cancelled:
            return
        call.offer_leg = call.offered_agent = None
        self.buffer.put(
            records.timeline(call, "offer_failed", self.clock(), agent=agent.id, cause=cause)
        )
        self._queue(call.skill_group).add(call.uuid, call.priority, call.queued_at or self.clock())
        self._carry(call, call.move(CallInput.OFFER_FAILED))

    async def _connect(self, call: Call, agent: Agent, leg: str) -> None:
        try:
            await self.port.api("uuid_break", call.uuid, "all")  # stop music on hold
            await self.port.api("uuid_bridge", call.uuid, leg)
        except EslError as exc:
            log.warning("bridge failed", extra={"call": call.uuid, "error": str(exc)})
            self._offer_failed(call, agent, leg, "BRIDGE_FAILED", agent_missed=False)
            return
        if call.state is not CallState.OFFERING:
            # The caller left while being bridged: FreeSWITCH ends the agent's leg too.
            self._offer_failed(call, agent, leg, "ORIGINATOR_CANCEL", agent_missed=False)
            return
        call.agent_id, call.agent_leg, call.offer_leg = agent.id, leg, None
        call.agent_answered_at = self.clock()
        self._leg(call, call.uuid, LegInput.BRIDGE)
        self._leg(call, leg, LegInput.BRIDGE)
        self._carry(call, call.move(CallInput.BRIDGE))
        self.roster.apply(agent.id, AgentEvent.ANSWER)
        self.buffer.put(
            records.queue_entry(call, left_at=call.agent_answered_at, result="answered")
        )
        self.buffer.put(records.timeline(call, "connected", call.agent_answered_at, agent=agent.id))
        await self._record(call)
        await self._mark(
            call,
            tel_state="connected",
            tel_agent=agent.id,
            tel_agent_leg=leg,
            tel_agent_answered_at=call.agent_answered_at,
            tel_recording=call.recording_id or "",
        )
        self.buffer.put(records.cdr(call))

    async def _record(self, call: Call) -> None:
        """Record the whole conversation to ``<recordings>/<call uuid>.wav``."""
        call.recording_id = str(uuidlib.uuid4())
        call.recording_path = str(self.settings.recordings_dir / f"{call.uuid}.wav")
        try:
            await self.port.api("uuid_record", call.uuid, "start", call.recording_path)
        except EslError as exc:
            log.error("recording did not start", extra={"call": call.uuid, "error": str(exc)})
            call.recording_id = call.recording_path = None
            return
        self.buffer.put(records.recording(call, started_at=self.clock()))

    def _agent_leg_gone(self, leg: str, event: Event) -> None:
        """The agent's leg ended: the agent's call is over, whoever hung up."""
        call_uuid = self.agent_legs.pop(leg, None)
        call = self.calls.get(call_uuid or "")
        now = self.clock()
        if call is None or call.agent_leg != leg:
            return  # a ringing leg that failed: its job result handles it
        call.agent_ended_at = now
        disposition = event.variable("sip_hangup_disposition")
        # recv_bye: the agent's phone hung up. send_bye: FreeSWITCH ended the leg because
        # the caller left (its hangup completes after ours) or because we killed it.
        call.agent_left_first = disposition in ("recv_bye", "recv_cancel")
        self._leg(
            call, leg, LegInput.HANGUP, hangup_cause=event.hangup_cause, disposition=disposition
        )
        if call.agent_id:
            self._end_agent_call(call.agent_id)

    def _bridge_ended(self, call: Call) -> None:
        """The caller was re-parked after the bridge: the agent is gone, the caller is not."""
        now = self.clock()
        call.agent_ended_at = call.agent_ended_at or now
        self._leg(call, call.uuid, LegInput.UNBRIDGE)
        self.buffer.put(records.timeline(call, "agent_hung_up", now, agent=call.agent_id))
        self._carry(call, call.move(CallInput.AGENT_HANGUP))
        self._spawn(self._survey_then_hang_up(call), f"survey {call.uuid}")

    async def _survey_then_hang_up(self, call: Call) -> None:
        """The agent hung up first: the caller hears the flow's survey (按键满意率)."""
        if self.flows is not None and call.agent_left_first:
            try:
                score = await self.flows.survey(self.port, call.uuid, caller=call.caller)
            except EslError:
                score = None  # the caller left during the survey
            if score is not None:
                call.survey_score = score
                self.buffer.put(records.timeline(call, "survey", self.clock(), score=score))
                self.buffer.put(records.cdr(call))
        await self._hang_up(call)

    async def _hang_up(self, call: Call) -> None:
        with contextlib.suppress(EslError):
            await self.port.hangup(call.uuid)

    def _caller_gone(self, call: Call, event: Event) -> None:
        call.ended_at = self.clock()
        call.hangup_cause = event.hangup_cause
        call.hangup_disposition = event.variable("sip_hangup_disposition")
        effects = call.move(CallInput.HANGUP)
        self._leg(
            call,
            call.uuid,
            LegInput.HANGUP,
            hangup_cause=call.hangup_cause,
            disposition=call.hangup_disposition,
        )
        self._carry(call, effects)
        del self.calls[call.uuid]
        self.metrics.calls_in_progress.set(len(self.calls))
        self.metrics.call_outcomes.labels(call.outcome.value).inc()
        if self.flows is not None:
            self.flows.forget(call.uuid)

    def _carry(self, call: Call, effects: tuple[CallEffect, ...]) -> None:
        """Carry out the effects the call state machine asked for."""
        for effect in effects:
            if effect is CallEffect.ROUTE:
                self.route()
            elif effect is CallEffect.DEQUEUE:
                self._queue(call.skill_group).remove(call.uuid)
                self._queue_changed()
                if call.state is CallState.ENDED:
                    self.buffer.put(
                        records.queue_entry(call, left_at=call.ended_at, result="abandoned")
                    )
            elif effect is CallEffect.CANCEL_OFFER and call.offer_leg:
                self._spawn(
                    self._kill(call.offer_leg, "ORIGINATOR_CANCEL"), f"cancel {call.offer_leg}"
                )
            elif effect is CallEffect.END_AGENT_CALL and call.agent_id:
                self._end_agent_call(call.agent_id)
            elif effect is CallEffect.WRITE_CDR:
                self.buffer.put(
                    records.timeline(
                        call,
                        "ended",
                        call.ended_at or self.clock(),
                        outcome=call.outcome.value,
                        hung_up_by=call.hung_up_by,
                        cause=call.hangup_cause,
                    )
                )
                self.buffer.put(records.cdr(call))
                log.info(
                    "call ended",
                    extra={
                        "call": call.uuid,
                        "outcome": call.outcome.value,
                        "hung_up_by": call.hung_up_by,
                        "wait_s": call.wait_seconds,
                        "talk_s": call.talk_seconds,
                    },
                )

    async def _kill(self, leg: str, cause: str = "NORMAL_CLEARING") -> None:
        """Hang up a leg that may already be gone (``-ERR`` then is expected)."""
        with contextlib.suppress(EslError):
            await self.port.api("uuid_kill", leg, cause)

    def _end_agent_call(self, agent_id: str) -> None:
        agent = self.roster.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.IN_CALL:
            return
        self.roster.apply(agent_id, AgentEvent.CALL_ENDED)
        loop = asyncio.get_running_loop()
        self._wrap_up_timers[agent_id] = loop.call_later(
            self.settings.wrap_up_s, self._wrap_up_done, agent_id
        )

    def release_stale_agents(self) -> None:
        """After re-adoption: agents left ringing, talking or wrapping up with no live call
        (the offer, the call or the wrap-up timer died with the previous process) go on."""
        engaged = {c.agent_id for c in self.calls.values()} | {
            c.offered_agent for c in self.calls.values() if c.state is CallState.OFFERING
        }
        for agent in list(self.roster.agents.values()):
            if agent.id in engaged:
                continue
            if agent.state is AgentState.RINGING:
                self.roster.apply(agent.id, AgentEvent.OFFER_CANCELLED)
            elif agent.state is AgentState.IN_CALL:
                self._end_agent_call(agent.id)
            elif agent.state is AgentState.WRAP_UP and agent.id not in self._wrap_up_timers:
                self.roster.apply(agent.id, AgentEvent.WRAP_UP_DONE)

    def _wrap_up_done(self, agent_id: str) -> None:
        self._wrap_up_timers.pop(agent_id, None)
        agent = self.roster.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.WRAP_UP:
            self.roster.apply(agent_id, AgentEvent.WRAP_UP_DONE)

    # -- helpers --------------------------------------------------------------------------

    def _move(self, call: Call, event: CallInput) -> bool:
        """Apply ``event`` if the call is still where the step expects; False if it moved on."""
        try:
            self._carry(call, call.move(event))
        except IllegalTransition:
            return False
        return True

    def _leg(self, call: Call, uuid: str, event: LegInput, **facts: str | None) -> None:
        """Move one of the call's legs and store it; an illegal move is logged and skipped."""
        leg = call.legs.get(uuid)
        if leg is None:
            return
        try:
            leg.move(event, self.clock())
        except IllegalTransition:
            return
        for name, value in facts.items():
            setattr(leg, name, value)
        self.buffer.put(records.leg(call, leg))

    def _queue(self, group: str) -> SkillGroupQueue:
        if group not in self.queues:
            self.queues[group] = SkillGroupQueue(group)
        return self.queues[group]

    def _queue_changed(self) -> None:
        for group, queue in self.queues.items():
            self.metrics.queue_length.labels(group).set(len(queue))

    async def _mark(self, call: Call, **facts: str | float) -> None:
        """Keep facts on the caller channel (``tel_*``) for re-adoption after a restart."""
        values = {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in facts.items()}
        try:
            await self.port.api("uuid_setvar_multi", *commands.setvar_multi(call.uuid, values))
        except EslError as exc:
            log.debug("could not mark call", extra={"call": call.uuid, "error": str(exc)})


_HANDLERS: dict[str, Callable[[CallEngine, Event], None]] = {
    "CHANNEL_PARK": CallEngine._on_park,
    "CHANNEL_HANGUP_COMPLETE": CallEngine._on_hangup_complete,
    "RECORD_STOP": CallEngine._on_record_stop,
}
