"""The call engine: takes each parked hotline call from FreeSWITCH to an agent and to its CDR.

Theory of operation
-------------------
One engine per FreeSWITCH node, all on the control plane's one asyncio loop:
it is the only writer of calls, queues and (through the roster) agents.

The engine is a dispatcher. It owns the registry of live calls and agent
legs and the bookkeeping every step shares (moving the call and leg state
machines, storing rows, ``tel_*`` marks, hang-ups); each concern is a part
(see :mod:`telephony.calls.core`):

* :mod:`~telephony.calls.intake`: a new call is taken out of the dialplan's
  park (``uuid_park``, so FreeSWITCH's park timer never releases it),
  answered, and its hotline's IVR flow decides where it goes;
* :mod:`~telephony.calls.routing`: skill-group queues, music on hold, and
  pairing the first waiting call with the longest-idle available agent;
* :mod:`~telephony.calls.agent_legs`: ringing the agent, the bridge (at the
  caller's CHANNEL_BRIDGE, not at ``uuid_bridge``'s reply), recording, the
  survey when the agent hangs up first, wrap-up;
* :mod:`~telephony.calls.adoption`: after every (re)connect, ghosts ended,
  unknown calls re-adopted from the ``tel_*`` variables kept on the caller
  channel, interrupted IVRs and music resumed.

The caller leg's CHANNEL_HANGUP_COMPLETE ends the call and writes the CDR;
``variable_sip_hangup_disposition`` says who hung up.

All times are this process's clock (seconds since the epoch), so a CDR's
times are consistent with each other whatever the switch's clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from telephony.acd.agent_state import Agent
from telephony.acd.roster import Roster
from telephony.calls import records, values
from telephony.calls.adoption import on_connect
from telephony.calls.agent_legs import AgentLegs
from telephony.calls.control import CallControl
from telephony.calls.control_model import Command, Done
from telephony.calls.core import EngineCore, EngineSettings
from telephony.calls.flows import CallFlows
from telephony.calls.intake import Intake
from telephony.calls.leg import Leg, LegInput
from telephony.calls.model import Call, CallEffect, CallInput, CallState
from telephony.calls.overload import OverloadGuard
from telephony.calls.routing import Router
from telephony.calls.values import clean_or_none
from telephony.esl import commands
from telephony.esl.messages import Event
from telephony.esl.port import EslError, NodeConnected, NodeDisconnected, SwitchEvent, SwitchPort
from telephony.fsm import IllegalTransition
from telephony.metrics import Metrics
from telephony.store.buffer import WriteBuffer

__all__ = ["CallEngine", "EngineSettings"]

log = logging.getLogger(__name__)


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
        peers: list[CallEngine] | None = None,
        on_connect: Sequence[Callable[[], Awaitable[None]]] = (),
        overload: OverloadGuard | None = None,
    ) -> None:
        self.port = port
        self.flows = flows
        self.metrics = metrics or Metrics()
        self.roster = roster
        self.buffer = buffer
        self.settings = settings
        self.clock = clock
        self.calls: dict[str, Call] = {}
        self.agent_legs: dict[str, str] = {}
        self.adopted_once = False
        self.connect_hooks = on_connect
        self.overload = overload
        self._peers = peers if peers is not None else []
        self._peers.append(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._adoption: asyncio.Task[Any] | None = None
        self._event_counters: dict[str, Any] = {}
        self.intake_part = Intake(self)
        self.router = Router(self)
        self.legs = AgentLegs(self)
        self.control = CallControl(self)
        roster.on_available = lambda agent: self.route()
        self._handlers: dict[str, Callable[[Event], None]] = {
            "CHANNEL_PARK": self._on_park,
            "CHANNEL_BRIDGE": self._on_bridge,
            "CHANNEL_HANGUP_COMPLETE": self._on_hangup_complete,
            "RECORD_START": self.legs.on_record_start,
            "RECORD_STOP": self.legs.on_record_stop,
        }

    @property
    def queues(self) -> dict[str, Any]:
        """The node's skill-group queues (for the API and tests)."""
        return self.router.queues

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume the node's events until the stream ends (the connection was closed)."""
        async for event in self.port.events():
            self.dispatch(event)

    async def close(self) -> None:
        """Cancel the engine's own tasks and timers (calls stay up in FreeSWITCH)."""
        self.legs.close()
        self.router.close()
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
                self._start_adoption()
            elif isinstance(event, NodeDisconnected):
                self.metrics.esl_connected.labels(event.node).set(0)
                if self._adoption is not None:
                    self._adoption.cancel()  # its answers are lost with the connection
                log.warning("node lost; calls stay in FreeSWITCH", extra={"node": event.node})
            else:
                counter = self._event_counters.get(event.name)
                if counter is None:  # labels() costs more than the count: once per name
                    counter = self.metrics.esl_events.labels(self.port.node, event.name)
                    self._event_counters[event.name] = counter
                counter.inc()
                if self.flows is not None:
                    self.flows.feed(event)
                handler = self._handlers.get(event.name)
                if handler is not None:
                    if self.overload is not None:
                        self.overload.event_seen(event.get("Event-Date-Timestamp"), time.time())
                    handler(event)
        except Exception:
            log.exception("event handling failed", extra={"event": getattr(event, "name", "?")})

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _start_adoption(self) -> None:
        """One adoption at a time: a new connect replaces the one still running."""
        if self._adoption is not None:
            self._adoption.cancel()
        self._adoption = self.spawn(on_connect(self), "adopt")

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "engine task failed",
                extra={"task": task.get_name(), "error": repr(task.exception())},
            )

    async def command(self, command: Command) -> Done:
        """A call-control command from the API (see :mod:`telephony.calls.control`)."""
        return await self.control.handle(command)

    def _on_park(self, event: Event) -> None:
        if not self.control.on_park(event):  # a re-park a transfer or consult expects
            self.intake_part.on_park(event)

    def _on_bridge(self, event: Event) -> None:
        if not self.control.on_bridge(event):
            self.legs.on_bridge(event)

    # -- the steps of the parts (EngineCore) ----------------------------------------------

    async def take(self, call: Call) -> None:
        await self.intake_part.take(call)

    async def intake(self, call: Call) -> None:
        await self.intake_part.intake(call)

    async def run_flow(self, call: Call) -> None:
        await self.intake_part.run_flow(call)

    def enqueue(self, call: Call) -> None:
        self.router.enqueue(call)

    def requeue(self, call: Call) -> None:
        self.router.requeue(call)

    def ensure_music(self, call: Call) -> None:
        self.router.ensure_music(call)

    def route(self) -> None:
        """Offer waiting calls to available agents (see :mod:`telephony.calls.routing`)."""
        self.router.route()

    def offer(self, call: Call, agent: Agent) -> None:
        self.legs.offer(call, agent)

    def offer_failed(
        self, call: Call, agent_id: str, leg: str, cause: str, *, agent_missed: bool = True
    ) -> None:
        self.legs.offer_failed(call, agent_id, leg, cause, agent_missed=agent_missed)

    def agent_leg_gone(self, leg: str, cause: str | None, disposition: str | None) -> None:
        self.legs.agent_leg_gone(leg, cause, disposition)

    def bridge_ended(self, call: Call) -> None:
        self.legs.bridge_ended(call)

    def voicemail_failed(self, call: Call, reason: str) -> None:
        self.legs.voicemail_failed(call, reason)

    async def record(self, call: Call) -> None:
        await self.legs.record(call)

    def end_agent_call(self, agent_id: str) -> None:
        self.legs.end_agent_call(agent_id)

    def wrap_up(self, agent_id: str, extend_s: float | None = None) -> bool:
        return self.legs.wrap_up(agent_id, extend_s)

    def peers(self) -> Iterable[EngineCore]:
        return list(self._peers)

    def engaged_agents(self) -> set[str]:
        engaged = {c.agent_id for c in self.calls.values() if c.agent_id}
        engaged |= {
            c.offered_agent
            for c in self.calls.values()
            if c.state is CallState.OFFERING and c.offered_agent
        }
        return engaged

    def wrapping_up(self) -> set[str]:
        return set(self.legs.wrap_up_timers)

    # -- the call's registry and end ------------------------------------------------------

    def adopt(self, call: Call) -> None:
        """Register a call (new, or re-adopted after a restart) and write its CDR row."""
        self.calls[call.uuid] = call
        self.metrics.calls_in_progress.set(sum(len(p.calls) for p in self._peers))
        self.buffer.put(records.cdr(call))
        caller = call.legs.setdefault(
            call.uuid, Leg(call.uuid, "caller", call.hotline, call.arrived_at)
        )
        self.buffer.put(records.leg(call, caller))
        if call.state is CallState.PARKED:
            self.buffer.put(records.timeline(call, "arrived", call.arrived_at, caller=call.caller))
        log.debug(
            "call adopted",
            extra={"call": call.uuid, "hotline": call.hotline, "state": call.state.value},
        )

    def _on_hangup_complete(self, event: Event) -> None:
        uid = event.unique_id or ""
        cause = clean_or_none(event.hangup_cause, values.CAUSE)
        disposition = clean_or_none(event.variable("sip_hangup_disposition"), values.DISPOSITION)
        if uid in self.calls:
            self.caller_gone(self.calls[uid], cause, disposition)
        elif self.control.leg_gone(uid, cause, disposition):
            pass  # a leg call control made, or an agent's leg a consult depended on
        elif uid in self.agent_legs:
            self.agent_leg_gone(uid, cause, disposition)

    def caller_gone(
        self, call: Call, cause: str | None, disposition: str | None, *, seen: bool = True
    ) -> None:
        """The caller's leg ended (``seen``: its HANGUP_COMPLETE came; else reconciliation)."""
        if call.state is CallState.ENDED:
            return
        call.ended_at = self.clock()
        call.hangup_cause = cause
        call.hangup_disposition = disposition
        call.ended_unseen = not seen
        self.control.call_ended(call)  # hold time counted, the legs it made hung up
        effects = call.move(CallInput.HANGUP)
        self.leg(call, call.uuid, LegInput.HANGUP, hangup_cause=cause, disposition=disposition)
        self.carry(call, effects)
        del self.calls[call.uuid]
        self.metrics.calls_in_progress.set(sum(len(p.calls) for p in self._peers))
        self.metrics.call_outcomes.labels(call.outcome.value).inc()
        if self.flows is not None:
            self.flows.forget(call.uuid)

    def carry(self, call: Call, effects: tuple[CallEffect, ...]) -> None:
        """Carry out the effects the call state machine asked for."""
        for effect in effects:
            if effect is CallEffect.ROUTE:
                self.route()
            elif effect is CallEffect.DEQUEUE:
                self.router.dequeue(call)
                if call.state is CallState.ENDED and call.queued_at is not None:
                    self.buffer.put(
                        records.queue_entry(call, left_at=call.ended_at, result="abandoned")
                    )
            elif effect is CallEffect.CANCEL_OFFER and call.offer_leg:
                leg = call.offer_leg
                self.spawn(self.kill(leg, "ORIGINATOR_CANCEL"), f"cancel {leg}")
            elif effect is CallEffect.END_AGENT_CALL and call.agent_id:
                self.end_agent_call(call.agent_id)
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

    # -- helpers --------------------------------------------------------------------------

    async def kill(self, leg: str, cause: str = "NORMAL_CLEARING") -> None:
        """Hang up a leg that may already be gone (``-ERR`` then is expected)."""
        with contextlib.suppress(EslError):
            await self.port.api("uuid_kill", leg, cause)

    async def hang_up(self, call: Call, cause: str = "NORMAL_CLEARING") -> None:
        """End the caller's leg (its HANGUP_COMPLETE then ends the call)."""
        call.we_hung_up = True
        with contextlib.suppress(EslError):
            await self.port.hangup(call.uuid, cause)

    def move(self, call: Call, event: CallInput) -> bool:
        """Apply ``event`` if the call is still where the step expects; False if it moved on."""
        try:
            self.carry(call, call.move(event))
        except IllegalTransition:
            return False
        return True

    def leg(self, call: Call, uuid: str, event: LegInput, **facts: str | None) -> None:
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

    async def mark(self, call: Call, **facts: str | float) -> None:
        """Keep facts on the caller channel for re-adoption after a restart (``tel_*``) and
        set the channel variables the call needs, in one ``uuid_setvar_multi``."""
        values = {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in facts.items()}
        try:
            await self.port.api("uuid_setvar_multi", *commands.setvar_multi(call.uuid, values))
        except (EslError, commands.UnsafeValue) as exc:
            log.debug("could not mark call", extra={"call": call.uuid, "error": str(exc)})
