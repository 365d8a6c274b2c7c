"""Readers for the real FreeSWITCH traces under ``shared/freeswitch``.

Files (see ``shared/freeswitch/README.md``):

* ``traces/NAME.txt``: every byte FreeSWITCH sent, verbatim;
* ``traces/NAME.sent.txt``: every byte the client sent;
* ``traces/NAME.annotated.txt``: both directions in time order. Each chunk is
  preceded by ``##### RECV|SENT +<sec> <n> bytes #####`` and followed by a blank
  line (a chunk that does not end in a newline gets one more ``\\n``, checked
  against the traces themselves); ``##### NOTE +<sec> text #####`` lines are the
  capturing controller's notes, not wire data.

A :class:`Session` is what one ESL connection saw: the frames received (each
tagged with the number of client commands sent before it was complete) and the
commands sent. The same :class:`SessionRecorder` builds sessions from a trace
file and from a live connection to the simulator, so both sides are compared
through one model.

Legs are named A, B, C... in order of the first ``CHANNEL_CREATE`` of their
``Unique-ID`` (then, for uuids never created on this connection, in order of
first appearance, unless ``known_legs`` names them, as for the second
connection of ``controller_restart``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from telephony.esl.messages import (
    ApiResponse,
    CommandReply,
    Event,
    Frame,
    Malformed,
    Message,
)
from telephony.esl.parser import Command, CommandParser, FrameParser, decode

#: The shared FreeSWITCH material (README, traces, timelines), relative to this repository.
FREESWITCH_DIR: Final = Path(__file__).resolve().parents[2] / ".." / "shared" / "freeswitch"
TRACES_DIR: Final = FREESWITCH_DIR / "traces"

UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MARKER = re.compile(rb"##### (RECV|SENT|NOTE) \+([0-9]+(?:\.[0-9]+)?) (.*?) #####\n")

Direction = Literal["RECV", "SENT", "NOTE"]


class TraceFormatError(ValueError):
    """An annotated trace that does not follow the documented layout."""


def traces_available() -> bool:
    """True when the shared trace folder exists (tests skip otherwise)."""
    return TRACES_DIR.is_dir()


def trace_names() -> list[str]:
    """Every ``NAME`` with a ``NAME.txt`` (bytes received from FreeSWITCH)."""
    if not traces_available():
        return []
    return sorted(
        p.name.removesuffix(".txt")
        for p in TRACES_DIR.glob("*.txt")
        if not p.name.endswith((".sent.txt", ".annotated.txt"))
    )


def read_received(name: str) -> bytes:
    """``NAME.txt``: the bytes FreeSWITCH sent."""
    return (TRACES_DIR / f"{name}.txt").read_bytes()


def read_sent(name: str) -> bytes:
    """``NAME.sent.txt``: the bytes the client sent."""
    return (TRACES_DIR / f"{name}.sent.txt").read_bytes()


def parse_frames(data: bytes) -> tuple[list[Frame | Malformed], int]:
    """All frames of a byte stream fed at once, and the count of leftover (unparsed) bytes."""
    parser = FrameParser()
    parser.feed(data)
    frames = list(parser.frames())
    return frames, parser.buffered


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of an annotated trace: a TCP read/write or a note."""

    direction: Direction
    t: float
    data: bytes

    @property
    def note(self) -> str:
        return self.data.decode("utf-8", errors="replace") if self.direction == "NOTE" else ""


def parse_annotated(data: bytes) -> list[Chunk]:
    """Split an annotated trace into its chunks, strictly (byte counts are honoured)."""
    chunks: list[Chunk] = []
    pos = 0
    while pos < len(data):
        m = _MARKER.match(data, pos)
        if not m:
            raise TraceFormatError(f"no chunk marker at byte {pos}: {data[pos : pos + 60]!r}")
        direction = m.group(1).decode()
        t = float(m.group(2))
        rest = m.group(3)
        pos = m.end()
        if direction == "NOTE":
            chunks.append(Chunk("NOTE", t, rest))
            sep = b"\n"
        else:
            count, _, unit = rest.partition(b" ")
            if unit != b"bytes" or not count.isdigit():
                raise TraceFormatError(f"bad chunk marker {m.group(0)!r}")
            size = int(count)
            body = data[pos : pos + size]
            if len(body) != size:
                raise TraceFormatError(f"chunk at byte {pos} is truncated")
            pos += size
            chunks.append(Chunk("RECV" if direction == "RECV" else "SENT", t, body))
            sep = b"\n" if body.endswith(b"\n") else b"\n\n"
        if data[pos : pos + len(sep)] != sep:
            raise TraceFormatError(f"expected {sep!r} after the chunk ending at byte {pos}")
        pos += len(sep)
    return chunks


def read_annotated(name: str) -> list[Chunk]:
    """``NAME.annotated.txt`` as chunks, in time order."""
    return parse_annotated((TRACES_DIR / f"{name}.annotated.txt").read_bytes())


def split_commands(data: bytes) -> tuple[list[bytes], bytes]:
    """Split client bytes into whole commands (each with its ending blank line), and the rest.

    The control-plane sessions send no command bodies; a ``Content-Length``
    header would make this split wrong, so it is refused.
    """
    commands: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\n\n", pos)
        if end < 0:
            return commands, data[pos:]
        raw = data[pos : end + 2]
        if b"\ncontent-length:" in raw.lower():
            raise TraceFormatError("commands with a body are not supported here")
        commands.append(raw)
        pos = end + 2


def parse_command(raw: bytes) -> Command:
    """One raw client command as the simulator's :class:`CommandParser` reads it."""
    parser = CommandParser()
    parser.feed(raw)
    parsed = list(parser.commands())
    if len(parsed) != 1 or not isinstance(parsed[0], Command):
        raise TraceFormatError(f"not one command: {raw[:80]!r}")
    return parsed[0]


@dataclass(frozen=True, slots=True)
class Sent:
    """One client command."""

    index: int
    t: float
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8").rstrip("\n")

    @property
    def line(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def name(self) -> str:
        """``api``/``bgapi`` plus their command (``api uuid_bridge``); else the first word."""
        words = self.line.split()
        if not words:
            return ""
        if words[0] in ("api", "bgapi") and len(words) > 1:
            return f"{words[0]} {words[1]}"
        return words[0]


@dataclass(frozen=True, slots=True)
class Received:
    """One frame received, with the number of commands sent before it was complete."""

    index: int
    t: float
    frame: Frame | Malformed
    message: Message | Malformed
    after_command: int

    @property
    def event(self) -> Event | None:
        return self.message if isinstance(self.message, Event) else None

    @property
    def is_reply(self) -> bool:
        return isinstance(self.message, CommandReply | ApiResponse)


def leg_aliases() -> Iterator[str]:
    """A, B, ... Z, then AA, AB, ..."""
    yield from string.ascii_uppercase
    for first in string.ascii_uppercase:
        for second in string.ascii_uppercase:
            yield first + second


@dataclass
class Session:
    """What one ESL connection saw: frames received and commands sent, in order."""

    name: str
    received: list[Received] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    known_legs: dict[str, str] = field(default_factory=dict)
    #: The received bytes as read, each with the number of commands sent before it.
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    #: Bytes received that are not (yet) a whole frame.
    leftover: int = 0

    # -- derived views -------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        return [r.message for r in self.received if isinstance(r.message, Event)]

    @property
    def legs(self) -> dict[str, str]:
        """uuid -> alias (A, B, ...): first by CHANNEL_CREATE order, then by first appearance."""
        legs = dict(self.known_legs)
        names = leg_aliases()
        used = set(legs.values())

        def fresh() -> str:
            for alias in names:
                if alias not in used:
                    used.add(alias)
                    return alias
            raise AssertionError("unreachable")

        for event in self.events:
            uid = event.unique_id
            if event.name == "CHANNEL_CREATE" and uid and uid not in legs:
                legs[uid] = fresh()
        for event in self.events:
            uid = event.unique_id
            if uid and uid not in legs:
                legs[uid] = fresh()
        return legs

    def leg_key(self, event: Event, legs: Mapping[str, str] | None = None) -> str:
        """The stream an event belongs to: a leg alias, ``job:<uuid>``, ``sofia:<user>``..."""
        legs = self.legs if legs is None else legs
        uid = event.unique_id
        if uid:
            return legs.get(uid, uid)
        if event.name == "BACKGROUND_JOB":
            return f"job:{event.job_uuid}"
        if event.name.startswith("sofia::"):
            user = event.get("from-user") or event.get("user") or "?"
            return f"sofia:{user}"
        return f"core:{event.name}"

    def per_leg(self) -> dict[str, list[Event]]:
        """Events grouped by :meth:`leg_key`, each group in arrival order (jobs excluded)."""
        legs = self.legs
        out: dict[str, list[Event]] = {}
        for event in self.events:
            if event.name == "BACKGROUND_JOB":
                continue
            out.setdefault(self.leg_key(event, legs), []).append(event)
        return out

    def jobs(self) -> dict[str, Event]:
        """BACKGROUND_JOB events by Job-UUID."""
        return {e.job_uuid or "": e for e in self.events if e.name == "BACKGROUND_JOB"}

    def replies(self) -> list[tuple[Sent, Received | None]]:
        """Each command with its reply (ESL answers commands in order on one connection)."""
        replies = [r for r in self.received if r.is_reply]
        return [(cmd, replies[i] if i < len(replies) else None) for i, cmd in enumerate(self.sent)]

    def labels(self) -> dict[str, str]:
        """uuid -> label for :func:`shape`: leg aliases, then client-sent uuids as ``sent#n``."""
        labels = {uid: f"leg {alias}" for uid, alias in self.legs.items()}
        n = 0
        for cmd in self.sent:
            for uid in UUID_RE.findall(cmd.text):
                if uid not in labels:
                    n += 1
                    labels[uid] = f"sent#{n}"
        return labels

    def seen_before(self, command_index: int) -> dict[str, int]:
        """Per stream (leg, job, replies): items received before command ``command_index``."""
        legs = self.legs
        counts: dict[str, int] = {}
        for r in self.received:
            if r.after_command > command_index:
                break
            event = r.event
            if event is not None:
                key = self.leg_key(event, legs)
                counts[key] = counts.get(key, 0) + 1
            elif r.is_reply:
                counts["replies"] = counts.get("replies", 0) + 1
        return counts

    def counts(self) -> dict[str, int]:
        """Per stream, how many items arrived in total (see :meth:`seen_before`)."""
        return self.seen_before(len(self.sent) + 1)


class SessionRecorder:
    """Builds a :class:`Session` from bytes as they are received and commands as they are sent."""

    def __init__(self, name: str, known_legs: Mapping[str, str] | None = None) -> None:
        self.session = Session(name, known_legs=dict(known_legs or {}))
        self._parser = FrameParser()
        self._pending_sent = b""

    def on_sent(self, data: bytes, t: float) -> None:
        """Record bytes the client sent (whole commands or pieces of them)."""
        commands, self._pending_sent = split_commands(self._pending_sent + data)
        for raw in commands:
            self.session.sent.append(Sent(len(self.session.sent), t, raw))

    def on_received(self, data: bytes, t: float) -> list[Received]:
        """Record bytes received; returns the frames they completed."""
        self.session.chunks.append((len(self.session.sent), data))
        self._parser.feed(data)
        out: list[Received] = []
        for frame in self._parser.frames():
            message = frame if isinstance(frame, Malformed) else decode(frame)
            item = Received(len(self.session.received), t, frame, message, len(self.session.sent))
            self.session.received.append(item)
            out.append(item)
        self.session.leftover = self._parser.buffered
        return out

    @property
    def leftover(self) -> int:
        return self._parser.buffered


def load_session(name: str, known_legs: Mapping[str, str] | None = None) -> Session:
    """The session of ``NAME.annotated.txt``."""
    recorder = SessionRecorder(name, known_legs)
    for chunk in read_annotated(name):
        if chunk.direction == "RECV":
            recorder.on_received(chunk.data, chunk.t)
        elif chunk.direction == "SENT":
            recorder.on_sent(chunk.data, chunk.t)
    return recorder.session


def notes(name: str) -> list[Chunk]:
    """The capturing controller's notes of one annotated trace."""
    return [c for c in read_annotated(name) if c.direction == "NOTE"]
