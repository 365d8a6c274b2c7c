"""The interpreter: runs one flow of one flow-set version on one channel, to a final action.

Theory of operation
-------------------
A call's IVR is a walk over the nodes of a flow. The walk is an ordinary
coroutine, :func:`run_flow`; everything it does to the caller goes through
an :class:`IvrChannel` (a ``Protocol``): the live one (:mod:`.live`) drives
FreeSWITCH with ``playback``/``speak``/``say``/``play_and_get_digits``, the
simulated one (:mod:`.simulated`) reads scripted keys and a fixed clock.

State
    the position ``(flow id, node id)``, a stack of return positions for
    sub-flows, the call's variables (kept by the channel), the number of
    nodes visited, and the trace of :class:`Step` records.
Inputs
    what the channel reports: a prompt finished, the digits of one collect
    attempt (an empty string is a timeout), :class:`CallerHungUp`,
    :class:`ChannelError`; and the channel's clock and blocked-number check.
Rules
    * Each node does its work and names the next node; nodes of the types
      in :data:`~telephony.ivr.schema.TERMINAL_TYPES` end the walk with an
      :data:`Action` (``return`` pops the sub-flow stack instead, or hangs
      up at the top). A node with no ``next`` hangs up (``dead_end``).
    * Menus and collects run one attempt per channel call and count the
      attempts here, so the trace shows every invalid key and timeout and
      the two get their own prompts; after ``retries`` more attempts the
      walk goes to ``fallback`` (or hangs up: ``no_input``).
    * ``max_steps`` node visits end the walk (``step_limit``): a caller who
      loops through menus forever is let go, not kept.
    * The flow set is the version the call started with: sub-flows and
      calendars come from the same immutable :class:`FlowSet`, whatever the
      hot reload loads meanwhile.
    * The caller hanging up ends the walk (``caller_hung_up``). A channel
      failure ends it with ``on_error`` (by default: queue in ``general``),
      so a broken switch command never loses the citizen's call.
    * A voice message that cannot be recorded (the channel knows it before
      trying, :meth:`IvrChannel.cannot_record`, or :class:`RecordingFailed`)
      is a ``voicemail_failed`` step: the caller hears the node's
      ``failed_prompt`` and the walk goes on at its ``fallback`` (or hangs
      up: ``voicemail_failed``); the result's ``voicemail_failed`` keeps the
      reason for the CDR whatever the walk ends with.

The post-call survey (:func:`run_survey`) is a one-question menu on the same
channel, called by the engine when the agent hangs up first.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from telephony.ivr.loader import FlowSet, LoadedFlow
from telephony.ivr.schema import (
    BlockedCheckNode,
    BranchNode,
    BusinessHoursNode,
    Case,
    CollectNode,
    Flow,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    SayKind,
    SayNode,
    SetNode,
    SpeakNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)

log = logging.getLogger(__name__)

_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL = re.compile(r"^[a-z_]+://")
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
MAX_SUBFLOW_DEPTH = 8


# -- what the interpreter asks of a channel -----------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """A prompt ready to play: a file path or URL, TTS text with its engine, or a said value."""

    kind: Literal["file", "tts", "say"]
    value: str
    engine: str = ""
    voice: str = ""
    say_kind: SayKind = "digits"
    say_module: str = "zh"
    label: str = ""

    def describe(self) -> str:
        """The prompt in words, for traces (a file as the flow names it)."""
        if self.kind == "file":
            return self.label or self.value
        if self.kind == "tts":
            return f'tts "{self.value}" ({self.engine}/{self.voice})'
        return f"say {self.say_kind} {self.value}"


@dataclass(frozen=True, slots=True)
class CollectRequest:
    """One attempt at collecting digits: prompt (DTMF interrupts it), lengths, keys, timeouts."""

    prompt: PromptSpec | None
    min_digits: int
    max_digits: int
    terminators: str
    timeout: float
    inter_digit_timeout: float


@dataclass(frozen=True, slots=True)
class CollectResult:
    """The digits of one attempt (``""``: nothing pressed in time) and the terminator used."""

    digits: str
    terminator: str = ""


@dataclass(frozen=True, slots=True)
class Recording:
    """A voice message: where the switch wrote it and how long it is."""

    path: str
    seconds: float | None = None


class CallerHungUp(Exception):
    """The caller hung up while the channel was playing or collecting."""


class ChannelError(Exception):
    """The channel could not do what was asked (switch error, timeout)."""


class RecordingFailed(Exception):
    """A voice message could not be recorded; ``reason`` says why (the switch's words).

    ``hung_up``: the switch ended the call while failing (FreeSWITCH's ``record``
    application hangs up a channel whose file it cannot open), so the caller
    cannot be told.
    """

    def __init__(self, reason: str, *, hung_up: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hung_up = hung_up


class IvrChannel(Protocol):
    """What the interpreter needs from a call's channel."""

    @property
    def uuid(self) -> str:
        """The caller channel's uuid (``sim-...`` for a simulation)."""
        ...

    @property
    def caller(self) -> str:
        """The caller's number."""
        ...

    @property
    def hotline(self) -> str:
        """The number the caller dialled."""
        ...

    async def play(self, prompt: PromptSpec) -> None:
        """Play a prompt to the end; raises CallerHungUp or ChannelError."""
        ...

    async def collect(self, request: CollectRequest) -> CollectResult:
        """One attempt: play the prompt and collect digits; ``""`` on timeout."""
        ...

    async def record(self, mailbox: str, max_seconds: int, beep: bool) -> Recording | None:
        """Record a voice message; None if nothing was recorded.

        Raises RecordingFailed when the message could not be recorded.
        """
        ...

    def cannot_record(self) -> str | None:
        """Why a voice message cannot be recorded now (known before trying), or None."""
        ...

    async def is_blocked(self) -> bool:
        """Whether the caller's number is blocked (拦截恶意号码)."""
        ...

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        ...

    def set(self, name: str, value: str) -> None:
        """Set a call variable."""
        ...

    def get(self, name: str) -> str | None:
        """A call variable, or None."""
        ...


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queue:
    """Queue the call in a skill group (higher priority is served first)."""

    group: str
    priority: int = 0
    kind: Literal["queue"] = "queue"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Transfer the call to an outside number."""

    number: str
    kind: Literal["transfer"] = "transfer"


@dataclass(frozen=True, slots=True)
class Voicemail:
    """The caller left a voice message (``recording`` None: nothing was recorded); hang up."""

    mailbox: str
    recording: str | None = None
    seconds: float | None = None
    kind: Literal["voicemail"] = "voicemail"


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up (``reason``: normal, dead_end, no_input, step_limit, caller_hung_up, ...)."""

    reason: str = "normal"
    kind: Literal["hangup"] = "hangup"


@dataclass(frozen=True, slots=True)
class Blocked:
    """The caller's number is blocked: hang up without serving the call."""

    kind: Literal["blocked"] = "blocked"


Action = Queue | Transfer | Voicemail | Hangup | Blocked

StepKind = Literal[
    "play",
    "keys",
    "invalid",
    "timeout",
    "exhausted",
    "set",
    "branch",
    "subflow",
    "return",
    "action",
    "error",
    "voicemail_failed",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened: ``kind`` at node ``node`` of flow ``flow``; ``detail`` says what."""

    flow: str
    node: str
    kind: StepKind
    detail: str

    def __str__(self) -> str:
        """The ``file:line: message`` form."""
        return f"{self.flow}:{self.node} {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class IvrResult:
    """How a call's IVR ended: the action, the trace, the variables and the keys pressed."""

    flow: str
    version: str
    action: Action
    steps: tuple[Step, ...]
    variables: Mapping[str, str]
    keys: str
    #: Why the caller's voice message could not be recorded (None: no failed message).
    #: The action is then the voicemail node's fallback, or Hangup("voicemail_failed").
    voicemail_failed: str | None = None


@dataclass(frozen=True, slots=True)
class SurveyResult:
    """The satisfaction survey's answer (按键满意率), for the call's CDR."""

    flow: str
    version: str
    score: int
    min_score: int
    max_score: int


# -- the walk -----------------------------------------------------------------------------


def render(text: str, channel: IvrChannel) -> str:
    """Replace ``${name}`` by the call variable (an unset variable gives ``""``)."""
    return _TEMPLATE.sub(lambda m: channel.get(m.group(1)) or "", text)


def resolve_prompt(prompt: Prompt, flow: Flow, root: Path, channel: IvrChannel) -> PromptSpec:
    """A flow prompt made concrete: absolute file path, rendered text, engine and voice."""
    if prompt.file:
        return PromptSpec("file", _prompt_file(root, prompt.file), label=prompt.file)
    if prompt.text:
        return PromptSpec(
            "tts",
            render(prompt.text, channel),
            engine=prompt.engine or flow.tts.engine,
            voice=prompt.voice or flow.tts.voice,
        )
    return PromptSpec(
        "say",
        render(prompt.say or "", channel),
        say_kind=prompt.kind,
        say_module=flow.say_module,
    )


@functools.lru_cache(maxsize=4096)
def _prompt_file(root: Path, value: str) -> str:
    """A flow's file prompt as the switch reads it (every prompt of every call asks)."""
    if _URL.match(value) or Path(value).is_absolute():
        return value
    return str(root / value)  # root is absolute; `ivr check` refuses ".."


@dataclass
class _Walk:
    flow_set: FlowSet
    channel: IvrChannel
    top: LoadedFlow
    on_step: Callable[[Step], None] | None = None
    steps: list[Step] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    stack: list[tuple[str, str | None]] = field(default_factory=list)
    flow_id: str = ""
    node_id: str = ""
    visits: int = 0
    voicemail_failed: str | None = None

    @property
    def loaded(self) -> LoadedFlow:
        return self.flow_set.flows[self.flow_id]

    @property
    def flow(self) -> Flow:
        return self.loaded.flow

    def step(self, kind: StepKind, detail: str) -> None:
        s = Step(self.flow_id, self.node_id, kind, detail)
        self.steps.append(s)
        if self.on_step is not None:
            self.on_step(s)
        log.debug(
            "ivr step",
            extra={
                "call": self.channel.uuid,
                "flow": self.flow_id,
                "node": self.node_id,
                "step": kind,
                "detail": detail,
            },
        )

    def prompt(self, prompt: Prompt) -> PromptSpec:
        return resolve_prompt(prompt, self.flow, self.flow_set.root, self.channel)

    async def play(self, prompt: Prompt | None) -> None:
        if prompt is None:
            return
        spec = self.prompt(prompt)
        self.step("play", spec.describe())
        await self.channel.play(spec)

    async def run(self) -> Action:
        self.flow_id = self.top.id
        self.node_id = self.flow.start
        self._seed(self.flow)
        while True:
            self.visits += 1
            if self.visits > self.top.flow.max_steps:
                self.step("error", f"more than {self.top.flow.max_steps} steps")
                return Hangup("step_limit")
            node = self.flow.nodes.get(self.node_id)
            if node is None:
                raise ChannelError(f"unknown node {self.node_id!r} in flow {self.flow_id!r}")
            outcome = await self.visit(node)
            if isinstance(outcome, str):
                self.node_id = outcome
                continue
            if outcome is None:
                self.step("action", f"dead end after {self.node_id!r}: hang up")
                return Hangup("dead_end")
            if isinstance(outcome, _Return):
                if not self.stack:
                    self.step("action", "return from the main flow: hang up")
                    return Hangup("normal")
                self.flow_id, after = self.stack.pop()
                self.step("return", f"back in {self.flow_id}")
                if after is None:
                    return Hangup("dead_end")
                self.node_id = after
                continue
            return outcome

    def _seed(self, flow: Flow) -> None:
        """Set the built-in variables and the flow's initial ones (those not set yet)."""
        ch = self.channel
        for name, value in (
            ("caller", ch.caller),
            ("hotline", ch.hotline),
            ("uuid", ch.uuid),
            ("flow", self.top.id),
        ):
            if ch.get(name) is None:
                ch.set(name, value)
        for name, value in flow.variables.items():
            if ch.get(name) is None:
                ch.set(name, render(value, ch))

    async def visit(self, node: Node) -> str | Action | _Return | None:
        ch = self.channel
        if isinstance(node, PlayNode):
            await self.play(node.prompt)
            return node.next
        if isinstance(node, SpeakNode):
            await self.play(
                Prompt.model_validate(
                    {"text": node.text, "engine": node.engine, "voice": node.voice}
                )
            )
            return node.next
        if isinstance(node, SayNode):
            await self.play(Prompt.model_validate({"say": node.value, "kind": node.kind}))
            return node.next
        if isinstance(node, MenuNode):
            return await self.menu(node)
        if isinstance(node, CollectNode):
            return await self.collect(node)
        if isinstance(node, SetNode):
            for name, value in node.values.items():
                rendered = render(value, ch)
                ch.set(name, rendered)
                self.step("set", f"{name} = {rendered!r}")
            return node.next
        if isinstance(node, BranchNode):
            value = ch.get(node.variable) or ""
            for i, case in enumerate(node.cases):
                if _holds(case, value):
                    self.step("branch", f"{node.variable}={value!r}: case {i + 1} -> {case.next}")
                    return case.next
            self.step("branch", f"{node.variable}={value!r}: default -> {node.default}")
            return node.default
        if isinstance(node, BusinessHoursNode):
            calendar_id = node.calendar or self.flow.calendar or ""
            calendar = self.flow_set.calendars.get(calendar_id)
            if calendar is None:
                raise ChannelError(f"unknown calendar {calendar_id!r}")
            now = ch.now()
            state, holiday = calendar.state(now)
            target = {"open": node.open, "closed": node.closed}.get(state)
            if state == "holiday":
                target = node.holiday or node.closed
            when = now.astimezone(ZoneInfo(calendar.timezone)).strftime("%Y-%m-%d %a %H:%M")
            label = f"{state} ({holiday})" if holiday else state
            self.step("branch", f"business hours at {when}: {label} -> {target}")
            return target
        if isinstance(node, BlockedCheckNode):
            if await ch.is_blocked():
                self.step("branch", f"caller {ch.caller} is blocked -> {node.blocked or 'end'}")
                await self.play(node.prompt)
                if node.blocked is None:
                    self.step("action", "blocked")
                    return Blocked()
                return node.blocked
            self.step("branch", f"caller {ch.caller} is not blocked -> {node.next}")
            return node.next
        if isinstance(node, QueueNode):
            await self.play(node.prompt)
            self.step("action", f"queue in {node.group!r} with priority {node.priority}")
            return Queue(node.group, node.priority)
        if isinstance(node, TransferNode):
            number = render(node.number, ch)
            if not _NUMBER.match(number):
                self.step("error", f"not a telephone number: {number!r}")
                return Hangup("bad_transfer_number")
            await self.play(node.prompt)
            self.step("action", f"transfer to {number}")
            return Transfer(number)
        if isinstance(node, VoicemailNode):
            return await self.voicemail(node)
        if isinstance(node, HangupNode):
            await self.play(node.goodbye)
            self.step("action", f"hang up ({node.reason})")
            return Hangup(node.reason)
        if isinstance(node, SubflowNode):
            if len(self.stack) >= MAX_SUBFLOW_DEPTH or node.flow not in self.flow_set.flows:
                raise ChannelError(f"cannot enter sub-flow {node.flow!r}")
            self.stack.append((self.flow_id, node.next))
            self.step("subflow", f"enter {node.flow}")
            self.flow_id = node.flow
            self._seed(self.flow)
            return self.flow.start
        assert isinstance(node, ReturnNode)
        return _Return()

    async def voicemail(self, node: VoicemailNode) -> str | Action:
        """Take the message; one that cannot be recorded is told, then ``fallback``."""
        ch = self.channel
        reason = ch.cannot_record()
        if reason is None:
            await self.play(node.prompt)
            try:
                recording = await ch.record(node.mailbox, node.max_seconds, node.beep)
            except RecordingFailed as exc:
                if exc.hung_up:
                    self._voicemail_failed(node, exc.reason)
                    self.step("action", "the switch hung up the call")
                    return Hangup("voicemail_failed")
                reason = exc.reason
            else:
                await self.play(node.goodbye)
                where = recording.path if recording else "nothing recorded"
                self.step("action", f"voice message for {node.mailbox!r}: {where}")
                return Voicemail(
                    node.mailbox,
                    recording.path if recording else None,
                    recording.seconds if recording else None,
                )
        self._voicemail_failed(node, reason)
        await self.play(node.failed_prompt)
        if node.fallback is None:
            self.step("action", "the message cannot be recorded: hang up")
            return Hangup("voicemail_failed")
        self.step("branch", f"fallback -> {node.fallback}")
        return node.fallback

    def _voicemail_failed(self, node: VoicemailNode, reason: str) -> None:
        self.voicemail_failed = reason
        self.step("voicemail_failed", f"voice message for {node.mailbox!r} not recorded: {reason}")
        log.error(
            "voice message not recorded",
            extra={"call": self.channel.uuid, "mailbox": node.mailbox, "reason": reason},
        )

    async def attempts(
        self,
        request: CollectRequest,
        retries: int,
        accept: Callable[[str], bool],
        invalid_prompt: Prompt | None,
        timeout_prompt: Prompt | None,
    ) -> str | None:
        """Up to 1 + ``retries`` attempts; the accepted digits, or None when all failed."""
        for attempt in range(retries + 1):
            if request.prompt is not None:
                self.step("play", request.prompt.describe())
            result = await self.channel.collect(request)
            if result.digits and accept(result.digits):
                self.keys.append(result.digits + result.terminator)
                self.step("keys", result.digits + result.terminator)
                return result.digits
            if result.digits:
                self.keys.append(result.digits + result.terminator)
                self.step("invalid", f"{result.digits + result.terminator} (try {attempt + 1})")
                await self.play(invalid_prompt)
            else:
                self.step("timeout", f"no key in {request.timeout:g} s (try {attempt + 1})")
                await self.play(timeout_prompt or invalid_prompt)
        self.step("exhausted", f"{retries + 1} tries")
        return None

    async def menu(self, node: MenuNode) -> str | Action | None:
        request = CollectRequest(
            prompt=self.prompt(node.prompt),
            min_digits=1,
            max_digits=1,
            terminators="",
            timeout=node.timeout,
            inter_digit_timeout=node.timeout,
        )
        key = await self.attempts(
            request,
            node.retries,
            lambda d: d in node.options,
            node.invalid_prompt,
            node.timeout_prompt,
        )
        if key is None:
            if node.fallback is None:
                self.step("action", "no valid key: hang up")
                return Hangup("no_input")
            self.step("branch", f"fallback -> {node.fallback}")
            return node.fallback
        self.channel.set("last_key", key)
        if node.variable:
            self.channel.set(node.variable, key)
        self.step("branch", f"key {key} -> {node.options[key]}")
        return node.options[key]

    async def collect(self, node: CollectNode) -> str | Action | None:
        request = CollectRequest(
            prompt=self.prompt(node.prompt),
            min_digits=node.min_length,
            max_digits=node.max_length,
            terminators=node.terminators,
            timeout=node.timeout,
            inter_digit_timeout=node.inter_digit_timeout,
        )
        pattern = re.compile(node.pattern) if node.pattern else None

        def valid(digits: str) -> bool:
            if not node.min_length <= len(digits) <= node.max_length:
                return False
            return pattern is None or pattern.fullmatch(digits) is not None

        digits = await self.attempts(
            request, node.retries, valid, node.invalid_prompt, node.timeout_prompt
        )
        if digits is None:
            if node.fallback is None:
                self.step("action", "no valid input: hang up")
                return Hangup("no_input")
            self.step("branch", f"fallback -> {node.fallback}")
            return node.fallback
        self.channel.set(node.variable, digits)
        self.step("set", f"{node.variable} = {digits!r}")
        return node.next


@dataclass(frozen=True, slots=True)
class _Return:
    pass


def _holds(case: Case, value: str) -> bool:
    if case.equals is not None:
        return value == case.equals
    if case.one_of is not None:
        return value in case.one_of
    if case.matches is not None:
        return re.search(case.matches, value) is not None
    return (value == "") is bool(case.empty)


async def run_flow(
    flow_set: FlowSet,
    flow_id: str,
    channel: IvrChannel,
    *,
    on_step: Callable[[Step], None] | None = None,
    on_error: Action | None = None,
) -> IvrResult:
    """Run flow ``flow_id`` of ``flow_set`` on ``channel`` until it ends; never raises.

    ``on_step`` sees each step as it happens (``ivr simulate`` prints them).
    A :class:`ChannelError` ends the walk with ``on_error`` (default: queue in
    ``general``, priority 0).
    """
    loaded = flow_set.flows[flow_id]
    walk = _Walk(flow_set, channel, loaded, on_step)
    try:
        action: Action = await walk.run()
    except CallerHungUp:
        walk.step("action", "the caller hung up")
        action = Hangup("caller_hung_up")
    except ChannelError as exc:
        action = on_error or Queue("general", 0)
        walk.step("error", f"{exc}; {action.kind}")
        log.warning(
            "ivr channel error",
            extra={"call": channel.uuid, "flow": flow_id, "node": walk.node_id, "error": str(exc)},
        )
    variables = {n: channel.get(n) or "" for n in _variable_names(flow_set, loaded, channel)}
    log.debug(
        "ivr finished",
        extra={
            "call": channel.uuid,
            "flow": flow_id,
            "version": loaded.version,
            "action": action.kind,
            "keys": "".join(walk.keys),
            "steps": len(walk.steps),
        },
    )
    return IvrResult(
        flow=flow_id,
        version=loaded.version,
        action=action,
        steps=tuple(walk.steps),
        variables=variables,
        keys="".join(walk.keys),
        voicemail_failed=walk.voicemail_failed,
    )


def _variable_names(flow_set: FlowSet, loaded: LoadedFlow, channel: IvrChannel) -> list[str]:
    names = getattr(channel, "variable_names", None)
    if callable(names):
        return list(names())
    out = {"caller", "hotline", "flow", "last_key", *loaded.flow.variables}
    for f in flow_set.flows.values():
        for node in f.flow.nodes.values():
            if isinstance(node, SetNode):
                out.update(node.values)
            elif isinstance(node, CollectNode | MenuNode) and node.variable:
                out.add(node.variable)
    return sorted(n for n in out if channel.get(n) is not None)


async def run_survey(
    flow_set: FlowSet,
    flow_id: str,
    channel: IvrChannel,
    *,
    on_step: Callable[[Step], None] | None = None,
) -> SurveyResult | None:
    """Play the flow's satisfaction survey and return the caller's score (None: no answer).

    The engine calls this when the agent hangs up first and the caller is
    still on the line (``park_after_bridge`` kept the caller); afterwards it
    hangs up and stores the score with the CDR. A flow without a ``survey``
    returns None at once.
    """
    loaded = flow_set.flows.get(flow_id)
    if loaded is None or loaded.flow.survey is None:
        return None
    survey = loaded.flow.survey
    walk = _Walk(flow_set, channel, loaded, on_step)
    walk.flow_id, walk.node_id = flow_id, "survey"
    request = CollectRequest(
        prompt=walk.prompt(survey.prompt),
        min_digits=1,
        max_digits=1,
        terminators="",
        timeout=survey.timeout,
        inter_digit_timeout=survey.timeout,
    )
    scale = {str(n) for n in range(survey.min_score, survey.max_score + 1)}
    try:
        await walk.play(survey.greeting)
        key = await walk.attempts(
            request, survey.retries, lambda d: d in scale, survey.invalid_prompt, None
        )
        if key is not None:
            channel.set("survey_score", key)
            await walk.play(survey.thanks)
    except CallerHungUp:
        walk.step("action", "the caller hung up")
        key = None
    except ChannelError as exc:
        walk.step("error", str(exc))
        key = None
    log.debug(
        "survey finished",
        extra={"call": channel.uuid, "flow": flow_id, "score": key, "version": loaded.version},
    )
    if key is None:
        return None
    return SurveyResult(flow_id, loaded.version, int(key), survey.min_score, survey.max_score)


def node_of(flow: Flow, node_id: str) -> Node | None:
    """The node ``node_id`` of ``flow`` (for tools that show a trace)."""
    return flow.nodes.get(node_id)
