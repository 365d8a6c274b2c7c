"""The live channel: the interpreter's :class:`IvrChannel` on a FreeSWITCH channel.

Every operation is one ``execute`` on the caller's channel through the
:class:`~telephony.esl.port.SwitchPort` (``sendmsg`` with an Event-UUID; the
port returns the matching CHANNEL_EXECUTE_COMPLETE):

========================  =====================================================
interpreter asks          FreeSWITCH application
========================  =====================================================
play a file               ``playback <path>`` (``FILE PLAYED``)
play TTS text             ``speak <engine>|<voice>|<text>``
say a value               ``say <module> <TYPE> <method> <value>`` (mod_say)
collect digits            ``play_and_get_digits``, one try; the digits come back
                          as ``variable_<name>`` with ``variable_read_result``
record a voice message    ``record <path> <seconds> <silence> <hits>``
========================  =====================================================

The application arguments are built by the pure functions below; values
that could change their structure (a space inside a
``play_and_get_digits`` argument, a ``|`` inside TTS text, a line break
anywhere) raise :class:`telephony.esl.commands.UnsafeValue`, and
:mod:`telephony.esl.commands` frames the ``sendmsg`` itself.

``play_and_get_digits`` is asked for at least one digit with a permissive
pattern, so FreeSWITCH only fails on silence; length and pattern are
checked by the interpreter, which tells an invalid entry from a timeout
and plays the right prompt. Each attempt uses a fresh variable
(``ivr_in_<n>``) so a previous attempt's digits are never read again. A
TTS prompt inside ``play_and_get_digits`` uses the ``say:`` file prefix,
which speaks with the channel's ``tts_engine``/``tts_voice`` (set first).

A CHANNEL_EXECUTE_COMPLETE with ``Answer-State: hangup`` (``PLAYBACK
ERROR``), or :class:`~telephony.esl.port.EslChannelGone`, means the caller
hung up: :class:`CallerHungUp`. Any other port error is a
:class:`ChannelError`.

A voice message the switch cannot write. FreeSWITCH's ``record``
(mod_dptools ``record_function`` -> ``switch_ivr_record_file``,
src/switch_ivr_play_say.c) does not fail gracefully: when
``switch_core_file_open`` fails it hangs the channel up with
``DESTINATION_OUT_OF_ORDER`` itself, before any RECORD_START, and nothing
can be told to the citizen after that. So the channel asks first:
``cannot_record`` (the engine passes the node's latest recording probe of
the voice-message folder, :mod:`telephony.recording.probe`) gives the
reason when the probe found the folder unwritable, and the interpreter tells
the caller and goes to the node's fallback without running ``record``. If
``record`` fails anyway (the folder changed since the probe), the
completion shows it (``Hangup-Cause: DESTINATION_OUT_OF_ORDER``, no
``record_ms``): :class:`RecordingFailed` with ``hung_up``, so the result
still says the message failed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from zoneinfo import ZoneInfo

from telephony.esl import commands
from telephony.esl.messages import Event
from telephony.esl.port import EslChannelGone, EslError, SwitchPort
from telephony.ivr.interpreter import (
    CallerHungUp,
    ChannelError,
    CollectRequest,
    CollectResult,
    PromptSpec,
    Recording,
    RecordingFailed,
)

log = logging.getLogger(__name__)

#: mod_say's (type, method) for each ``kind`` of said value.
SAY_TYPES: Mapping[str, tuple[str, str]] = {
    "number": ("NUMBER", "pronounced"),
    "digits": ("NUMBER", "iterated"),
    "telephone": ("TELEPHONE_NUMBER", "iterated"),
    "currency": ("CURRENCY", "pronounced"),
    "date": ("CURRENT_DATE", "pronounced"),
    "time": ("CURRENT_TIME", "pronounced"),
}
_SAY_VALUE = re.compile(r"^[0-9A-Za-z.:+-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TOKEN_FORBIDDEN = (" ", "\t", "\r", "\n", "\0")
#: ``play_and_get_digits``' file argument when there is no prompt ("silence" is special).
NO_PROMPT = "silence"
#: Its invalid-input file: FreeSWITCH plays it after a failed try (here: silence only).
#: Not ``silence_stream://0``: a non-positive length is endless silence.
INVALID_FILE = "silence_stream://250"
DIGITS_PATTERN = r"^[0-9*#]+$"
BEEP = "tone_stream://%(500,0,800)"


def _token(value: str, what: str) -> str:
    """One space-separated argument: no whitespace, not empty."""
    if not value or any(c in value for c in _TOKEN_FORBIDDEN):
        raise commands.UnsafeValue(f"{what} must be one word without spaces: {value!r}")
    return value


def _name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise commands.UnsafeValue(f"invalid {what}: {value!r}")
    return value


def _text(value: str) -> str:
    if any(c in value for c in ("\r", "\n", "\0", "|")):
        raise commands.UnsafeValue(f"TTS text must not contain '|' or a line break: {value!r}")
    if not value.strip():
        raise commands.UnsafeValue("empty TTS text")
    return value


def media_app(prompt: PromptSpec) -> tuple[str, str]:
    """The application and argument that play ``prompt`` on its own."""
    if prompt.kind == "file":
        return "playback", _token(prompt.value, "prompt file")
    if prompt.kind == "tts":
        engine = _name(prompt.engine, "TTS engine")
        voice = _name(prompt.voice, "TTS voice")
        return "speak", f"{engine}|{voice}|{_text(prompt.value)}"
    say_type, method = SAY_TYPES[prompt.say_kind]
    if not _SAY_VALUE.match(prompt.value):
        raise commands.UnsafeValue(f"cannot say {prompt.value!r}")
    return "say", f"{_name(prompt.say_module, 'say module')} {say_type} {method} {prompt.value}"


def prompt_file(prompt: PromptSpec | None) -> str:
    """A prompt as a ``play_and_get_digits`` file argument (TTS: ``say:<text>``)."""
    if prompt is None:
        return NO_PROMPT
    if prompt.kind == "file":
        return _token(prompt.value, "prompt file")
    if prompt.kind == "tts":
        return "say:" + _token(_text(prompt.value), "TTS text of a digit prompt")
    raise commands.UnsafeValue("a `say` prompt cannot be a play_and_get_digits prompt")


def play_and_get_digits_arg(request: CollectRequest, variable: str) -> str:
    """``min max tries timeout terminators file invalid_file var regexp digit_timeout``."""
    terminators = request.terminators or "none"
    if not re.fullmatch(r"[0-9*#]{1,4}|none", terminators):
        raise commands.UnsafeValue(f"invalid terminators: {terminators!r}")
    parts = [
        "1",
        str(max(1, min(128, request.max_digits))),
        "1",
        str(int(request.timeout * 1000)),
        terminators,
        prompt_file(request.prompt),
        INVALID_FILE,
        _name(variable, "variable name"),
        DIGITS_PATTERN,
        str(int(request.inter_digit_timeout * 1000)),
    ]
    return " ".join(parts)


def record_arg(
    path: str, max_seconds: int, silence_threshold: int = 200, silence_s: int = 5
) -> str:
    """``record <path> <time limit> <silence threshold> <silence seconds>``."""
    return f"{_token(path, 'recording path')} {int(max_seconds)} {silence_threshold} {silence_s}"


def hung_up(event: Event) -> bool:
    """Whether an EXECUTE_COMPLETE says the channel was hung up meanwhile."""
    return event.get("Answer-State") == "hangup" or event.get("Channel-Call-State") == "HANGUP"


#: The cause ``switch_ivr_record_file`` hangs a channel up with when it cannot open the file.
RECORD_OPEN_FAILED = "DESTINATION_OUT_OF_ORDER"


def record_open_failed(event: Event) -> bool:
    """Whether a ``record`` completion says the switch could not open the file.

    The switch then hung the channel up (``DESTINATION_OUT_OF_ORDER``) without
    recording anything: no ``record_ms``/``record_seconds`` on the channel (they
    are set at RECORD_STOP, which never came).
    """
    return (
        hung_up(event)
        and (event.get("Hangup-Cause") or event.variable("hangup_cause")) == RECORD_OPEN_FAILED
        and event.variable("record_ms") is None
        and event.variable("record_seconds") is None
    )


class LiveChannel:
    """An :class:`~telephony.ivr.interpreter.IvrChannel` on one FreeSWITCH channel.

    ``path_for_switch`` turns a prompt's local path into the path FreeSWITCH
    sees (the flows folder is shared with the switch; by default the same
    path). ``voicemail_dir`` is where FreeSWITCH writes voice messages
    (``<dir>/<mailbox>-<uuid>.wav``; the folder must exist on the switch).
    ``blocked`` answers whether a number is blocked (the engine passes its
    blocked-numbers lookup). ``cannot_record`` says why a voice message cannot
    be recorded now (the node's recording probe), None when it can be tried.
    """

    def __init__(
        self,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str,
        timezone: str = "Asia/Shanghai",
        voicemail_dir: str = "/var/lib/freeswitch/recordings/voicemail",
        blocked: Callable[[str], Awaitable[bool]] | None = None,
        path_for_switch: Callable[[str], str] | None = None,
        command_timeout: float = 120.0,
        variables: Mapping[str, str] | None = None,
        cannot_record: Callable[[], str | None] | None = None,
    ) -> None:
        self.port = port
        self._uuid = commands.check_uuid(uuid)
        self._caller = caller
        self._hotline = hotline
        self._zone = ZoneInfo(timezone)
        self._voicemail_dir = voicemail_dir.rstrip("/")
        self._blocked = blocked
        self._path = path_for_switch or (lambda p: p)
        self._timeout = command_timeout
        self._vars: dict[str, str] = dict(variables or {})
        self._counter = itertools.count(1)
        self._tts: tuple[str, str] | None = None
        self._cannot_record = cannot_record

    @property
    def uuid(self) -> str:
        """The caller channel's uuid."""
        return self._uuid

    @property
    def caller(self) -> str:
        """The caller's number."""
        return self._caller

    @property
    def hotline(self) -> str:
        """The number the caller dialled."""
        return self._hotline

    def _local(self, prompt: PromptSpec) -> PromptSpec:
        if prompt.kind != "file":
            return prompt
        return PromptSpec("file", self._path(prompt.value), label=prompt.label)

    async def _execute(self, app: str, arg: str, timeout: float | None = None) -> Event:
        try:
            event = await self.port.execute(self._uuid, app, arg, timeout=timeout or self._timeout)
        except EslChannelGone as exc:
            raise CallerHungUp() from exc
        except (EslError, commands.UnsafeValue) as exc:
            raise ChannelError(f"{app}: {exc}") from exc
        if hung_up(event):
            raise CallerHungUp()
        return event

    async def play(self, prompt: PromptSpec) -> None:
        """Play a prompt to its end (see :class:`~telephony.ivr.interpreter.IvrChannel`)."""
        try:
            app, arg = media_app(self._local(prompt))
        except commands.UnsafeValue as exc:
            raise ChannelError(str(exc)) from exc
        await self._execute(app, arg)

    async def _use_tts(self, prompt: PromptSpec | None) -> None:
        if prompt is None or prompt.kind != "tts":
            return
        wanted = (prompt.engine, prompt.voice)
        if self._tts == wanted:
            return
        try:
            args = commands.setvar_multi(
                self._uuid, {"tts_engine": prompt.engine, "tts_voice": prompt.voice}
            )
            await self.port.api("uuid_setvar_multi", *args)
        except (EslError, commands.UnsafeValue) as exc:
            raise ChannelError(f"uuid_setvar_multi: {exc}") from exc
        self._tts = wanted

    async def collect(self, request: CollectRequest) -> CollectResult:
        """One attempt at collecting digits; ``""`` when nothing was pressed in time."""
        variable = f"ivr_in_{next(self._counter)}"
        local = CollectRequest(
            prompt=self._local(request.prompt) if request.prompt else None,
            min_digits=request.min_digits,
            max_digits=request.max_digits,
            terminators=request.terminators,
            timeout=request.timeout,
            inter_digit_timeout=request.inter_digit_timeout,
        )
        try:
            arg = play_and_get_digits_arg(local, variable)
        except commands.UnsafeValue as exc:
            raise ChannelError(str(exc)) from exc
        await self._use_tts(request.prompt)
        # The prompt may last long; the wait for keys is bounded by the timeouts.
        budget = self._timeout + request.timeout + request.inter_digit_timeout * request.max_digits
        event = await self._execute("play_and_get_digits", arg, timeout=budget)
        digits = event.variable(variable) or ""
        if event.variable("read_result") not in (None, "success"):
            digits = ""
        terminator = ""
        used = event.variable("read_terminator_used") or ""
        if digits and len(digits) < request.max_digits and used in request.terminators:
            terminator = used
        return CollectResult(digits, terminator)

    def cannot_record(self) -> str | None:
        """Why a voice message cannot be recorded (the node's last probe), or None."""
        return self._cannot_record() if self._cannot_record is not None else None

    async def record(self, mailbox: str, max_seconds: int, beep: bool) -> Recording | None:
        """Record a voice message for ``mailbox`` (see the module docstring for failures)."""
        reason = self.cannot_record()
        if reason is not None:
            raise RecordingFailed(reason)
        # One flat folder: `record` does not create missing folders on the switch.
        path = f"{self._voicemail_dir}/{_name(mailbox, 'mailbox')}-{self._uuid}.wav"
        try:  # the prompt says "press # to finish"
            await self.port.api(
                "uuid_setvar", *commands.setvar(self._uuid, "playback_terminators", "#")
            )
        except EslError as exc:
            raise ChannelError(f"uuid_setvar: {exc}") from exc
        if beep:
            await self._execute("playback", BEEP)
        try:
            event = await self.port.execute(
                self._uuid,
                "record",
                record_arg(path, max_seconds),
                timeout=self._timeout + max_seconds,
            )
        except EslChannelGone as exc:
            raise CallerHungUp() from exc
        except (EslError, commands.UnsafeValue) as exc:
            raise ChannelError(f"record: {exc}") from exc
        if record_open_failed(event):
            log.error(
                "the switch could not open the voice message file and hung up",
                extra={"call": self._uuid, "path": path},
            )
            raise RecordingFailed(
                f"the switch cannot write {self._voicemail_dir} (record hung up the call:"
                f" {RECORD_OPEN_FAILED})",
                hung_up=True,
            )
        if hung_up(event):
            raise CallerHungUp()
        seconds = event.variable("record_seconds")
        try:
            length = float(seconds) if seconds else None
        except ValueError:
            length = None
        log.info("voice message recorded", extra={"call": self._uuid, "path": path, "s": length})
        return Recording(path, length)

    async def is_blocked(self) -> bool:
        """Whether the caller's number is blocked."""
        if self._blocked is None:
            return False
        return await self._blocked(self._caller)

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        return dt.datetime.now(self._zone)

    def set(self, name: str, value: str) -> None:
        """Set a call variable."""
        self._vars[name] = value

    def get(self, name: str) -> str | None:
        """A call variable, or None."""
        return self._vars.get(name)

    def variable_names(self) -> list[str]:
        """Every variable of the call (the interpreter reports them all)."""
        return sorted(self._vars)
