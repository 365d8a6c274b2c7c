"""One inbound ESL connection inside the gevent thread: greenswitch with our reading path.

This is the ``greenswitch`` wire (``TELEPHONY_ESL_IO=greenswitch``); the default wire is
:mod:`telephony.esl.loop_connection`, on the event loop itself (see there for why).

Theory of operation
-------------------
:class:`GreenConnection` is a greenswitch :class:`~greenswitch.esl.InboundESL`.
greenswitch still does what it does well - the socket connect, waiting for
``auth/request``, the ``auth`` command, and the FIFO of commands awaiting
their reply (``_commands_sent``) - but its reading path is replaced:

* ``receive_events`` reads large chunks (256 KiB) from the socket and hands
  them to :class:`~telephony.esl.wire.FrameReader` (our codec: header lines
  split *before* values are URL-decoded, because greenswitch decodes the whole
  body first and ``%0A`` in a caller-ID name could forge a header; bad bytes
  are logged and skipped, never raised).
* Everything one read produced - events, and the replies of commands sent
  from asyncio - becomes one *batch*, handed to the ``sink`` in wire order
  (the asyncio side wakes its loop once for all the batches it has not taken).
* Commands from asyncio arrive through :meth:`GreenConnection.post`: a burst
  posted before the hub takes it costs one ``run_callback_threadsafe``. A writer
  greenlet appends
  their :class:`PendingReply` to ``_commands_sent`` and writes their bytes
  under one lock, so the FIFO order is the wire order. greenswitch's own
  ``send`` (used for ``auth`` and ``exit``) shares the lock and uses
  ``sendall``.
* When the socket closes, every command still waiting is failed
  (``EslDisconnected``) and a :class:`Dropped` item ends the last batch.
  Nothing is re-sent.
* The hand-off to asyncio is bounded: :class:`HandOff` counts the items
  posted by this thread and taken by the asyncio loop. When ``max_backlog``
  items are in flight (the loop is blocked or starved) the reader stops
  reading the socket, so TCP pushes back on FreeSWITCH, whose own queue
  holds about ten seconds of peak traffic. If the loop has not caught up
  within ``stall`` seconds the connection is dropped (``Dropped.overflow``):
  FreeSWITCH silently discards events for a listener whose queue is full,
  and a missing CHANNEL_HANGUP_COMPLETE is a ghost call, so reconnecting and
  re-adopting the node's channels is the safe way out. Nothing is dropped
  silently on this side.
"""

from __future__ import annotations

import contextlib
import logging
import socket as stdlib_socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.lock
from greenswitch.esl import InboundESL, NotConnectedError

from telephony.esl import commands
from telephony.esl.gevent_thread import GeventThread
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
    HandOff,
    PendingReply,
    Resolution,
    Sink,
    tune_socket,
)

logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024

Spawn = Callable[..., Any]


class GreenConnection(FrameReader, InboundESL):  # type: ignore[misc]
    """A greenswitch inbound connection whose reading path is our codec. Lives in the hub thread."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        node: str,
        sink: Sink,
        spawn: Spawn,
        timeout: float = 5.0,
        handoff: HandOff | None = None,
        max_backlog: int = 10_000,
        stall: float = 3.0,
    ) -> None:
        super().__init__(host, port, password, timeout=timeout)
        self.node = node
        self._commands_sent: list[Any] = []  # greenswitch's reply FIFO, typed
        self._sink = sink
        self._spawn = spawn
        self._send_lock = gevent.lock.Semaphore()
        self._outbox: deque[tuple[PendingReply, bytes]] = deque()
        # Written by the asyncio thread, taken by the hub (deque appends and pops are atomic).
        self._inbox: deque[tuple[PendingReply, bytes]] = deque()
        self._posted = False
        self._wake = gevent.event.Event()
        self._reader: Any = None
        self._writer: Any = None
        self._drop_reason = "connection closed"
        self._closing = False
        self._aborted = ""
        self._overflowed = False
        self._handoff = handoff
        self._max_backlog = max_backlog
        self._stall = stall
        self.malformed = 0

    # -- connecting (greenswitch's connect, our handlers) ---------------------------------

    def open(self, pending: PendingReply) -> None:
        """Greenlet: connect and authenticate, then settle ``pending`` (result ``None`` = ok)."""
        error: BaseException | None = None
        try:
            limit = EslTimeout(f"connect timed out after {self.timeout}s", node=self.node)
            with gevent.Timeout(self.timeout, limit):
                self.connect()
        except EslError as exc:
            error = exc
        except ValueError:  # greenswitch's authenticate: "Invalid password."
            error = EslAuthError("authentication failed (wrong password?)", node=self.node)
        except (NotConnectedError, OSError) as exc:
            error = EslConnectError(f"cannot connect: {exc or type(exc).__name__}", node=self.node)
        if error is not None:
            self._stop_quietly()
            logger.warning("esl connect failed", extra={"node": self.node, "error": str(error)})
        self._sink([Resolution(pending, None, error)])

    def start_event_handlers(self) -> None:
        """Called by greenswitch's ``connect``: start our reader and writer, not its own."""
        tune_socket(self.sock)
        self._reader = self._spawn(self.receive_events)
        self._writer = self._spawn(self._write_loop)

    def authenticate(self) -> None:
        """greenswitch's ``auth``, with an ``-ERR`` reply turned into :class:`EslAuthError`."""
        response = self.send(commands.auth(self.password))
        if not isinstance(response, CommandReply) or not response.ok:
            text = response.reply_text if isinstance(response, CommandReply) else repr(response)
            raise EslAuthError(f"authentication refused: {text}", node=self.node)

    # -- writing -----------------------------------------------------------------------

    def send(self, data: str) -> Any:
        """greenswitch's blocking ``send`` (auth, exit), FIFO-safe with the writer greenlet."""
        if not self.connected:
            raise NotConnectedError()
        result = gevent.event.AsyncResult()
        with self._send_lock:
            self._commands_sent.append(result)
            self.sock.sendall((data + "\n\n").encode("utf-8"))
        return result.get()

    def post(self, pending: PendingReply, raw: bytes, call: Callable[..., None]) -> None:
        """Queue a command from the asyncio thread; ``call`` runs a function in the hub.

        Commands posted while the hub has not yet taken the earlier ones ride on the
        same wake-up (one cross-thread call for a burst, not one each). Raises
        ``RuntimeError`` (and keeps nothing) when the hub thread is gone.
        """
        self._inbox.append((pending, raw))
        if self._posted:
            return
        self._posted = True
        try:
            call(self._take_inbox)
        except RuntimeError:
            self._posted = False
            self._inbox.pop()
            raise

    def _take_inbox(self) -> None:
        """Hub: move what asyncio posted to the writer's outbox (or fail it if closed)."""
        self._posted = False
        inbox = self._inbox
        items = [inbox.popleft() for _ in range(len(inbox))]
        if not self._run or self._writer is None:
            error = EslDisconnected("not connected", node=self.node, sent=False)
            self._sink([Resolution(pending, None, error) for pending, _ in items])
            return
        self._outbox.extend(items)
        self._wake.set()

    def _write_loop(self) -> None:
        outbox = self._outbox
        while self._run:
            self._wake.wait()
            self._wake.clear()
            if not outbox:
                continue
            items = list(outbox)
            outbox.clear()
            with self._send_lock:
                if not self.connected:
                    self._fail_unsent(items)
                    continue
                for pending, _ in items:
                    pending.sent = True
                    self._commands_sent.append(pending)
                try:
                    self.sock.sendall(b"".join(raw for _, raw in items))
                except OSError as exc:
                    self._drop_reason = f"write failed: {exc}"
                    self._close_socket()
        self._fail_unsent(list(outbox))
        outbox.clear()

    def _fail_unsent(self, items: list[tuple[PendingReply, bytes]]) -> None:
        if items:
            error = EslDisconnected("not connected", node=self.node, sent=False)
            self._sink([Resolution(pending, None, error) for pending, _ in items])

    # -- reading -----------------------------------------------------------------------

    def receive_events(self) -> None:
        """Reader greenlet: socket chunks -> FrameParser -> one batch per read."""
        parser = FrameParser()
        sock = self.sock
        sink = self._sink
        handoff = self._handoff
        limit = self._max_backlog
        try:
            while self._run:
                if handoff is not None and handoff.depth >= limit and not self._room(handoff):
                    break
                data = sock.recv(READ_SIZE)
                if not data:
                    self._drop_reason = "closed by peer"
                    break
                batch = self._read(parser, data)
                if batch:
                    sink(batch)
        except OSError as exc:
            if self._run:
                self._drop_reason = f"read failed: {exc}"
        except gevent.GreenletExit:
            self._drop_reason = "stopped"
        finally:
            self._after_close()

    def _room(self, handoff: HandOff) -> bool:
        """Wait (not reading) until asyncio took enough of the hand-off; False: give up."""
        deadline = time.monotonic() + self._stall
        while handoff.depth >= self._max_backlog:
            if not self._run:
                return False
            if time.monotonic() >= deadline:
                self._overflowed = True
                self._drop_reason = (
                    f"asyncio hand-off full ({handoff.depth} items) for {self._stall}s"
                )
                logger.error(
                    "esl hand-off to asyncio overflowed; dropping the connection to re-adopt",
                    extra={"node": self.node, "depth": handoff.depth, "stall_s": self._stall},
                )
                return False
            gevent.sleep(0.005)
        return True

    def _on_auth_request(self) -> None:
        self._auth_request_event.set()

    def _on_disconnect_notice(self, linger: bool) -> None:
        if linger:
            self._lingering = True
        else:
            self.connected = False
            self._drop_reason = "disconnect-notice"

    def _on_rude_rejection(self) -> None:
        self.connected = False
        self._drop_reason = "rude-rejection (ACL)"
        self._auth_request_event.set()

    def _after_close(self) -> None:
        if self._closing:
            self._drop_reason = "closed by us"
        elif self._aborted:
            self._drop_reason = self._aborted
        self._run = False
        self.connected = False
        self._close_socket()
        self._auth_request_event.set()  # unblock a connect() still waiting for auth/request
        self._wake.set()
        failed: list[BatchItem] = []
        waiting = self._commands_sent
        self._commands_sent = []
        for item in waiting:
            if type(item) is PendingReply:
                error = EslDisconnected(self._drop_reason, node=self.node, sent=True)
                failed.append(Resolution(item, None, error))
            else:
                item.set_exception(NotConnectedError(self._drop_reason))
        failed.append(Dropped(self._drop_reason, self._overflowed))
        logger.info("esl socket closed", extra={"node": self.node, "reason": self._drop_reason})
        self._sink(failed)

    # -- closing -----------------------------------------------------------------------

    def _close_socket(self) -> None:
        sock_file = getattr(self, "sock_file", None)
        if sock_file is not None:  # greenswitch's makefile() holds a reference to the socket
            sock_file.close()
        sock = getattr(self, "sock", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(stdlib_socket.SHUT_RDWR)
        sock.close()

    def _stop_quietly(self) -> None:
        self._run = False
        self.connected = False
        self._close_socket()
        self._wake.set()

    def abort(self, reason: str) -> None:
        """Greenlet: drop the connection at once, without ``exit`` (it stopped answering)."""
        if not self._aborted:
            self._aborted = reason
        self._stop_quietly()

    def close(self, pending: PendingReply) -> None:
        """Greenlet: say ``exit``, close the socket, wait for the reader, settle ``pending``."""
        self._closing = True
        if self.connected:
            try:
                with gevent.Timeout(1.0):
                    self.send("exit")
            except (gevent.Timeout, NotConnectedError, OSError):
                pass
        self._stop_quietly()
        for greenlet in (self._reader, self._writer):
            if greenlet is not None:
                greenlet.join(timeout=2.0)
                if not greenlet.dead:
                    greenlet.kill(block=False)
        self._sink([Resolution(pending)])


class GreenWire:
    """A :class:`GreenConnection` driven from asyncio: the :class:`~telephony.esl.wire.Wire`
    that runs greenswitch in the gevent thread ``hub``. ``RuntimeError``: the thread is gone.
    """

    def __init__(self, green: GreenConnection, hub: GeventThread) -> None:
        self._green = green
        self._hub = hub

    @property
    def malformed(self) -> int:
        return self._green.malformed

    def open(self, pending: PendingReply) -> None:
        self._hub.spawn(self._green.open, pending)

    def post(self, pending: PendingReply, raw: bytes) -> None:
        self._green.post(pending, raw, self._hub.call)

    def close(self, pending: PendingReply) -> None:
        self._hub.spawn(self._green.close, pending)

    def abort(self, reason: str) -> None:
        self._hub.spawn(self._green.abort, reason)
