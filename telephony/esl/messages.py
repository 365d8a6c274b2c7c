"""Typed, frozen ESL messages: what the codec turns bytes into.

One class per ``Content-Type`` FreeSWITCH sends on the Event Socket. Events
(``text/event-plain`` and ``text/event-json``) become :class:`Event`, whose
headers are already decoded (plain: split into lines first, then each value
URL-decoded; JSON: parsed by orjson), so no header value can contain a
forged header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ContentType(StrEnum):
    """The outer ``Content-Type`` values of the Event Socket."""

    AUTH_REQUEST = "auth/request"
    COMMAND_REPLY = "command/reply"
    API_RESPONSE = "api/response"
    EVENT_PLAIN = "text/event-plain"
    EVENT_JSON = "text/event-json"
    EVENT_XML = "text/event-xml"
    DISCONNECT_NOTICE = "text/disconnect-notice"
    RUDE_REJECTION = "text/rude-rejection"
    LOG_DATA = "log/data"


@dataclass(frozen=True, slots=True)
class Frame:
    """One outer ESL frame: its header block and the body its Content-Length counted."""

    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that do not form a valid frame; the parser skipped them and went on."""

    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """FreeSWITCH asks the client to authenticate."""


@dataclass(frozen=True, slots=True)
class CommandReply:
    """Reply to a command (``auth``, ``event``, ``filter``, ``sendmsg``, ``bgapi``...)."""

    reply_text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reply_text.startswith("+OK")

    @property
    def job_uuid(self) -> str | None:
        """For ``bgapi``: the job id FreeSWITCH accepted."""
        return self.headers.get("Job-UUID")


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """Body of an ``api`` command's response, verbatim (it may lack a trailing newline)."""

    body: str

    @property
    def ok(self) -> bool:
        return not self.body.startswith("-ERR") and not self.body.startswith("-USAGE")


@dataclass(frozen=True, slots=True)
class Event:
    """A FreeSWITCH event with decoded headers and an optional body (BACKGROUND_JOB's result)."""

    headers: Mapping[str, str]
    body: str | None = None

    @property
    def name(self) -> str:
        """``Event-Name``; for CUSTOM events the ``Event-Subclass`` (e.g. ``sofia::register``)."""
        name = self.headers.get("Event-Name", "")
        if name == "CUSTOM":
            return self.headers.get("Event-Subclass", name)
        return name

    def get(self, header: str, default: str | None = None) -> str | None:
        return self.headers.get(header, default)

    def variable(self, name: str) -> str | None:
        """A channel variable carried by the event (``variable_<name>``)."""
        return self.headers.get("variable_" + name)

    @property
    def unique_id(self) -> str | None:
        return self.headers.get("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self.headers.get("Job-UUID")

    @property
    def application_uuid(self) -> str | None:
        """The ``Event-UUID`` the controller sent with ``sendmsg`` execute."""
        return self.headers.get("Application-UUID")

    @property
    def application(self) -> str | None:
        return self.headers.get("Application")

    @property
    def application_data(self) -> str | None:
        return self.headers.get("Application-Data")

    @property
    def application_response(self) -> str | None:
        return self.headers.get("Application-Response")

    @property
    def hangup_cause(self) -> str | None:
        return self.headers.get("Hangup-Cause")

    @property
    def channel_state(self) -> str | None:
        return self.headers.get("Channel-State")

    @property
    def call_state(self) -> str | None:
        return self.headers.get("Channel-Call-State")


@dataclass(frozen=True, slots=True)
class DisconnectNotice:
    """FreeSWITCH is closing the socket (or, with ``linger``, will close it later)."""

    headers: Mapping[str, str]
    body: str = ""

    @property
    def linger(self) -> bool:
        return self.headers.get("Content-Disposition") == "linger"


@dataclass(frozen=True, slots=True)
class RudeRejection:
    """The connection was refused by the event socket's ACL."""

    body: str


@dataclass(frozen=True, slots=True)
class LogData:
    """A log line (``log`` subscription)."""

    headers: Mapping[str, str]
    body: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed frame of a Content-Type this codec does not model."""

    content_type: str
    headers: Mapping[str, str]
    body: bytes


Message = (
    AuthRequest
    | CommandReply
    | ApiResponse
    | Event
    | DisconnectNotice
    | RudeRejection
    | LogData
    | Unknown
)


def failure_cause(reply: str) -> str | None:
    """The cause of a failed ``originate`` from its job body (``-ERR USER_BUSY`` ->
    ``USER_BUSY``, ``UNKNOWN`` when it names none); None when it succeeded (``+OK``)."""
    if reply.startswith("+OK"):
        return None
    return reply.removeprefix("-ERR").strip() or "UNKNOWN"
