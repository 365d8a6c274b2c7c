"""One inbound ESL connection on the event loop itself: the default wire.

Why not greenswitch in its thread
---------------------------------
The greenswitch wire (:mod:`telephony.esl.connection`) reads in the gevent
thread and hands every read to the loop, and every command back, across
threads. Measured in the capacity benchmark (``tests/bench/test_capacity.py``,
the 12345 IVR path), that thread cost more than half of the controller's CPU
per call, although parsing is a tenth of it: most of it is the two threads
taking the GIL from each other around every socket call (``perf``: the gevent
thread's samples sit in ``take_gil`` after ``recv``/``send``, and each wait can
last the interpreter's 5 ms switch interval, which also lengthened the key
press -> next prompt tail). On the loop, a read is parsed where it is used and
a command is written where it is made: no thread, no hop, no wake-up.

Theory of operation
-------------------
:class:`LoopConnection` is an :class:`asyncio.Protocol` and a
:class:`~telephony.esl.wire.Wire`. :meth:`open` connects, waits for
``auth/request`` and authenticates (the handshake greenswitch does, in a few
lines of asyncio: the same steps as ``telephony.esl.oneshot``); then each
``data_received`` becomes one batch (:class:`~telephony.esl.wire.FrameReader`)
handed to the ``sink`` at once, in wire order. :meth:`post` appends the
command's :class:`~telephony.esl.wire.PendingReply` to the reply FIFO and
writes its bytes, so the FIFO order is the wire order. When the socket closes,
every command still waiting fails (``EslDisconnected``, ``sent=True``) and a
:class:`~telephony.esl.wire.Dropped` ends the last batch; nothing is re-sent.

Bounds: there is no hand-off to fill (a blocked loop does not read, so TCP
pushes back on FreeSWITCH); the event streams' bound is the transport's. The
write buffer is bounded by ``max_write_buffer``: a node that stops reading our
commands is dropped rather than buffered for without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from telephony.esl import commands
from telephony.esl.messages import CommandReply
from telephony.esl.parser import FrameParser
from telephony.esl.port import (
    EslAuthError,
    EslConnectError,
    EslDisconnected,
    EslError,
    EslTimeout,
)
from telephony.esl.wire import (
    BatchItem,
    Dropped,
    FrameReader,
    PendingReply,
    Resolution,
    Sink,
    tune_socket,
)

logger = logging.getLogger(__name__)

#: Bytes of commands written and not yet taken by the node before it is dropped.
MAX_WRITE_BUFFER = 8 * 1024 * 1024


class _Waiter:
    """A handshake command's place in the reply FIFO (``auth``, ``exit``)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def set(self, message: object) -> None:
        if not self.future.done():
            self.future.set_result(message)


class LoopConnection(FrameReader, asyncio.Protocol):
    """An inbound ESL socket owned by the asyncio loop (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        node: str,
        sink: Sink,
        timeout: float = 5.0,
        max_write_buffer: int = MAX_WRITE_BUFFER,
    ) -> None:
        self.host, self.port, self.password = host, port, password
        self.node = node
        self.timeout = timeout
        self.malformed = 0
        self._sink = sink
        self._max_write_buffer = max_write_buffer
        self._commands_sent: list[Any] = []
        self._parser = FrameParser()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._auth_request: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._opening: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._drop_reason = "connection closed"
        self._closing = False
        self._aborted = ""
        self._gone = False

    # -- the Wire ------------------------------------------------------------------------

    def open(self, pending: PendingReply) -> None:
        self._opening = self._loop.create_task(self._open(pending), name=f"esl-open-{self.node}")

    def post(self, pending: PendingReply, raw: bytes) -> None:
        transport = self._transport
        if transport is None or self._gone or transport.is_closing():
            raise RuntimeError("not connected")
        pending.sent = True
        self._commands_sent.append(pending)
        transport.write(raw)
        if transport.get_write_buffer_size() > self._max_write_buffer:
            self.abort(f"the node took none of {self._max_write_buffer} bytes of commands")

    def close(self, pending: PendingReply) -> None:
        self._closer = self._loop.create_task(self._close(pending), name=f"esl-close-{self.node}")

    def abort(self, reason: str) -> None:
        if not self._aborted:
            self._aborted = reason
        self._stop()

    # -- connecting ----------------------------------------------------------------------

    async def _open(self, pending: PendingReply) -> None:
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self.timeout):
                await self._loop.create_connection(lambda: self, self.host, self.port)
                await self._auth_request
                reply = await self._handshake(commands.auth(self.password))
            if not isinstance(reply, CommandReply) or not reply.ok:
                text = reply.reply_text if isinstance(reply, CommandReply) else repr(reply)
                error = EslAuthError(f"authentication refused: {text}", node=self.node)
        except TimeoutError:
            error = EslTimeout(f"connect timed out after {self.timeout}s", node=self.node)
        except EslError as exc:
            error = exc
        except OSError as exc:
            error = EslConnectError(f"cannot connect: {exc or type(exc).__name__}", node=self.node)
        except asyncio.CancelledError:
            error = EslDisconnected("connect cancelled", node=self.node, sent=False)
        if error is not None:
            if self._transport is not None:
                self._transport.abort()
            logger.warning("esl connect failed", extra={"node": self.node, "error": str(error)})
        self._sink([Resolution(pending, None, error)])

    async def _handshake(self, text: str) -> object:
        """Send one command of our own and wait for its reply (the FIFO keeps its place)."""
        transport = self._transport
        if transport is None or self._gone:
            raise EslConnectError(f"connection lost: {self._drop_reason}", node=self.node)
        waiter = _Waiter(self._loop.create_future())
        self._commands_sent.append(waiter)
        transport.write(commands.encode(text))
        return await waiter.future

    def _on_auth_request(self) -> None:
        if not self._auth_request.done():
            self._auth_request.set_result(None)

    def _on_disconnect_notice(self, linger: bool) -> None:
        if not linger:
            self._drop_reason = "disconnect-notice"

    def _on_rude_rejection(self) -> None:
        self._drop_reason = "rude-rejection (ACL)"
        if not self._auth_request.done():
            self._auth_request.set_exception(
                EslConnectError("refused by the node's ACL (rude-rejection)", node=self.node)
            )

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            tune_socket(sock)

    def data_received(self, data: bytes) -> None:
        if self._gone:
            return
        batch = self._read(self._parser, data)
        if batch:
            self._sink(batch)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._gone:
            return
        self._gone = True
        if self._closing:
            self._drop_reason = "closed by us"
        elif self._aborted:
            self._drop_reason = self._aborted
        elif exc is not None:
            self._drop_reason = f"read failed: {exc}"
        elif self._drop_reason == "connection closed":
            self._drop_reason = "closed by peer"
        reason = self._drop_reason
        if not self._lost.done():
            self._lost.set_result(None)
        if not self._auth_request.done():
            self._auth_request.set_exception(
                EslConnectError(f"connection lost: {reason}", node=self.node)
            )
            self._auth_request.exception()  # seen: the handshake may not be waiting for it
        failed: list[BatchItem] = []
        waiting, self._commands_sent = self._commands_sent, []
        for item in waiting:
            if type(item) is PendingReply:
                error = EslDisconnected(reason, node=self.node, sent=True)
                failed.append(Resolution(item, None, error))
            elif not item.future.done():
                item.future.set_exception(EslConnectError(reason, node=self.node))
        failed.append(Dropped(reason))
        logger.info("esl socket closed", extra={"node": self.node, "reason": reason})
        self._sink(failed)

    # -- closing -------------------------------------------------------------------------

    def _stop(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort()
        elif self._opening is not None and not self._opening.done():
            self._opening.cancel()  # still connecting: the socket is not ours yet

    async def _close(self, pending: PendingReply) -> None:
        self._closing = True
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await opening
        transport = self._transport
        if transport is not None and not self._gone:
            with contextlib.suppress(EslError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._handshake("exit")
                    await self._lost
            transport.abort()
        self._sink([Resolution(pending)])

