"""The asyncio face of one FreeSWITCH node: :class:`EslConnection` implements :class:`SwitchPort`.

Theory of operation
-------------------
Each node has one inbound ESL connection over a *wire* (:mod:`telephony.esl.wire`)
that owns its socket: by default a
:class:`~telephony.esl.loop_connection.LoopConnection` on this event loop
(``io="loop"``), or a :class:`~telephony.esl.connection.GreenConnection` in the
process's single gevent thread (``io="greenswitch"``, see
:mod:`telephony.esl.gevent_thread`). This class owns all correlation state and
is only touched in the asyncio thread, so it needs no locks.

* Commands are encoded here (``telephony.esl.commands``) and given to the wire
  (``Wire.post``); the greenswitch wire hands them to its thread, a burst on one
  ``run_callback_threadsafe``.
* Each socket read makes a batch of events and command replies, in wire order,
  for :meth:`_on_batch`: at once on the loop's wire; from the gevent thread,
  one ``call_soon_threadsafe`` wakes the loop for every batch posted before the
  loop gets to them.
* ``bgapi`` sends our own ``Job-UUID`` and registers its future *before*
  sending, so a BACKGROUND_JOB that overtakes the command/reply still finds
  it. ``execute`` does the same with ``Event-UUID``, which comes back as
  ``Application-UUID`` on CHANNEL_EXECUTE_COMPLETE (never matched by app
  name). An execute fails with :class:`EslChannelGone` when its channel
  reaches CHANNEL_HANGUP_COMPLETE or CHANNEL_DESTROY first: FreeSWITCH
  sends the EXECUTE_COMPLETE of interrupted apps *before* those (a playback
  cut by a hangup completes with ``PLAYBACK ERROR``), so reaching them means
  the completion will never come.
* Events of the subscribed names go to every :class:`EventStream`, together
  with :class:`NodeConnected` / :class:`NodeDisconnected` notices.
* A drop fails every pending future (:class:`EslDisconnected`), then a
  supervisor task reconnects with exponential backoff and jitter and
  re-subscribes. Nothing is re-sent: ``originate`` must never run twice.

Liveness
--------
TCP keepalive only notices a peer that vanished. A listener that hangs with
its socket up (a stuck ``mod_event_socket`` thread, a switch stopped in a
debugger, a half-dead NAT) would time out every command while the node looks
connected. A watchdog therefore watches every subscribed connection: after
:attr:`Liveness.silence` seconds with no frame at all (event, reply), it
sends ``api status`` (a cheap probe, any reply proves life) with
:attr:`Liveness.probe_timeout`. If no reply comes, the connection is
dropped from this side and the usual path follows: :class:`NodeDisconnected`
(pending calls fail with ``EslDisconnected``), reconnect, then
:class:`NodeConnected` with ``reconnect=True``, on which the engine
re-adopts the node's channels. HEARTBEAT is not subscribed: FreeSWITCH sends
one every 20 s, four times the silence after which we probe anyway, so it
would save no probe on an idle node. A legitimate ``api`` that keeps the
listener busy longer than ``silence + probe_timeout`` (8 s by default) is
taken for a hang: slow work belongs in ``bgapi``.

Bounds (what happens when the engine falls behind)
--------------------------------------------------
Two buffers sit between the socket and the engine, each bounded
(:class:`Limits`) and measured (:class:`EslHooks`):

* the cross-thread hand-off of the greenswitch wire (batches not yet run by
  the loop): at ``handoff_items`` the reader stops reading, so TCP pushes
  back; if the loop has not caught up after ``handoff_stall`` seconds, the
  connection is dropped (see :mod:`telephony.esl.connection`). The loop's
  own wire has no hand-off: a busy loop does not read, and TCP pushes back;
* each :class:`EventStream` (events delivered, not yet taken by the engine):
  at ``stream_events`` the event that does not fit, and every later one of
  that connection, is discarded and the connection is dropped at once.

Both overflows are logged, counted (``EslHooks.overflow``) and end in a
reconnect and re-adoption, never in growing without bound or in quietly
losing single events (a lost CHANNEL_HANGUP_COMPLETE is a ghost call; a
re-adoption reconciles every channel from ``show channels``). Connection
notices (:class:`NodeConnected`, :class:`NodeDisconnected`) are never
refused by a full stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from telephony.esl import commands
from telephony.esl.connection import GreenConnection, GreenWire
from telephony.esl.gevent_thread import GeventThread, acquire_shared, release_shared
from telephony.esl.loop_connection import LoopConnection
from telephony.esl.messages import ApiResponse, CommandReply, Event
from telephony.esl.parser import PREFERRED_EVENT_FORMAT
from telephony.esl.port import (
    DEFAULT_EVENTS,
    EslChannelGone,
    EslCommandError,
    EslConnectError,
    EslDisconnected,
    EslError,
    EslTimeout,
    EventFormat,
    NodeAddress,
    NodeConnected,
    NodeDisconnected,
    SwitchEvent,
    parse_nodes,
)
from telephony.esl.wire import Dropped, HandOff, PendingReply, Resolution, Wire

logger = logging.getLogger(__name__)

#: Who owns the sockets: ``loop``, the event loop itself (:mod:`telephony.esl.loop_connection`,
#: the measured choice), or ``greenswitch`` in the gevent thread (:mod:`telephony.esl.connection`).
EslIo = Literal["loop", "greenswitch"]
DEFAULT_IO: EslIo = "loop"

#: The codec's measured choice (``parser.PREFERRED_EVENT_FORMAT``): ``event json``.
DEFAULT_EVENT_FORMAT: EventFormat = PREFERRED_EVENT_FORMAT

#: Events the connection needs for itself (job results, execute completion, channel end).
#: CHANNEL_DESTROY is not among them (one frame a leg less to parse): a channel whose
#: state machine ran raises CHANNEL_HANGUP_COMPLETE in CS_REPORTING, before CS_DESTROY
#: (switch_core_session_reporting_state, unconditionally), and one destroyed without
#: running has no execute of ours to end. Subscribed, it still ends executes.
INTERNAL_EVENTS: tuple[str, ...] = (
    "BACKGROUND_JOB",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP_COMPLETE",
)
_CHANNEL_END = frozenset({"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Default time limits, in seconds, of each kind of call."""

    connect: float = 5.0
    command: float = 10.0
    bgapi: float = 120.0
    execute: float = 3600.0


@dataclass(frozen=True, slots=True)
class Liveness:
    """The watchdog: probe after ``silence`` seconds without a frame; drop if the probe fails.

    ``silence`` of 0 turns the watchdog off.
    """

    silence: float = 5.0
    probe_timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds between the socket and the engine (see the module docstring for the policy).

    ``stream_events``: events waiting in one :class:`EventStream`, about two
    seconds of a node's peak (125 calls/s, 60-80 events a call). A decoded
    event of ~145 headers holds about 23 KB (measured on the captured
    traces), so a full stream is some 460 MB: the bound is a guard against
    running out of memory, not a working level. ``handoff_items``: batch
    items posted by the gevent thread and not yet run by the loop (one
    second of peak: it fills only while the loop is blocked);
    ``handoff_stall``: how long the reader then waits, not reading, before
    the connection is dropped.
    """

    stream_events: int = 20_000
    handoff_items: int = 10_000
    handoff_stall: float = 3.0


DEFAULT_LIMITS = Limits()


class EslHooks(Protocol):
    """Where a connection reports its health (``telephony.metrics.EslMetrics`` implements it)."""

    def probe_failed(self, node: str) -> None:
        """A liveness probe got no reply in time; the connection is being dropped."""
        ...

    def overflow(self, node: str, buffer: str) -> None:
        """``buffer`` ("stream" or "handoff") was full; the connection is being dropped."""
        ...

    def depth(self, node: str, stream: int, handoff: int) -> None:
        """Current depths: the fullest event stream, and the hand-off (items in flight)."""
        ...


class NoHooks:
    """Report nothing (the default)."""

    def probe_failed(self, node: str) -> None:
        pass

    def overflow(self, node: str, buffer: str) -> None:
        pass

    def depth(self, node: str, stream: int, handoff: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: exponential from ``initial`` to ``maximum``, with jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """The wait before reconnect ``attempt`` (0-based): ``base * (1 - jitter * U[0,1))``."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        return base * (1.0 - self.jitter * random.random())


def subscription_names(names: Sequence[str]) -> list[str]:
    """The ``event`` command's names: plain names, then ``CUSTOM`` and its subclasses."""
    plain: list[str] = []
    custom: list[str] = []
    for name in [*names, *INTERNAL_EVENTS]:
        target = custom if "::" in name else plain
        if name != "CUSTOM" and name not in target:
            target.append(name)
    if custom or "CUSTOM" in names:
        return [*plain, "CUSTOM", *custom]
    return plain


class EventStream:
    """An async iterator over one subscriber's events; ends when the connection is closed.

    It holds at most ``limit`` events (connection notices do not count
    against it); :class:`EslConnection` drops the connection rather than
    overfill it.
    """

    def __init__(self, owner: EslConnection, limit: int = DEFAULT_LIMITS.stream_events) -> None:
        self._owner = owner
        self.limit = limit
        self._items: deque[SwitchEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _put(self, item: SwitchEvent) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> int:
        """Items received but not yet taken."""
        return len(self._items)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SwitchEvent:
        items = self._items
        while not items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return items.popleft()

    def drain(self) -> list[SwitchEvent]:
        """Take every item already received, without waiting."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        """Stop receiving; iteration ends after what is already buffered."""
        self._owner._unsubscribe(self)
        self._end()


class EslConnection:
    """One FreeSWITCH node over inbound ESL, for asyncio code (implements ``SwitchPort``)."""

    def __init__(
        self,
        address: NodeAddress | str,
        *,
        events: Iterable[str] = DEFAULT_EVENTS,
        event_format: EventFormat = DEFAULT_EVENT_FORMAT,
        timeouts: Timeouts | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        hub: GeventThread | None = None,
        on_state: Callable[[NodeConnected | NodeDisconnected], None] | None = None,
        liveness: Liveness | None = None,
        limits: Limits | None = None,
        hooks: EslHooks | None = None,
        drop_applications: Iterable[str] = (),
        io: EslIo | None = None,
    ) -> None:
        """Describe the connection; nothing happens until :meth:`connect`.

        ``events`` is the event-name set delivered by :meth:`events` (CUSTOM
        subclasses by name, e.g. ``sofia::register``); the connection also
        subscribes to what it needs itself (:data:`INTERNAL_EVENTS`) but does
        not deliver those unless listed. ``hub`` defaults to the process's
        shared gevent thread, released again by :meth:`close`. ``liveness``,
        ``limits`` and ``hooks``: the watchdog, the buffer bounds and where
        their measurements go (see the module docstring). ``drop_applications``:
        CHANNEL_EXECUTE/_COMPLETE events of these applications are filtered out by
        the switch (mod_event_socket filters: one positive ``Event-Name /./`` that
        passes every event, then ``Application -<app>`` for each, which drops it).
        ``io``: who owns the socket (:data:`EslIo`, default :data:`DEFAULT_IO`); ``hub``
        applies to ``greenswitch`` only.
        """
        if isinstance(address, str):
            nodes = parse_nodes(address)
            if len(nodes) != 1:
                raise ValueError(f"one node per connection, got {len(nodes)}: use connect_nodes")
            address = nodes[0]
        self.address = address
        self.io: EslIo = io or DEFAULT_IO
        if self.io not in get_args(EslIo):
            raise ValueError(f"esl io must be one of {get_args(EslIo)}, not {self.io!r}")
        self._names = list(events)
        self._wanted = frozenset(self._names)
        self._wants_all_custom = "CUSTOM" in self._wanted
        if event_format not in ("plain", "json"):
            raise ValueError(f"event format must be plain or json, not {event_format!r}")
        self.event_format: EventFormat = event_format
        self._subscribe_command = commands.encode(
            commands.event(subscription_names(self._names), event_format)
        )
        drops = [commands.filter_("Application", f"-{app}") for app in drop_applications]
        filters = [commands.filter_("Event-Name", "/./"), *drops] if drops else []
        self._filter_commands = [commands.encode(command) for command in filters]
        self.timeouts = timeouts or Timeouts()
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self._on_state = on_state
        self.liveness = liveness or Liveness()
        self.limits = limits or DEFAULT_LIMITS
        self.hooks: EslHooks = hooks or NoHooks()
        self._probe_command = commands.encode(commands.api("status"))
        self._last_frame = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._handoff = HandOff()
        self._hub = hub
        self._owns_hub = hub is None
        self._hub_acquired = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wire: Wire | None = None
        self._generation = 0
        self._connected = False
        self._closed = False
        self._ever_connected = False
        self._jobs: dict[str, asyncio.Future[Event]] = {}
        self._executes: dict[str, tuple[str, asyncio.Future[Event]]] = {}
        self._executes_by_channel: dict[str, set[str]] = {}
        self._streams: list[EventStream] = []
        self._dropped = asyncio.Event()
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.events_received = 0
        self.probe_failures = 0
        self.overflows = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def node(self) -> str:
        """``host:port`` of the node."""
        return self.address.name

    @property
    def connected(self) -> bool:
        """True while the connection is up and subscribed."""
        return self._connected

    @property
    def hub(self) -> GeventThread | None:
        """The gevent thread this connection uses (``None`` before :meth:`connect`)."""
        return self._hub

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Connect, authenticate and subscribe; raise EslConnectError/EslAuthError/EslTimeout.

        Once connected, a drop is followed by reconnect attempts (if
        ``reconnect``) until :meth:`close`.
        """
        if self._closed:
            raise EslDisconnected("connection is closed", node=self.node, sent=False)
        if self._connected:
            return
        limit = timeout if timeout is not None else self.timeouts.connect
        if self._supervisor is not None:  # reconnecting already: wait for it, don't race it
            try:
                async with asyncio.timeout(limit):
                    await self._up.wait()
            except TimeoutError:
                raise EslTimeout(f"not reconnected within {limit}s", node=self.node) from None
            return
        self._loop = asyncio.get_running_loop()
        if self.io == "greenswitch":
            if not self._owns_hub:
                assert self._hub is not None
                self._hub.start()
            elif not self._hub_acquired:
                self._hub = acquire_shared()
                self._hub_acquired = True
        try:
            await self._open(limit)
        except BaseException:
            if self._supervisor is None:  # first connect failed: leave no thread behind
                self._release_hub()
            raise
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"esl-{self.node}")

    async def close(self) -> None:
        """Close the connection, fail what is pending, end the event streams, release the hub.

        When the shared gevent thread loses its last user, it is stopped and
        joined before this returns.
        """
        if self._closed:
            return
        self._closed = True
        self._dropped.set()
        for task in (self._supervisor, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._watchdog = None
        wire, self._wire = self._wire, None
        self._connected = False
        self._generation += 1
        if wire is not None:
            await self._close_wire(wire)
        self._fail_all(EslDisconnected("connection closed", node=self.node, sent=True))
        for stream in list(self._streams):
            stream._end()
        self._streams.clear()
        self._release_hub()
        logger.info("esl connection closed", extra={"node": self.node})

    def _release_hub(self) -> None:
        if self._hub_acquired:
            self._hub_acquired = False
            self._hub = None
            release_shared()

    async def __aenter__(self) -> EslConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self, timeout: float) -> None:
        assert self._loop is not None
        loop = self._loop
        self._generation += 1
        generation = self._generation
        address = self.address
        handoff = self._handoff = HandOff()
        on_batch = self._on_batch
        report = self._report_depth
        wire: Wire
        if self.io == "loop":

            def direct(batch: list[Any]) -> None:  # read on the loop: handed over as read
                handoff.posted += len(batch)
                on_batch(generation, batch, handoff)
                report()

            wire = LoopConnection(
                address.host,
                address.port,
                address.password,
                node=self.node,
                sink=direct,
                timeout=timeout,
            )
        else:
            assert self._hub is not None
            wire = self._green_wire(self._hub, loop, generation, handoff, timeout)
        opened: asyncio.Future[Any] = loop.create_future()
        started = time.monotonic()
        try:
            wire.open(PendingReply(opened))
        except RuntimeError as exc:
            raise EslConnectError("gevent thread is not running", node=self.node) from exc
        try:
            async with asyncio.timeout(timeout + 1.0):
                await opened
        except TimeoutError:
            await self._close_wire(wire)
            raise EslTimeout(f"connect timed out after {timeout}s", node=self.node) from None
        except BaseException:  # refused, or cancelled (close() during a reconnect)
            await self._close_wire(wire)
            raise
        self._wire = wire
        try:
            remaining = max(0.5, timeout - (time.monotonic() - started))
            reply = await self._request(self._subscribe_command, remaining, "event", force=True)
            if not isinstance(reply, CommandReply) or not reply.ok:
                raise EslCommandError(_reply_text(reply), node=self.node, command="event")
            for command in self._filter_commands:
                reply = await self._request(command, remaining, "filter", force=True)
                if not isinstance(reply, CommandReply) or not reply.ok:
                    raise EslCommandError(_reply_text(reply), node=self.node, command="filter")
            if generation != self._generation:  # aborted while subscribing (a full stream)
                raise EslDisconnected("dropped while subscribing", node=self.node, sent=True)
        except BaseException:
            self._wire = None
            await self._close_wire(wire)
            raise
        self._connected = True
        self._dropped.clear()
        self._up.set()
        self._last_frame = time.monotonic()
        if self.liveness.silence > 0:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = asyncio.create_task(
                self._watch(generation), name=f"esl-watchdog-{self.node}"
            )
        reconnect = self._ever_connected
        self._ever_connected = True
        logger.info(
            "esl connected",
            extra={"node": self.node, "format": self.event_format, "reconnect": reconnect},
        )
        self._notify(NodeConnected(self.node, reconnect=reconnect))

    def _green_wire(
        self,
        hub: GeventThread,
        loop: asyncio.AbstractEventLoop,
        generation: int,
        handoff: HandOff,
        timeout: float,
    ) -> GreenWire:
        """greenswitch in the gevent thread, its batches crossing to this loop."""
        on_batch = self._on_batch
        # Batches wait here for the loop; one call_soon_threadsafe wakes it for all the
        # batches posted before it runs (under load, many reads share one wake-up).
        posted: deque[list[Any]] = deque()
        scheduled = [False]

        def take() -> None:  # in the asyncio thread
            scheduled[0] = False  # before draining: a batch posted from now schedules again
            while posted:
                on_batch(generation, posted.popleft(), handoff)
            self._report_depth()

        def sink(batch: list[Any]) -> None:  # in the gevent thread
            handoff.posted += len(batch)
            posted.append(batch)
            if scheduled[0]:
                return
            scheduled[0] = True
            try:  # noqa: SIM105 - hot path, cheaper than contextlib.suppress
                loop.call_soon_threadsafe(take)
            except RuntimeError:  # the asyncio loop is closed: nobody is listening any more
                pass

        address = self.address
        green = GreenConnection(
            address.host,
            address.port,
            address.password,
            node=self.node,
            sink=sink,
            spawn=hub.spawn_here,
            timeout=timeout,
            handoff=handoff,
            max_backlog=self.limits.handoff_items,
            stall=self.limits.handoff_stall,
        )
        return GreenWire(green, hub)

    async def _close_wire(self, wire: Wire) -> None:
        """Close a wire (the current one, or one that never became it) and wait, briefly."""
        if self._loop is None:
            return
        done: asyncio.Future[Any] = self._loop.create_future()
        try:
            wire.close(PendingReply(done))
            async with asyncio.timeout(3.0):
                await done
        except (RuntimeError, TimeoutError, EslError):
            logger.warning("esl close did not finish cleanly", extra={"node": self.node})

    async def _supervise(self) -> None:
        while not self._closed:
            await self._dropped.wait()
            if self._closed or not self.reconnect:
                return
            attempt = 0
            while not self._closed and not self._connected:
                delay = self.backoff.delay(attempt)
                logger.info(
                    "esl reconnecting",
                    extra={"node": self.node, "attempt": attempt + 1, "delay": round(delay, 3)},
                )
                await asyncio.sleep(delay)
                attempt += 1
                try:
                    await self._open(self.timeouts.connect)
                except Exception as exc:  # keep trying; nothing but the handshake is sent
                    logger.warning(
                        "esl reconnect failed",
                        extra={"node": self.node, "attempt": attempt, "error": str(exc)},
                    )

    async def _watch(self, generation: int) -> None:
        """The liveness watchdog of one connection (one generation); see the module docstring."""
        silence, limit = self.liveness.silence, self.liveness.probe_timeout
        while generation == self._generation and self._connected:
            quiet = time.monotonic() - self._last_frame
            if quiet < silence:
                await asyncio.sleep(silence - quiet)
                continue
            try:
                await self._request(self._probe_command, limit, "liveness probe")
            except EslTimeout:
                if generation != self._generation or not self._connected:
                    return
                self.probe_failures += 1
                logger.error(
                    "esl node stopped answering; dropping the connection",
                    extra={"node": self.node, "silence_s": silence, "probe_timeout_s": limit},
                )
                self._hook(self.hooks.probe_failed, self.node)
                self._abort(f"no reply to a liveness probe within {limit}s after {silence}s")
                return
            except EslError:  # dropped meanwhile: the supervisor takes over
                return

    def _abort(self, reason: str) -> None:
        """Drop the current connection from this side; the supervisor reconnects.

        While the connection is still subscribing, the subscription fails instead
        (``_open`` sees the generation move).
        """
        wire = self._wire
        if wire is None:
            return
        self._generation += 1  # what the old socket still delivers is ignored
        if self._connected:
            self._on_drop(reason)
        else:
            self._wire = None
        with contextlib.suppress(RuntimeError):
            wire.abort(reason)

    def _overflow(self, buffer: str, depth: int) -> None:
        self.overflows += 1
        logger.error(
            "esl buffer full; dropping the connection to re-adopt the node",
            extra={"node": self.node, "buffer": buffer, "depth": depth},
        )
        self._hook(self.hooks.overflow, self.node, buffer)

    def _hook(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            logger.exception("esl hook failed", extra={"node": self.node})

    # -- from the gevent thread ----------------------------------------------------------

    def _on_batch(self, generation: int, batch: list[Any], handoff: HandOff) -> None:
        """One socket read's worth of events and replies, in wire order (asyncio thread)."""
        handoff.taken += len(batch)
        if generation == self._generation:
            self._last_frame = time.monotonic()
        for item in batch:
            kind = type(item)
            if kind is Event:
                if generation == self._generation:  # not after a drop (an overflow, mid-batch)
                    self._on_event(item)
            elif kind is Resolution:
                pending = item.pending
                future = pending.future
                if future.done():
                    continue
                if item.error is not None:
                    future.set_exception(item.error)
                elif pending.app is None:
                    future.set_result(item.result)
                elif type(item.result) is not CommandReply or not item.result.ok:
                    text = _reply_text(item.result)  # an execute the switch refused
                    future.set_exception(EslCommandError(text, node=self.node, command=pending.app))
            elif kind is Dropped and generation == self._generation and self._connected:
                if item.overflow:
                    self._overflow("handoff", handoff.depth)
                self._on_drop(item.reason)

    def _report_depth(self) -> None:  # after every socket read: no generator, no max()
        deepest = 0
        for stream in self._streams:
            if len(stream._items) > deepest:
                deepest = len(stream._items)
        self.hooks.depth(self.node, deepest, self._handoff.depth)

    def _on_event(self, event: Event) -> None:
        self.events_received += 1
        headers = event.headers
        name = headers.get("Event-Name", "")
        if name == "CUSTOM":
            if self._wants_all_custom:
                self._deliver(event)
                return
            name = headers.get("Event-Subclass", name)
        elif name == "BACKGROUND_JOB":
            job = self._jobs.pop(headers.get("Job-UUID", ""), None)
            if job is not None and not job.done():
                job.set_result(event)
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            app_uuid = headers.get("Application-UUID")
            if app_uuid is not None:
                self._complete_execute(app_uuid, event)
        elif name in _CHANNEL_END:
            channel = headers.get("Unique-ID")
            if channel is not None and channel in self._executes_by_channel:
                self._channel_gone(channel, event)
        if name in self._wanted:
            self._deliver(event)

    def _deliver(self, item: Event) -> None:
        streams = self._streams
        for stream in streams:
            if len(stream._items) >= stream.limit:
                self._overflow("stream", len(stream._items))
                self._abort(f"event stream full ({stream.limit} events): the engine fell behind")
                return
        for stream in streams:
            stream._put(item)

    def _notify(self, item: NodeConnected | NodeDisconnected) -> None:
        for stream in self._streams:
            stream._put(item)
        if self._on_state is not None:
            try:
                self._on_state(item)
            except Exception:
                logger.exception("esl on_state callback failed", extra={"node": self.node})

    def _complete_execute(self, app_uuid: str, event: Event) -> None:
        entry = self._executes.pop(app_uuid, None)
        if entry is None:
            return
        channel, future = entry
        self._forget_execute(channel, app_uuid)
        if not future.done():
            future.set_result(event)

    def _channel_gone(self, channel: str, event: Event) -> None:
        for app_uuid in self._executes_by_channel.pop(channel, set()):
            entry = self._executes.pop(app_uuid, None)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(
                    EslChannelGone(
                        f"channel {channel} ended ({event.name}) before the app completed",
                        node=self.node,
                        event=event,
                    )
                )

    def _forget_execute(self, channel: str, app_uuid: str) -> None:
        waiting = self._executes_by_channel.get(channel)
        if waiting is not None:
            waiting.discard(app_uuid)
            if not waiting:
                del self._executes_by_channel[channel]

    def _on_drop(self, reason: str) -> None:
        self._connected = False
        self._up.clear()
        self._wire = None
        logger.warning("esl disconnected", extra={"node": self.node, "reason": reason})
        self._fail_all(EslDisconnected(f"disconnected: {reason}", node=self.node, sent=True))
        self._notify(NodeDisconnected(self.node, reason))
        self._dropped.set()

    def _fail_all(self, error: EslDisconnected) -> None:
        jobs, self._jobs = self._jobs, {}
        for job in jobs.values():
            if not job.done():
                job.set_exception(error)
        executes, self._executes = self._executes, {}
        self._executes_by_channel.clear()
        for _, future in executes.values():
            if not future.done():
                future.set_exception(error)

    # -- commands ------------------------------------------------------------------------

    def _send(
        self,
        raw: bytes,
        *,
        force: bool = False,
        completion: asyncio.Future[Any] | None = None,
        app: str | None = None,
    ) -> asyncio.Future[Any]:
        """Hand a command to the wire; the future gets its reply (``completion``, see
        :class:`~telephony.esl.wire.PendingReply`'s ``app``)."""
        wire = self._wire
        if wire is None or self._loop is None:
            raise EslDisconnected("not connected", node=self.node, sent=False)
        if not (self._connected or force):
            raise EslDisconnected("not connected", node=self.node, sent=False)
        future = completion if completion is not None else self._loop.create_future()
        try:
            wire.post(PendingReply(future, app), raw)
        except RuntimeError as exc:
            raise EslDisconnected(str(exc), node=self.node, sent=False) from exc
        return future

    async def _request(
        self, raw: bytes, timeout: float, what: str, *, force: bool = False
    ) -> CommandReply | ApiResponse:
        future = self._send(raw, force=force)
        # A timer handle rather than an asyncio.timeout (a context manager, a reschedule
        # and a cancellation per command); only this future times out, the FIFO keeps
        # its slot so that later replies stay matched.
        expiry = future.get_loop().call_later(
            timeout, _expire, future, f"{what}: no reply after {timeout}s", self.node
        )
        try:
            result: CommandReply | ApiResponse = await future
        finally:
            expiry.cancel()
        return result

    async def api(
        self, command: str, *args: str, timeout: float | None = None, check: bool = True
    ) -> ApiResponse:
        """``api command args``; with ``check``, ``-ERR``/``-USAGE`` raises EslCommandError."""
        raw = commands.encode(commands.api(command, *args))
        reply = await self._request(raw, timeout or self.timeouts.command, command)
        if not isinstance(reply, ApiResponse):
            raise EslCommandError(_reply_text(reply), node=self.node, command=command)
        if check and not reply.ok:
            raise EslCommandError(reply.body.strip(), node=self.node, command=command)
        return reply

    async def bgapi(self, command: str, *args: str, timeout: float | None = None) -> Event:
        """``bgapi`` with our own Job-UUID; returns the matching BACKGROUND_JOB event.

        The job's result is the event's body (``+OK <uuid>`` or ``-ERR NO_ANSWER``);
        only a refused command (``-ERR`` command/reply) raises EslCommandError.
        """
        job_uuid = str(uuidlib.uuid4())
        raw = commands.encode(commands.bgapi(command, *args, job_uuid=job_uuid))
        limit = timeout or self.timeouts.bgapi
        job: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._jobs[job_uuid] = job
        try:
            reply_future = self._send(raw)
            async with asyncio.timeout(limit):
                reply = await reply_future
                if not isinstance(reply, CommandReply) or not reply.ok:
                    raise EslCommandError(_reply_text(reply), node=self.node, command=command)
                return await job
        except TimeoutError:
            raise EslTimeout(f"bgapi {command}: no result after {limit}s", node=self.node) from None
        finally:
            self._jobs.pop(job_uuid, None)

    async def execute(
        self,
        uuid: str,
        app: str,
        arg: str = "",
        *,
        timeout: float | None = None,
        event_lock: bool = False,
    ) -> Event:
        """Run ``app(arg)`` on channel ``uuid``; returns its CHANNEL_EXECUTE_COMPLETE.

        Matched by our ``Event-UUID`` (``Application-UUID`` on the completion).
        Raises EslCommandError if FreeSWITCH refuses the sendmsg, EslChannelGone
        if the channel ends first, EslTimeout, EslDisconnected.
        """
        event_uuid = str(uuidlib.uuid4())
        raw = commands.encode(
            commands.sendmsg_execute(uuid, app, arg, event_uuid=event_uuid, event_lock=event_lock)
        )
        limit = timeout or self.timeouts.execute
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Event] = loop.create_future()
        self._executes[event_uuid] = (uuid, done)
        self._executes_by_channel.setdefault(uuid, set()).add(event_uuid)
        # One future for the reply and the completion: a refusing reply fails it
        # (_on_batch), an accepting one leaves it to CHANNEL_EXECUTE_COMPLETE.
        expiry = loop.call_later(
            limit, _expire, done, f"execute {app} on {uuid}: no completion after {limit}s",
            self.node,
        )  # fmt: skip
        try:
            self._send(raw, completion=done, app=app)
            return await done
        finally:
            expiry.cancel()
            if self._executes.pop(event_uuid, None) is not None:
                self._forget_execute(uuid, event_uuid)

    async def hangup(
        self, uuid: str, cause: str = "NORMAL_CLEARING", *, timeout: float | None = None
    ) -> None:
        """Hang up channel ``uuid`` with ``cause``; EslCommandError if FreeSWITCH refuses."""
        raw = commands.encode(commands.sendmsg_hangup(uuid, cause))
        reply = await self._request(raw, timeout or self.timeouts.command, "hangup")
        if not isinstance(reply, CommandReply) or not reply.ok:
            raise EslCommandError(_reply_text(reply), node=self.node, command="hangup")

    async def command(self, text: str, *, timeout: float | None = None) -> CommandReply:
        """Send a command built by :mod:`telephony.esl.commands` (``filter``...); -ERR raises."""
        reply = await self._request(commands.encode(text), timeout or self.timeouts.command, text)
        if not isinstance(reply, CommandReply) or not reply.ok:
            raise EslCommandError(_reply_text(reply), node=self.node, command=text.split(" ")[0])
        return reply

    # -- events --------------------------------------------------------------------------

    def events(self) -> EventStream:
        """Subscribe from now on: events of the configured names, and connect/drop notices."""
        stream = EventStream(self, self.limits.stream_events)
        if self._closed:
            stream._end()
        else:
            self._streams.append(stream)
        return stream

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)


def _expire(future: asyncio.Future[Any], message: str, node: str) -> None:
    if not future.done():
        future.set_exception(EslTimeout(message, node=node))


def _reply_text(reply: object) -> str:
    if isinstance(reply, CommandReply):
        return reply.reply_text
    if isinstance(reply, ApiResponse):
        return reply.body.strip()
    return repr(reply)


async def connect_nodes(
    spec: str, **options: Any
) -> list[EslConnection]:  # pragma: no cover - thin convenience
    """Connect one :class:`EslConnection` per node of an ``esl://`` list (see ``parse_nodes``)."""
    connections = [EslConnection(address, **options) for address in parse_nodes(spec)]
    try:
        for connection in connections:
            await connection.connect()
    except BaseException:
        for connection in connections:
            await connection.close()
        raise
    return connections


__all__ = [
    "DEFAULT_EVENT_FORMAT",
    "INTERNAL_EVENTS",
    "Backoff",
    "EslConnection",
    "EslHooks",
    "EventStream",
    "Limits",
    "Liveness",
    "NoHooks",
    "Timeouts",
    "connect_nodes",
    "subscription_names",
]
