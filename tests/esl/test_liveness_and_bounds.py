"""Issue 7, items 3(d) and 10: the liveness watchdog and the bounded buffers of the transport.

Each failure ends the same way: NodeDisconnected, a reconnect, NodeConnected(reconnect=True)
(on which the engine re-adopts the node), never a hang, unbounded growth or a silent loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from telephony.esl.messages import Event
from telephony.esl.parser import Command
from telephony.esl.port import EslDisconnected, NodeConnected, NodeDisconnected, SwitchEvent
from telephony.esl.transport import (
    Backoff,
    EslConnection,
    EslHooks,
    EventStream,
    Limits,
    Liveness,
    Timeouts,
)

from .fakeswitch import FakeSwitch, Session, channel_event

FAST = Backoff(initial=0.05, maximum=0.2)


class Recorder:
    """EslHooks that remember what they were told."""

    def __init__(self) -> None:
        self.probe_failures: list[str] = []
        self.overflows: list[tuple[str, str]] = []
        self.stream_depths: list[int] = []
        self.handoff_depths: list[int] = []

    def probe_failed(self, node: str) -> None:
        self.probe_failures.append(node)

    def overflow(self, node: str, buffer: str) -> None:
        self.overflows.append((node, buffer))

    def depth(self, node: str, stream: int, handoff: int) -> None:
        self.stream_depths.append(stream)
        self.handoff_depths.append(handoff)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def _next(stream: EventStream, timeout: float = 5.0) -> SwitchEvent:
    async with asyncio.timeout(timeout):
        return await anext(stream)


@pytest.fixture
async def switch() -> AsyncIterator[FakeSwitch]:
    server = FakeSwitch()
    await server.start()
    yield server
    await server.stop()


def _connection(switch: FakeSwitch, hooks: EslHooks, **options: object) -> EslConnection:
    return EslConnection(
        switch.url,
        backoff=FAST,
        timeouts=Timeouts(connect=2.0, command=30.0, bgapi=30.0, execute=30.0),
        hooks=hooks,
        **options,  # type: ignore[arg-type]
    )


def test_defaults_probe_after_five_quiet_seconds_and_bound_every_buffer() -> None:
    connection = EslConnection("esl://:x@127.0.0.1:1")
    assert connection.liveness == Liveness(silence=5.0, probe_timeout=3.0)
    assert connection.limits.stream_events > 0 and connection.limits.handoff_items > 0
    assert connection.events().limit == connection.limits.stream_events


async def test_a_node_that_stops_answering_is_dropped_and_reconnected(switch: FakeSwitch) -> None:
    hooks = Recorder()
    connection = _connection(switch, hooks, liveness=Liveness(silence=0.2, probe_timeout=0.3))
    stream = connection.events()
    await connection.connect()
    hung = True

    async def on_command(command: Command, session: Session) -> bool:
        return hung and command.name == "api"  # TCP up, the listener answers nothing

    switch.on_command = on_command
    try:
        started = time.monotonic()
        pending = asyncio.create_task(connection.api("uuid_exists", "a-channel"))  # 30 s timeout
        assert isinstance(await _next(stream), NodeConnected)
        dropped = await _next(stream, timeout=3.0)
        assert isinstance(dropped, NodeDisconnected), dropped
        assert "liveness probe" in dropped.reason
        with pytest.raises(EslDisconnected):
            await asyncio.wait_for(pending, 1.0)  # failed at the drop, not after its 30 s
        assert time.monotonic() - started < 3.0
        hung = False
        connected = await _next(stream, timeout=3.0)
        assert isinstance(connected, NodeConnected) and connected.reconnect
        assert connection.connected
        assert hooks.probe_failures == [connection.node] and connection.probe_failures == 1
        assert "api status" in switch.lines("api")
        await asyncio.wait_for(switch.sessions[0].closed.wait(), 2.0)  # the hung socket is closed
        assert len(switch.lines("auth")) == 2
        assert (await connection.api("status")).ok
    finally:
        await connection.close()


async def test_an_idle_node_that_answers_the_probe_stays_connected(switch: FakeSwitch) -> None:
    hooks = Recorder()
    connection = _connection(switch, hooks, liveness=Liveness(silence=0.05, probe_timeout=0.5))
    await connection.connect()
    try:
        await _until(lambda: switch.lines("api").count("api status") >= 3)
        assert connection.connected and len(switch.lines("auth")) == 1
        assert hooks.probe_failures == []
    finally:
        await connection.close()


async def test_no_probe_while_events_flow(switch: FakeSwitch) -> None:
    connection = _connection(switch, Recorder(), liveness=Liveness(silence=0.15))
    stream = connection.events()
    await connection.connect()
    try:
        for n in range(20):
            switch.session.event(channel_event("CHANNEL_CREATE", f"leg-{n}"))
            await asyncio.sleep(0.03)
        assert switch.lines("api") == []
        assert len(stream.drain()) == 21  # NodeConnected and every event
    finally:
        await connection.close()


async def test_an_engine_far_behind_forces_a_reconnect_not_a_silent_drop(
    switch: FakeSwitch,
) -> None:
    hooks = Recorder()
    connection = _connection(switch, hooks, limits=Limits(stream_events=50))
    stream = connection.events()  # nobody reads it
    await connection.connect()
    try:
        switch.session.send(
            b"".join(
                switch.session.event_bytes(channel_event("CHANNEL_CREATE", f"leg-{n}"))
                for n in range(200)
            )
        )
        await _until(lambda: bool(hooks.overflows))
        await _until(lambda: connection.connected and len(switch.lines("auth")) == 2)
        await asyncio.sleep(0.05)
        items = stream.drain()
        assert isinstance(items[0], NodeConnected) and not items[0].reconnect
        events = [item for item in items if isinstance(item, Event)]
        # in order and without a gap up to the bound; nothing after the overflow
        assert [e.unique_id for e in events] == [f"leg-{n}" for n in range(49)]
        dropped, connected = items[-2:]
        assert isinstance(dropped, NodeDisconnected) and "event stream full" in dropped.reason
        assert isinstance(connected, NodeConnected) and connected.reconnect
        assert hooks.overflows == [(connection.node, "stream")] and connection.overflows == 1
        assert max(hooks.stream_depths) <= 50 + 2  # the bound, plus the two notices
    finally:
        await connection.close()


@pytest.mark.wire("greenswitch")
async def test_a_blocked_loop_overflows_the_hand_off_and_forces_a_reconnect(
    switch: FakeSwitch,
) -> None:
    hooks = Recorder()
    connection = _connection(
        switch, hooks, limits=Limits(handoff_items=20, handoff_stall=0.2), liveness=Liveness(0)
    )
    stream = connection.events()
    await connection.connect()
    try:
        switch.session.send(
            b"".join(
                switch.session.event_bytes(channel_event("CHANNEL_CREATE", f"leg-{n}"))
                for n in range(100)
            )
        )
        time.sleep(1.0)  # the loop is blocked: the gevent thread reads on, up to its bound
        await _until(lambda: bool(hooks.overflows))
        assert hooks.overflows == [(connection.node, "handoff")]
        await _until(lambda: connection.connected and len(switch.lines("auth")) == 2)
        await asyncio.sleep(0.05)
        items = stream.drain()
        events = [item for item in items if isinstance(item, Event)]
        # what was read before the overflow is delivered, in order; nothing read is lost
        assert [e.unique_id for e in events] == [f"leg-{n}" for n in range(len(events))]
        assert events, "the first read is delivered"
        dropped, connected = items[-2:]
        assert isinstance(dropped, NodeDisconnected) and "hand-off" in dropped.reason
        assert isinstance(connected, NodeConnected) and connected.reconnect
    finally:
        await connection.close()


@pytest.mark.wire("loop")
async def test_a_blocked_loop_reads_nothing_and_then_loses_nothing(switch: FakeSwitch) -> None:
    """On the loop's own wire there is no hand-off to fill: TCP holds what the loop has not
    read, and every event arrives, in order, once the loop runs again; no reconnect."""
    hooks = Recorder()
    connection = _connection(switch, hooks, liveness=Liveness(0))
    stream = connection.events()
    await connection.connect()
    try:
        switch.session.send(
            b"".join(
                switch.session.event_bytes(channel_event("CHANNEL_CREATE", f"leg-{n}"))
                for n in range(2000)
            )
        )
        time.sleep(1.0)  # the loop is blocked: nobody reads the socket
        await _until(lambda: len(stream._items) >= 2001)
        items = stream.drain()
        assert isinstance(items[0], NodeConnected)
        events = [item for item in items if isinstance(item, Event)]
        assert [e.unique_id for e in events] == [f"leg-{n}" for n in range(2000)]
        assert not hooks.overflows and connection.connected
        assert max(hooks.handoff_depths) == 0  # nothing waits between the socket and the loop
        assert len(switch.lines("auth")) == 1
    finally:
        await connection.close()
