"""The switch port: what the domain may ask of a FreeSWITCH node, with no gevent in sight.

The domain depends on :class:`SwitchPort` (a ``Protocol``) and on the plain
types here; :class:`telephony.esl.transport.EslConnection` implements it over
greenswitch, and test doubles (or the simulator's in-process driver) can
implement it without a socket.

Failure vocabulary (every call has a timeout and ends in one of these, or
returns):

* :class:`EslTimeout` - no answer in time. The command may still run on the
  switch; the connection keeps the reply slot so later replies stay matched.
* :class:`EslDisconnected` - the node's connection was lost or closed before
  the answer. ``sent`` says whether the command may have reached FreeSWITCH:
  when ``False`` it certainly did not, and the caller may send it again; when
  ``True`` nothing is known (an ``originate`` may be running) and nothing is
  retried automatically - the engine re-adopts channels after the reconnect.
* :class:`EslCommandError` - FreeSWITCH answered ``-ERR ...`` (``reply``
  holds the text).
* :class:`EslChannelGone` - an ``execute`` whose channel reached
  CHANNEL_HANGUP_COMPLETE or CHANNEL_DESTROY without the application's
  CHANNEL_EXECUTE_COMPLETE.
* :class:`EslAuthError` / :class:`EslConnectError` - connecting failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

from telephony.esl.messages import ApiResponse, Event

DEFAULT_URL = "esl://:ClueCon@127.0.0.1:8021"
DEFAULT_PORT = 8021
DEFAULT_PASSWORD = "ClueCon"

EventFormat = Literal["plain", "json"]

#: The events the call-center engine uses (the capture sessions' subscription).
DEFAULT_EVENTS: tuple[str, ...] = (
    "CHANNEL_CREATE",
    "CHANNEL_PARK",
    "CHANNEL_ANSWER",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "DTMF",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "RECORD_START",
    "RECORD_STOP",
    "BACKGROUND_JOB",
    "CHANNEL_ORIGINATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "sofia::register",
    "sofia::unregister",
    "sofia::expire",
    "conference::maintenance",
)


#: What the call engine reads: parks, bridges, ends, recordings, and what the IVR's
#: reaction timer (DTMF -> the CHANNEL_EXECUTE of the next prompt) and the connection
#: itself need. Every event subscribed costs a parse on the control plane: at 125 calls/s
#: the broad list above is 60-80 events a call (PLAYBACK_START alone was 3 an IVR call).
ENGINE_EVENTS: tuple[str, ...] = (
    "CHANNEL_PARK",
    "CHANNEL_BRIDGE",
    "CHANNEL_EXECUTE",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "RECORD_START",
    "RECORD_STOP",
)

#: Dialplan applications whose CHANNEL_EXECUTE/_COMPLETE nobody here reads (the
#: dialplan's own ``set``/``export`` lines, most of a call's events): filtered out by
#: the switch itself (``filter Application -set``, mod_event_socket's negative filter).
DIALPLAN_APPLICATIONS: tuple[str, ...] = (
    "set",
    "export",
    "unset",
    "multiset",
    "log",
    "hash",
    "park",  # the dialplan's park: the engine reads CHANNEL_PARK and moves calls with uuid_park
)


class EslError(Exception):
    """Base of every error of the switch port."""

    def __init__(self, message: str, *, node: str = "") -> None:
        super().__init__(f"[{node}] {message}" if node else message)
        self.node = node


class EslTimeout(EslError, TimeoutError):
    """No answer within the call's timeout."""


class EslDisconnected(EslError):
    """The connection to the node was lost (or closed) before the answer."""

    def __init__(self, message: str, *, node: str = "", sent: bool = True) -> None:
        super().__init__(message, node=node)
        self.sent = sent


class EslCommandError(EslError):
    """FreeSWITCH refused the command; ``reply`` is its ``-ERR ...`` text."""

    def __init__(self, reply: str, *, node: str = "", command: str = "") -> None:
        super().__init__(f"{command}: {reply}" if command else reply, node=node)
        self.reply = reply
        self.command = command


class EslChannelGone(EslError):
    """The channel hung up (HANGUP_COMPLETE/DESTROY) before an execute completed."""

    def __init__(self, message: str, *, node: str = "", event: Event | None = None) -> None:
        super().__init__(message, node=node)
        self.event = event


class EslConnectError(EslError):
    """The node could not be reached, or closed the connection while we connected."""


class EslAuthError(EslConnectError):
    """The node refused the password."""


@dataclass(frozen=True, slots=True)
class NodeConnected:
    """In the event stream: the connection is up and subscribed (``reconnect`` after a drop).

    After a reconnect the engine re-adopts the node's channels (``show channels``):
    events that happened while the connection was down are lost.
    """

    node: str
    reconnect: bool = False


@dataclass(frozen=True, slots=True)
class NodeDisconnected:
    """In the event stream: the connection dropped; pending calls have failed."""

    node: str
    reason: str


SwitchEvent = Event | NodeConnected | NodeDisconnected


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where one FreeSWITCH event socket listens, and its password."""

    host: str
    port: int = DEFAULT_PORT
    password: str = DEFAULT_PASSWORD

    @property
    def name(self) -> str:
        """``host:port``, the node's name in logs and events."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_nodes(spec: str = DEFAULT_URL) -> list[NodeAddress]:
    """Parse ``esl://:PASSWORD@HOST:PORT`` (a comma-separated list for several nodes).

    The password is URL-decoded (write ``%40`` for ``@``); a missing password
    or port gives FreeSWITCH's defaults (``ClueCon``, 8021).
    """
    nodes: list[NodeAddress] = []
    for item in spec.split(","):
        text = item.strip()
        if not text:
            continue
        url = urlsplit(text)
        if url.scheme != "esl":
            raise ValueError(f"not an esl:// address: {text!r}")
        if not url.hostname:
            raise ValueError(f"no host in {text!r}")
        if url.path not in ("", "/") or url.query or url.fragment:
            raise ValueError(f"unexpected path or query in {text!r}")
        try:
            port = url.port or DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"bad port in {text!r}") from exc
        password = unquote(url.password) if url.password is not None else DEFAULT_PASSWORD
        if any(c in password for c in "\r\n\0"):
            raise ValueError(f"password in {text!r} contains a line break")
        nodes.append(NodeAddress(url.hostname, port, password))
    if not nodes:
        raise ValueError(f"no node in {spec!r}")
    return nodes


class SwitchPort(Protocol):
    """One FreeSWITCH node as the domain sees it."""

    @property
    def node(self) -> str:
        """The node's name (``host:port``)."""
        ...

    @property
    def connected(self) -> bool:
        """True while the connection is up and subscribed."""
        ...

    async def api(
        self, command: str, *args: str, timeout: float | None = None, check: bool = True
    ) -> ApiResponse:
        """Run a blocking API command; ``-ERR``/``-USAGE`` raise EslCommandError if ``check``."""
        ...

    async def bgapi(self, command: str, *args: str, timeout: float | None = None) -> Event:
        """Run a background API command; returns its BACKGROUND_JOB (body ``+OK``/``-ERR ...``)."""
        ...

    async def execute(
        self,
        uuid: str,
        app: str,
        arg: str = "",
        *,
        timeout: float | None = None,
        event_lock: bool = False,
    ) -> Event:
        """Run a dialplan application on a channel; returns its CHANNEL_EXECUTE_COMPLETE."""
        ...

    async def hangup(
        self, uuid: str, cause: str = "NORMAL_CLEARING", *, timeout: float | None = None
    ) -> None:
        """Hang up a channel (``sendmsg`` ``call-command: hangup``)."""
        ...

    def events(self) -> AsyncIterator[SwitchEvent]:
        """Subscribe: events of the subscribed names plus connect/disconnect notices."""
        ...
