"""A channel without a switch: scripted keys and a fixed clock, for ``ivr simulate`` and tests.

The script is one entry per collect attempt (menu, collect or survey), in
order: ``"1"``, ``"110101199001011234#"``. An empty entry is a timeout
(the caller pressed nothing); when the script runs out every further
attempt times out. Keys after a terminator, or beyond the attempt's
maximum length, are dropped (as the switch would ignore them for that
attempt).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from telephony.ivr.interpreter import (
    CallerHungUp,
    CollectRequest,
    CollectResult,
    PromptSpec,
    Recording,
)


def parse_digits(script: str) -> list[str]:
    """``"1,,2,3#"`` -> ``["1", "", "2", "3#"]`` (``t`` or ``timeout`` also mean no key)."""
    if not script:
        return []
    out = []
    for entry in script.split(","):
        entry = entry.strip()
        out.append("" if entry.lower() in ("t", "timeout", "-") else entry)
    return out


class SimulatedChannel:
    """An :class:`~telephony.ivr.interpreter.IvrChannel` that plays nothing and reads a script.

    ``hang_up_after`` makes the caller hang up at that collect attempt
    (0-based), to test the caller leaving mid-flow. ``voicemail_fails`` makes
    every voice message fail with that reason. ``played`` lists every
    prompt, ``requests`` every collect attempt, for tests.
    """

    def __init__(
        self,
        digits: Iterable[str] = (),
        *,
        at: dt.datetime | None = None,
        caller: str = "13800138000",
        hotline: str = "12345",
        blocked: bool = False,
        uuid: str = "sim-0001",
        hang_up_after: int | None = None,
        voicemail_seconds: float = 12.0,
        voicemail_fails: str | None = None,
    ) -> None:
        self._script = list(digits)
        self._at = at or dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        if self._at.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware time")
        self._caller = caller
        self._hotline = hotline
        self._blocked = blocked
        self._uuid = uuid
        self._hang_up_after = hang_up_after
        self._voicemail_seconds = voicemail_seconds
        self._voicemail_fails = voicemail_fails
        self.variables: dict[str, str] = {}
        self.played: list[PromptSpec] = []
        self.requests: list[CollectRequest] = []
        self.recordings: list[Recording] = []

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

    async def play(self, prompt: PromptSpec) -> None:
        """Play a prompt to its end (see :class:`~telephony.ivr.interpreter.IvrChannel`)."""
        self.played.append(prompt)

    async def collect(self, request: CollectRequest) -> CollectResult:
        """One attempt at collecting digits; ``""`` when nothing was pressed in time."""
        attempt = len(self.requests)
        self.requests.append(request)
        if request.prompt is not None:
            self.played.append(request.prompt)
        if self._hang_up_after is not None and attempt >= self._hang_up_after:
            raise CallerHungUp()
        entry = self._script.pop(0) if self._script else ""
        digits, terminator = "", ""
        for key in entry:
            if key in request.terminators:
                terminator = key
                break
            digits += key
            if len(digits) >= request.max_digits:
                break
        return CollectResult(digits, terminator)

    async def record(self, mailbox: str, max_seconds: int, beep: bool) -> Recording | None:
        """Record a voice message for ``mailbox``."""
        recording = Recording(
            f"voicemail/{mailbox}/{self._uuid}.wav", min(self._voicemail_seconds, max_seconds)
        )
        self.recordings.append(recording)
        return recording

    def cannot_record(self) -> str | None:
        """``voicemail_fails``: the reason a voice message cannot be recorded (None: it can)."""
        return self._voicemail_fails

    async def is_blocked(self) -> bool:
        """Whether the caller's number is blocked."""
        return self._blocked

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        return self._at

    def set(self, name: str, value: str) -> None:
        """Set a call variable."""
        self.variables[name] = value

    def get(self, name: str) -> str | None:
        """A call variable, or None."""
        return self.variables.get(name)

    def variable_names(self) -> list[str]:
        """Every variable set during the call (the interpreter reports them all)."""
        return sorted(self.variables)

    @property
    def remaining(self) -> list[str]:
        """Script entries not consumed."""
        return list(self._script)
