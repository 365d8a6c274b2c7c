"""Sans-IO parsing of the Event Socket byte stream.

Theory of operation
-------------------
An ESL frame is a header block (``Name: value`` lines ended by an empty
line) optionally followed by exactly ``Content-Length`` bytes of body. The
body of a ``text/event-plain`` frame is itself a header block (URL-encoded
values) with an optional inner ``Content-Length`` body; a
``text/event-json`` body is one JSON object.

:class:`FrameParser` is fed bytes as they arrive, split anywhere, and yields
:class:`Frame` objects, or :class:`Malformed` for bytes that cannot be a
frame (they are skipped, and parsing goes on with the next frame). It never
raises on input and never waits for more bytes than a frame announced.
:func:`decode` turns a frame into a typed message.

The same framing carries the client's commands to a server (the simulator):
:class:`CommandParser` yields :class:`Command` objects, whose first line is
the command and whose further lines are headers.

Event header values are decoded *after* the body is split into lines, so an
encoded newline (``%0A``) in a caller-controlled value stays inside that
value (greenswitch decodes first and splits afterwards, which lets a
caller-ID name forge ``Unique-ID``).

Bytes that are not UTF-8 never cost an event: a caller-ID name in GBK or
Latin-1 is decoded with each invalid sequence replaced by U+FFFD, in JSON
bodies (orjson refuses them, so the body is repaired and parsed again) and
in plain values alike (``%C0%EE`` is URL-decoded to bytes, then read as
UTF-8 with replacement). A lost CHANNEL_PARK is dead air for a caller and a
lost CHANNEL_HANGUP_COMPLETE a ghost call, so a mangled display name is the
lesser harm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

import orjson

from telephony.esl.messages import (
    ApiResponse,
    AuthRequest,
    CommandReply,
    ContentType,
    DisconnectNotice,
    Event,
    Frame,
    LogData,
    Malformed,
    Message,
    RudeRejection,
    Unknown,
)

#: The subscription format this codec decodes fastest, measured by
#: ``tests/bench/test_esl_throughput.py`` on the hotline trace: ``event json`` (orjson)
#: is about 3.5 times faster than ``event plain`` (line split + URL-decoding).
PREFERRED_EVENT_FORMAT: Literal["plain", "json"] = "json"

#: A header block longer than this without its ending blank line is not ESL.
MAX_HEADER_BLOCK = 256 * 1024
#: Largest body accepted (``show channels as json`` with thousands of rows stays far below).
MAX_BODY = 64 * 1024 * 1024


class FrameParser:
    """Incremental parser of FreeSWITCH's output: bytes in, frames out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._headers: dict[str, str] | None = None
        self._length = 0
        # A malformed header block that still declares its Content-Length: its body is
        # skipped (and reported with it), or the body would be read as the next header
        # block and, with JSON bodies that end without a newline, every later frame lost.
        self._bad_block = b""
        self._bad_reason = ""

    def feed(self, data: bytes) -> None:
        """Add received bytes; call :meth:`frames` to take what is complete."""
        if self._pos and self._pos > len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def frames(self) -> Iterator[Frame | Malformed]:
        """Yield every frame complete in the buffer, in order."""
        buf = self._buf
        while True:
            if self._headers is None:
                end = buf.find(b"\n\n", self._pos)
                if end < 0:
                    pending = len(buf) - self._pos
                    if pending > MAX_HEADER_BLOCK:
                        raw = bytes(buf[self._pos :])
                        self._pos = len(buf)
                        yield Malformed("header block too long", raw)
                    return
                block = bytes(buf[self._pos : end])
                self._pos = end + 2
                if not block.strip(b"\n"):
                    continue  # stray blank lines between frames
                headers, error = _parse_header_block(block, decode_values=True)
                length_text: str | None
                if error:
                    declared = _declared_length(block)
                    if declared is None:
                        yield Malformed(error, block)
                        continue
                    self._bad_block, self._bad_reason = block, error
                    headers, length_text = {}, str(declared)
                else:
                    length_text = headers.get("Content-Length")
                if length_text is None:
                    yield Frame(headers)
                    continue
                if not length_text.isdigit() or int(length_text) > MAX_BODY:
                    yield Malformed(f"bad Content-Length {length_text!r}", block)
                    continue
                self._headers = headers
                self._length = int(length_text)
            if len(buf) - self._pos < self._length:
                return
            body = bytes(buf[self._pos : self._pos + self._length])
            self._pos += self._length
            headers, self._headers = self._headers, None
            if self._bad_reason:
                reason, self._bad_reason = self._bad_reason, ""
                raw, self._bad_block = self._bad_block + b"\n\n" + body, b""
                yield Malformed(reason, raw)
                continue
            yield Frame(headers, body)


_DECLARED_LENGTH = re.compile(rb"^Content-Length: ?([0-9]{1,10})[ \r]*$", re.MULTILINE)


def _declared_length(block: bytes) -> int | None:
    """The Content-Length a malformed header block still declares, if it is usable."""
    match = _DECLARED_LENGTH.search(block)
    if match is None:
        return None
    length = int(match.group(1))
    return length if length <= MAX_BODY else None


@dataclass(frozen=True, slots=True)
class Command:
    """One client command as a server reads it: ``sendmsg <uuid>`` plus its headers."""

    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def name(self) -> str:
        return self.line.split(" ", 1)[0].lower()

    @property
    def arg(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""


class CommandParser:
    """Incremental parser of a client's commands (for the simulator's side of the socket)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: Command | None = None
        self._length = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def commands(self) -> Iterator[Command | Malformed]:
        buf = self._buf
        while True:
            if self._pending is None:
                # Clients may end a command with "\n\n" or "\r\n\r\n".
                end, sep = _find_blank_line(buf)
                if end < 0:
                    if len(buf) > MAX_HEADER_BLOCK:
                        raw = bytes(buf)
                        del buf[:]
                        yield Malformed("command too long", raw)
                    return
                block = bytes(buf[:end]).replace(b"\r\n", b"\n")
                del buf[: end + sep]
                lines = block.strip(b"\n").split(b"\n")
                if not lines or not lines[0].strip():
                    continue
                try:
                    line = lines[0].decode("utf-8").strip()
                except UnicodeDecodeError:
                    yield Malformed("command is not UTF-8", block)
                    continue
                headers, error = _parse_header_block(b"\n".join(lines[1:]), decode_values=False)
                if error:
                    yield Malformed(error, block)
                    continue
                length_text = headers.get("Content-Length") or headers.get("content-length")
                command = Command(line, headers)
                if not length_text:
                    yield command
                    continue
                if not length_text.isdigit() or int(length_text) > MAX_BODY:
                    yield Malformed(f"bad Content-Length {length_text!r}", block)
                    continue
                self._pending, self._length = command, int(length_text)
            if len(buf) < self._length:
                return
            body = bytes(buf[: self._length])
            del buf[: self._length]
            pending, self._pending = self._pending, None
            yield Command(pending.line, pending.headers, body)


def _find_blank_line(buf: bytearray) -> tuple[int, int]:
    lf = buf.find(b"\n\n")
    crlf = buf.find(b"\r\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2


def _parse_header_block(block: bytes, *, decode_values: bool) -> tuple[dict[str, str], str]:
    """Parse ``Name: value`` lines; returns (headers, error text or "").

    FreeSWITCH's header blocks (``decode_values``) are read with invalid UTF-8
    replaced: a reply lost to one odd byte would pair every later reply with
    the wrong command. A client's command block (the simulator's side) must
    be UTF-8.
    """
    if decode_values:
        text = block.decode("utf-8", errors="replace")
    else:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return {}, "header block is not UTF-8"
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return {}, f"not a header line: {line[:80]!r}"
        value = value[1:] if value.startswith(" ") else value
        if decode_values and "%" in value:
            value = unquote(value)
        headers[name] = value
    return headers, ""


_HEX_DIGITS = "0123456789abcdefABCDEF"
#: ``"3A"`` -> ``":"``: every two-digit escape (either case) to the byte it stands for, as a char.
_ESCAPES = {a + b: chr(int(a + b, 16)) for a in _HEX_DIGITS for b in _HEX_DIGITS}


def _unquote(value: str) -> str:
    """``urllib.parse.unquote`` for one header value, about three times faster.

    FreeSWITCH's values are ASCII (it escapes every non-ASCII byte), so each
    escape becomes one latin-1 character, and a value that used escapes above
    ``%7F`` is re-read as UTF-8 at the end. Invalid escapes stay as they are.
    """
    if not value.isascii():
        return unquote(value)
    first, *rest = value.split("%")
    get = _ESCAPES.get
    text = first + "".join([get(p[:2], "%" + p[:2]) + p[2:] for p in rest])
    if text.isascii():
        return text
    return text.encode("latin-1").decode("utf-8", errors="replace")


def _unquote_values(values: list[str]) -> list[str]:
    """URL-decode many values at once (values already split from their lines).

    The fast path joins the values with a separator that no escape can
    produce (U+E000; an escape yields at most U+00FF), turns ``%XX`` into
    ``\\xXX`` and lets the C ``unicode_escape`` codec decode everything in
    one pass. Anything unusual (non-ASCII input, an invalid escape) takes the
    value-by-value path, which has the same result.
    """
    joined = "\n".join(values)
    if "%" not in joined:
        return values
    if joined.isascii():
        escaped = joined.replace("\\", "\\\\").replace("%", "\\x").replace("\n", "\\ue000")
        try:
            decoded = escaped.encode("ascii").decode("unicode_escape")
        except UnicodeDecodeError:
            pass
        else:
            out = decoded.split("\ue000")
            if decoded.isascii():
                return out
            return [
                v if v.isascii() else v.encode("latin-1").decode("utf-8", errors="replace")
                for v in out
            ]
    return [_unquote(v) if "%" in v else v for v in values]


def parse_event_plain(body: bytes) -> Event:
    """Decode a ``text/event-plain`` body: lines first, then each value URL-decoded."""
    split = body.find(b"\n\n")
    head = body if split < 0 else body[:split]
    names: list[str] = []
    values: list[str] = []
    for line in head.decode("utf-8", errors="replace").split("\n"):
        name, sep, value = line.partition(": ")
        if sep:
            names.append(name)
            values.append(value)
    headers = dict(zip(names, _unquote_values(values), strict=True))
    inner: str | None = None
    length = headers.get("Content-Length")
    if length is not None and split >= 0:
        raw = body[split + 2 :]
        n = int(length) if length.isdigit() else len(raw)
        inner = raw[:n].decode("utf-8", errors="replace")
    return Event(headers, inner)


_STR_ONLY = frozenset({str})


def parse_event_json(body: bytes) -> Event:
    """Decode a ``text/event-json`` body; ``_body`` becomes the event body.

    FreeSWITCH's JSON (cJSON) passes a value's bytes through as they came: a
    caller-ID name in GBK (``b"\\xc0\\xee\\xc4\\xc8"``) is not UTF-8, and orjson
    refuses the whole document. The event is still decoded: the body is read
    as UTF-8 with each invalid byte sequence replaced by U+FFFD and parsed
    again. Replacement never touches an ASCII byte (quotes, braces, escapes),
    so the JSON structure and every other header stay exactly as sent.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        if body.isascii():
            raise  # not JSON, and no byte to repair
        data = orjson.loads(body.decode("utf-8", errors="replace"))
    if not isinstance(data, dict):
        raise ValueError("event JSON is not an object")
    inner = data.pop("_body", None)
    headers: dict[str, str] = data
    if not _STR_ONLY.issuperset(map(type, data.values())):  # C-speed check of ~160 values
        headers = {
            k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in data.items()
        }
    return Event(headers, inner if isinstance(inner, str) else None)


def decode(frame: Frame) -> Message | Malformed:
    """Turn a frame into a typed message; a body that cannot be decoded gives :class:`Malformed`."""
    ctype = frame.content_type
    try:
        if ctype == ContentType.EVENT_PLAIN:
            return parse_event_plain(frame.body)
        if ctype == ContentType.EVENT_JSON:
            return parse_event_json(frame.body)
        if ctype == ContentType.COMMAND_REPLY:
            return CommandReply(frame.headers.get("Reply-Text", ""), frame.headers)
        if ctype == ContentType.API_RESPONSE:
            return ApiResponse(frame.body.decode("utf-8", errors="replace"))
        if ctype == ContentType.AUTH_REQUEST:
            return AuthRequest()
        if ctype == ContentType.DISCONNECT_NOTICE:
            return DisconnectNotice(frame.headers, frame.body.decode("utf-8", errors="replace"))
        if ctype == ContentType.RUDE_REJECTION:
            return RudeRejection(frame.body.decode("utf-8", errors="replace"))
        if ctype == ContentType.LOG_DATA:
            return LogData(frame.headers, frame.body.decode("utf-8", errors="replace"))
    except (ValueError, orjson.JSONDecodeError) as exc:
        return Malformed(f"{ctype}: {exc}", frame.body)
    return Unknown(ctype, frame.headers, frame.body)


class Decoder:
    """Bytes in, typed messages out: :class:`FrameParser` followed by :func:`decode`."""

    def __init__(self) -> None:
        self._frames = FrameParser()

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def messages(self) -> Iterator[Message | Malformed]:
        for frame in self._frames.frames():
            yield frame if isinstance(frame, Malformed) else decode(frame)
