"""The IVR as the call engine's :class:`~telephony.calls.flows.CallFlows` port."""

from __future__ import annotations

from telephony.calls.flows import FlowOutcome
from telephony.esl.messages import Event
from telephony.esl.port import SwitchPort
from telephony.ivr.interpreter import Queue, Transfer
from telephony.ivr.service import IvrService, IvrSession


class EngineFlows:
    """Runs each hotline's current flow; a call keeps its flow version for its survey."""

    def __init__(self, service: IvrService) -> None:
        self.service = service
        self._sessions: dict[str, tuple[IvrSession, str]] = {}

    def feed(self, event: Event) -> None:
        self.service.feed(event)

    async def run(
        self, port: SwitchPort, call_uuid: str, *, hotline: str, caller: str
    ) -> FlowOutcome | None:
        session = self.service.session(hotline)
        if session is None:
            return None
        self._sessions[call_uuid] = (session, hotline)
        result = await self.service.run(session, port, call_uuid, caller=caller, hotline=hotline)
        action = result.action
        failed = any(step.kind == "error" for step in result.steps)
        return FlowOutcome(
            action=action.kind,
            group=action.group if isinstance(action, Queue) else None,
            priority=action.priority if isinstance(action, Queue) else 0,
            number=action.number if isinstance(action, Transfer) else None,
            reason="channel_error" if failed else getattr(action, "reason", None),
            keys=result.keys,
            flow=result.flow,
            version=result.version,
            voicemail_failed=result.voicemail_failed,
        )

    async def survey(
        self, port: SwitchPort, call_uuid: str, *, caller: str, hotline: str
    ) -> int | None:
        kept = self._sessions.get(call_uuid)
        if kept is None:  # re-adopted after a restart: the hotline's current flow
            session = self.service.session(hotline)
            if session is None:
                return None
        else:
            session, hotline = kept
        result = await self.service.survey(session, port, call_uuid, caller=caller, hotline=hotline)
        return None if result is None else result.score

    def forget(self, call_uuid: str) -> None:
        self._sessions.pop(call_uuid, None)
        self.service.reactions(call_uuid)  # stop timing the call
