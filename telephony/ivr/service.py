"""What the call engine uses: the flow library, the reaction timer, and running a call's IVR.

Wiring (``telephony serve``), once per process::

    ivr = IvrService(
        IvrSettings(flows_dir=Path(os.environ.get("TELEPHONY_IVR_FLOWS", "ivr_flows/"))),
        blocked=blocked_numbers.contains,              # async (number) -> bool
        hooks=metrics_hooks,                            # see IvrHooks
    )
    await ivr.start()                                   # load, then watch the folder
    ...
    await ivr.stop()

In the engine, for each event of the node: ``ivr.feed(event)`` (the
reaction timer). In ``_intake`` after ``answer``::

    session = ivr.session(call.hotline)                 # None: no flow for this number
    if session is not None:
        result = await ivr.run(session, port, call.uuid, caller=call.caller)
        # result.action: Queue(group, priority) | Transfer(number) | Voicemail(...)
        #                | Hangup(reason) | Blocked()
        # result.keys (the DTMF path), result.variables, result.steps -> CDR/timeline
        # ivr.reactions(call.uuid) -> this call's key-press-to-prompt times

Keep ``session`` on the call: when the agent hangs up first (the caller is
re-parked by ``park_after_bridge``), play the survey of the same version::

    score = await ivr.survey(session, port, call.uuid, caller=call.caller)
    # SurveyResult(score, min_score, max_score, flow, version) or None; then hang up
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from telephony.esl.messages import Event
from telephony.esl.port import SwitchPort
from telephony.ivr.interpreter import IvrResult, SurveyResult, run_flow, run_survey
from telephony.ivr.live import LiveChannel
from telephony.ivr.loader import Diagnostic, FlowSet, LoadedFlow
from telephony.ivr.reload import FlowLibrary
from telephony.ivr.timing import ReactionTimer

log = logging.getLogger(__name__)


class IvrHooks(Protocol):
    """Where the IVR reports its measurements (``telephony.metrics`` implements these)."""

    def reaction(self, seconds: float) -> None:
        """One key-press-to-next-prompt time (a histogram sample)."""
        ...

    def reload_error(self, path: str, errors: int) -> None:
        """A flow file was refused by the hot reload (a counter by file)."""
        ...

    def flow_finished(self, flow: str, action: str) -> None:
        """A call's IVR ended with ``action`` (queue, transfer, voicemail, hangup, blocked)."""
        ...


class NoHooks:
    """Hooks that record nothing (tests, tools)."""

    def reaction(self, seconds: float) -> None:
        """Record nothing."""
        pass

    def reload_error(self, path: str, errors: int) -> None:
        """Record nothing."""
        pass

    def flow_finished(self, flow: str, action: str) -> None:
        """Record nothing."""
        pass


@dataclass(frozen=True, slots=True)
class IvrSettings:
    """Where flows are, how FreeSWITCH sees them, and how often to look for edits."""

    flows_dir: Path = Path("ivr_flows")
    voicemail_dir: str = "/var/lib/freeswitch/recordings/voicemail"
    #: The flows folder as FreeSWITCH sees it, when it is mounted elsewhere on the switch.
    switch_flows_dir: str | None = None
    reload_interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class IvrSession:
    """The flow version a call runs; keep it for the call's survey."""

    flow_set: FlowSet
    flow: LoadedFlow


class IvrService:
    """The IVR as the engine sees it; see the module docstring for the calls to make."""

    def __init__(
        self,
        settings: IvrSettings,
        *,
        blocked: Callable[[str], Awaitable[bool]] | None = None,
        hooks: IvrHooks | None = None,
        voicemail_check: Callable[[str], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.hooks: IvrHooks = hooks or NoHooks()
        self.blocked = blocked
        # node -> why voice messages cannot be recorded there (its recording probe), or None
        self.voicemail_check = voicemail_check
        self.library = FlowLibrary(settings.flows_dir, on_error=self._reload_error)
        self.timer = ReactionTimer(self.hooks.reaction)

    async def start(self) -> None:
        """Load the flows (read and parsed off the loop) and start watching the folder for edits."""
        await self.library.reload_async()
        self.library.start(self.settings.reload_interval_s)

    async def stop(self) -> None:
        """Stop watching the folder."""
        await self.library.stop()

    def feed(self, event: Event) -> None:
        """Every event of the node (the reaction timer picks DTMF and prompt starts)."""
        self.timer.feed(event)

    def session(self, hotline: str) -> IvrSession | None:
        """The current version of the flow answering ``hotline`` (None: no flow)."""
        found = self.library.for_hotline(hotline)
        return None if found is None else IvrSession(*found)

    def channel(
        self,
        session: IvrSession,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str | None = None,
    ) -> LiveChannel:
        """The live channel for a call (it keeps the call's variables)."""
        flow = session.flow.flow
        check = self.voicemail_check
        return LiveChannel(
            port,
            uuid,
            caller=caller,
            hotline=hotline or (flow.hotlines[0] if flow.hotlines else ""),
            timezone=flow.timezone,
            voicemail_dir=self.settings.voicemail_dir,
            blocked=self.blocked,
            path_for_switch=self._path_for_switch,
            cannot_record=(lambda: check(port.node)) if check is not None else None,
        )

    async def run(
        self,
        session: IvrSession,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str | None = None,
    ) -> IvrResult:
        """Run the session's flow on a live call until its final action."""
        channel = self.channel(session, port, uuid, caller=caller, hotline=hotline)
        self.timer.watch(uuid)  # samples stay until reactions(uuid)
        result = await run_flow(session.flow_set, session.flow.id, channel)
        self.hooks.flow_finished(result.flow, result.action.kind)
        return result

    async def survey(
        self,
        session: IvrSession,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str | None = None,
    ) -> SurveyResult | None:
        """The satisfaction survey of the call's flow version (None: no survey or no answer)."""
        channel = self.channel(session, port, uuid, caller=caller, hotline=hotline)
        self.timer.watch(uuid)
        return await run_survey(session.flow_set, session.flow.id, channel)

    async def outbound_survey(
        self,
        flow: str,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str,
        variables: Mapping[str, str],
    ) -> int | None:
        """The follow-up entry point: flow ``flow``'s survey on a leg we called out on,
        with ``variables`` (``${ticket}``) set; the score, or None."""
        flow_set = self.library.current
        loaded = flow_set.flows.get(flow)
        if loaded is None:
            log.warning("no survey flow", extra={"flow": flow, "call": uuid})
            return None
        session = IvrSession(flow_set, loaded)
        channel = self.channel(session, port, uuid, caller=caller, hotline=hotline)
        for name, value in variables.items():
            channel.set(name, value)
        result = await run_survey(flow_set, flow, channel)
        return None if result is None else result.score

    def reactions(self, uuid: str) -> list[float]:
        """The call's key-press-to-prompt times (seconds); stops measuring the call."""
        return self.timer.unwatch(uuid)

    def _path_for_switch(self, path: str) -> str:
        target = self.settings.switch_flows_dir
        if not target:
            return path
        local = str(self.settings.flows_dir.resolve())
        if path.startswith(local + "/"):
            return target.rstrip("/") + path[len(local) :]
        return path

    def _reload_error(self, path: str, diagnostics: list[Diagnostic]) -> None:
        self.hooks.reload_error(path, len(diagnostics))
