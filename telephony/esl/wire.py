"""What both socket owners share: the batch items they hand to asyncio, and reading a chunk.

A *wire* owns one inbound ESL socket: it connects, authenticates, writes the
commands it is given (keeping the FIFO of replies they wait for) and turns
what it reads into *batches* for :class:`~telephony.esl.transport.EslConnection`:
events and command replies in wire order, ending with :class:`Dropped` when
the socket is gone. Two wires implement :class:`Wire`:

* :class:`~telephony.esl.loop_connection.LoopConnection`: the socket is an
  asyncio protocol on the event loop itself (the default);
* :class:`~telephony.esl.connection.GreenWire`: greenswitch in the process's
  gevent thread, batches crossing threads.

:class:`FrameReader` is the reading both share: our sans-IO
:class:`~telephony.esl.parser.FrameParser` (header lines split before values
are URL-decoded; bad bytes are logged and skipped, never raised), then each
frame sorted into an event, a command's reply or a control frame.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

from telephony.esl.messages import ApiResponse, CommandReply, ContentType, Event, Malformed
from telephony.esl.parser import FrameParser, decode

logger = logging.getLogger(__name__)

_EVENT_TYPES = frozenset({ContentType.EVENT_PLAIN.value, ContentType.EVENT_JSON.value})
_REPLY_TYPES = frozenset({ContentType.COMMAND_REPLY.value, ContentType.API_RESPONSE.value})


class PendingReply:
    """A command sent from asyncio, waiting in the wire's FIFO for its reply.

    ``future`` is an asyncio future; it is only ever touched in the asyncio
    thread (the reply travels there inside a :class:`Resolution`). With ``app``
    (an ``execute``), ``future`` waits for the application's completion instead:
    an accepting reply leaves it alone, a refusal fails it.
    """

    __slots__ = ("app", "future", "sent")

    def __init__(self, future: Any, app: str | None = None) -> None:
        self.future = future
        self.app = app
        self.sent = False


class Resolution:
    """Batch item: settle ``pending.future`` with ``result`` or ``error`` (in asyncio)."""

    __slots__ = ("error", "pending", "result")

    def __init__(
        self,
        pending: PendingReply,
        result: CommandReply | ApiResponse | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.pending = pending
        self.result = result
        self.error = error


class Dropped:
    """Batch item: the connection is gone (always the last item it posts).

    ``overflow``: it was dropped because the hand-off to asyncio stayed full.
    """

    __slots__ = ("overflow", "reason")

    def __init__(self, reason: str, overflow: bool = False) -> None:
        self.reason = reason
        self.overflow = overflow


class HandOff:
    """Items posted to asyncio and not yet taken: one connection's hand-off depth.

    ``posted`` is only written by the wire and ``taken`` only in the asyncio
    thread, so the two need no lock; their difference is the depth (always 0
    for a wire on the loop itself, which hands each batch over as it reads it).
    """

    __slots__ = ("posted", "taken")

    def __init__(self) -> None:
        self.posted = 0
        self.taken = 0

    @property
    def depth(self) -> int:
        return self.posted - self.taken


BatchItem = Event | Resolution | Dropped
Sink = Callable[[list[BatchItem]], None]


class Wire(Protocol):
    """One socket to one node, as :class:`~telephony.esl.transport.EslConnection` drives it.

    Every method is called from the asyncio thread and returns at once; outcomes
    arrive in the wire's batches (the ``pending`` of :meth:`open` and :meth:`close`
    is settled by a :class:`Resolution`, ``None`` on success).
    """

    @property
    def malformed(self) -> int:
        """Frames that could not be decoded and were skipped."""
        ...

    def open(self, pending: PendingReply) -> None:
        """Connect and authenticate; settle ``pending`` with an error or ``None``."""
        ...

    def post(self, pending: PendingReply, raw: bytes) -> None:
        """Send an encoded command whose reply settles ``pending``.

        Raises ``RuntimeError`` (and keeps nothing) when the wire cannot take it.
        """
        ...

    def close(self, pending: PendingReply) -> None:
        """Say ``exit``, close the socket, then settle ``pending``."""
        ...

    def abort(self, reason: str) -> None:
        """Drop the socket at once (the node stopped answering, or a buffer is full)."""
        ...


class FrameReader:
    """Bytes read -> one batch; the reply FIFO and control frames (a mixin for both wires).

    A subclass sets ``node``, ``_commands_sent`` (the FIFO of what waits for a
    reply: :class:`PendingReply`, or a handshake waiter with ``set``) and
    implements the three ``_on_*`` control hooks.
    """

    node: str
    _commands_sent: list[Any]
    malformed: int

    def _read(self, parser: FrameParser, data: bytes) -> list[BatchItem]:
        """Feed ``data`` to ``parser``; what it completed, sorted, in wire order."""
        parser.feed(data)
        batch: list[BatchItem] = []
        event_types = _EVENT_TYPES
        reply_types = _REPLY_TYPES
        for frame in parser.frames():
            if type(frame) is Malformed:
                self._malformed(frame.reason, frame.raw)
                continue
            ctype = frame.headers.get("Content-Type", "")  # type: ignore[union-attr]
            message = decode(frame)  # type: ignore[arg-type]
            if type(message) is Malformed:
                self._malformed(message.reason, message.raw)
            elif ctype in event_types:
                batch.append(message)  # type: ignore[arg-type]
            elif ctype in reply_types:
                self._reply(message, batch)  # type: ignore[arg-type]
            else:
                self._control(ctype, message)
        return batch

    def _reply(self, message: CommandReply | ApiResponse, batch: list[BatchItem]) -> None:
        if not self._commands_sent:
            logger.warning(
                "esl reply without a command", extra={"node": self.node, "reply": repr(message)}
            )
            return
        waiting = self._commands_sent.pop(0)
        if type(waiting) is PendingReply:
            batch.append(Resolution(waiting, message))
        else:
            waiting.set(message)  # a handshake waiter (auth, exit)

    def _control(self, ctype: str, message: object) -> None:
        if ctype == ContentType.AUTH_REQUEST:
            self._on_auth_request()
        elif ctype == ContentType.DISCONNECT_NOTICE:
            self._on_disconnect_notice(bool(getattr(message, "linger", False)))
        elif ctype == ContentType.RUDE_REJECTION:
            self._on_rude_rejection()
        else:
            logger.debug("esl frame ignored", extra={"node": self.node, "content_type": ctype})

    def _on_auth_request(self) -> None:
        raise NotImplementedError

    def _on_disconnect_notice(self, linger: bool) -> None:
        raise NotImplementedError

    def _on_rude_rejection(self) -> None:
        raise NotImplementedError

    def _malformed(self, reason: str, raw: bytes) -> None:
        self.malformed += 1
        logger.warning(
            "malformed esl frame skipped",
            extra={"node": self.node, "reason": reason, "size": len(raw), "head": raw[:120]},
        )


def tune_socket(sock: Any) -> None:
    """No Nagle delay on commands; keepalive, so that a node that vanishes without a FIN is
    noticed in about 25 s, not never."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
