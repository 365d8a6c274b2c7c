"""Supervisors' monitoring of a connected call: listen, whisper (to the agent), barge.

One eavesdrop leg per call (``../shared/freeswitch`` session j):
``originate {...}user/<supervisor extension> &eavesdrop(<agent leg>)``;
listening starts at the answer, and the mode is changed by digits sent as if
the supervisor pressed them, ``uuid_recv_dtmf <leg> <digit>`` (0 listen, 2
whisper to the agent, 3 barge). Nothing is raised on the call's own legs, so
the mode is what :data:`~telephony.calls.control_model.MONITOR_MACHINE` says.
The supervisor's leg is hung up by us when monitoring stops or the call ends;
it ends by itself when the agent's leg does (the eavesdrop returns).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import TYPE_CHECKING

from telephony.calls import records
from telephony.calls.control_model import (
    MONITOR_MACHINE,
    ControlState,
    Done,
    Monitor,
    MonitorInput,
    MonitorMode,
    MonitorState,
    Refused,
)
from telephony.calls.model import Call, CallState
from telephony.esl import commands
from telephony.esl.port import EslError
from telephony.fsm import IllegalTransition

if TYPE_CHECKING:
    from telephony.calls.control import CallControl, MonitorSession

log = logging.getLogger(__name__)


class Monitoring:
    """Monitor sessions of one node's calls."""

    def __init__(self, control: CallControl) -> None:
        self.control = control
        self.core = control.core

    def _move(self, call: Call, monitor: MonitorSession, event: MonitorInput) -> bool:
        try:
            rule = MONITOR_MACHINE.apply(call.uuid, monitor.state, event)
        except IllegalTransition:
            return False
        monitor.state = rule.target
        return True

    def _active(self, call: Call) -> MonitorSession:
        session = self.control.sessions.get(call.uuid)
        monitor = session.monitor if session is not None else None
        if monitor is None or monitor.state is MonitorState.ENDED:
            raise Refused("wrong_state", "the call is not being monitored")
        return monitor

    async def start(self, call: Call, command: Monitor) -> Done:
        from telephony.calls.control import MonitorSession

        core, control = self.core, self.control
        state = control.current(call)
        if (
            call.state is not CallState.CONNECTED
            or call.agent_leg is None
            or state
            in (
                ControlState.DIALING,
                ControlState.TRANSFERRING,
                ControlState.DIALING_OUT,
                ControlState.OUTSIDE,
            )
        ):
            raise Refused("wrong_state", "only a call talking to an agent can be monitored")
        session = control.session(call)
        if session.monitor is not None and session.monitor.state is not MonitorState.ENDED:
            raise Refused(
                "wrong_state", f"the call is already monitored by {session.monitor.supervisor}"
            )
        leg = str(uuidlib.uuid4())
        monitor = MonitorSession(
            leg, command.supervisor, command.extension, MonitorState(command.mode.value)
        )
        session.monitor = monitor
        control.add_leg(call, leg, "supervisor", command.extension)
        core.buffer.put(
            records.timeline(
                call,
                "monitor",
                core.clock(),
                supervisor=command.supervisor,
                mode=command.mode.value,
                extension=command.extension,
            )
        )
        core.spawn(self._ring(call, monitor, call.agent_leg), f"monitor {call.uuid}")
        return Done(call.uuid, "ringing", f"calling extension {command.extension} to listen")

    async def _ring(self, call: Call, monitor: MonitorSession, agent_leg: str) -> None:
        core, control = self.core, self.control
        try:
            target, app = commands.originate_args(
                f"user/{monitor.extension}",
                variables={
                    "origination_uuid": monitor.leg,
                    "origination_caller_id_number": call.hotline,
                    "origination_caller_id_name": call.hotline,
                    "hotline_call": call.uuid,
                    "originate_timeout": str(core.settings.ring_timeout_s),
                },
                app="eavesdrop",
                app_arg=commands.check_uuid(agent_leg),
            )
            job = await core.port.bgapi(
                "originate", target, app, timeout=core.settings.ring_timeout_s + 15
            )
            result = (job.body or "").strip()
        except (EslError, commands.UnsafeValue) as exc:
            result = f"-ERR {exc}"
        if not result.startswith("+OK"):
            control.party_failed(monitor.leg, result.removeprefix("-ERR").strip())
            if self._move(call, monitor, MonitorInput.STOP):
                core.buffer.put(
                    records.timeline(call, "monitor_failed", core.clock(), cause=result[:64])
                )
            return
        control.party_answered(monitor.leg)
        wanted = monitor.wanted
        if not self._move(call, monitor, MonitorInput.ANSWERED):
            await core.kill(monitor.leg)  # stopped while it rang
            return
        if wanted is not MonitorState.LISTEN:
            await self._send_mode(call, monitor, MonitorMode(wanted.value))

    async def _send_mode(self, call: Call, monitor: MonitorSession, mode: MonitorMode) -> None:
        try:
            await self.core.port.api(
                "uuid_recv_dtmf", *commands.recv_dtmf_args(monitor.leg, mode.digit)
            )
        except EslError as exc:
            log.warning("monitor mode not changed", extra={"call": call.uuid, "error": str(exc)})
            return
        self._move(call, monitor, MonitorInput(mode.value))

    async def change(self, call: Call, mode: MonitorMode) -> Done:
        core = self.core
        monitor = self._active(call)
        before = monitor.state
        core.buffer.put(
            records.timeline(
                call,
                "monitor_mode",
                core.clock(),
                supervisor=monitor.supervisor,
                mode=mode.value,
                before=before.value,
            )
        )
        if monitor.state is MonitorState.RINGING:
            monitor.wanted = MonitorState(mode.value)  # sent once the supervisor answers
            return Done(call.uuid, "ringing", f"{mode.value} once the supervisor answers")
        await self._send_mode(call, monitor, mode)
        return Done(call.uuid, monitor.state.value, f"monitor mode {monitor.state.value}")

    async def stop(self, call: Call) -> Done:
        core = self.core
        monitor = self._active(call)
        self._move(call, monitor, MonitorInput.STOP)
        core.buffer.put(
            records.timeline(
                call, "monitor_ended", core.clock(), supervisor=monitor.supervisor, by="request"
            )
        )
        await core.kill(monitor.leg)
        return Done(call.uuid, "ended", "the supervisor's leg is being hung up")

    def leg_gone(self, call: Call, leg: str) -> None:
        session = self.control.sessions.get(call.uuid)
        monitor = session.monitor if session is not None else None
        if monitor is None or monitor.leg != leg:
            return
        if self._move(call, monitor, MonitorInput.STOP):
            self.core.buffer.put(
                records.timeline(
                    call,
                    "monitor_ended",
                    self.core.clock(),
                    supervisor=monitor.supervisor,
                    by="leg",
                )
            )

    def mode_of(self, call: Call) -> str | None:
        session = self.control.sessions.get(call.uuid)
        monitor = session.monitor if session is not None else None
        if monitor is None or monitor.state is MonitorState.ENDED:
            return None
        return str(monitor.state.value)
