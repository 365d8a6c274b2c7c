"""Event throughput: stock greenswitch against our transport + codec + asyncio bridge.

Run with ``pytest tests/bench -m bench -s`` (``ESL_BENCH_EVENTS`` sets the
number of events, default 100,000). A separate process serves the recorded
event stream of ``hotline_ivr_agent`` (its event frames, concatenated many
times) after answering ``auth/request``, ``auth`` and the subscription, in
``event plain`` or, for ``event json`` subscribers, the same events
re-serialized as JSON. Each client is timed from connect to its last event,
in one run, so the numbers are comparable; the test asserts only that every
event arrived.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from telephony.esl import serialize
from telephony.esl.messages import ContentType, Event
from telephony.esl.parser import FrameParser, decode
from telephony.esl.port import DEFAULT_EVENTS, EventFormat
from telephony.esl.transport import EslConnection

TRACE = Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "traces"
TRACE_FILE = TRACE / "hotline_ivr_agent.txt"
EVENTS = int(os.environ.get("ESL_BENCH_EVENTS", "100000"))


def _event_frames() -> tuple[bytes, bytes, int]:
    """(plain frames, the same events as JSON frames, number of events) of one trace pass."""
    data = TRACE_FILE.read_bytes()
    parser = FrameParser()
    parser.feed(data)
    plain: list[bytes] = []
    json: list[bytes] = []
    for frame in parser.frames():
        headers = getattr(frame, "headers", {})
        if headers.get("Content-Type") != ContentType.EVENT_PLAIN:
            continue
        event = decode(frame)  # type: ignore[arg-type]
        assert isinstance(event, Event)
        plain.append(serialize.event_plain(list(event.headers.items()), event.body))
        json.append(serialize.event_json(list(event.headers.items()), event.body))
    return b"".join(plain), b"".join(json), len(plain)


def _serve(listener: socket.socket, repeat: int) -> None:
    """Server process: answer the handshake, then stream the events ``repeat`` times."""
    plain, json, _ = _event_frames()
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_session, args=(conn, plain, json, repeat), daemon=True).start()


def _session(conn: socket.socket, plain: bytes, json: bytes, repeat: int) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(serialize.auth_request())
    buf = b""
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b"\n\n" in buf:
                command, buf = buf.split(b"\n\n", 1)
                line = command.split(b"\n", 1)[0].decode()
                if line.startswith("auth "):
                    conn.sendall(serialize.command_reply("+OK accepted"))
                elif line.startswith("event "):
                    fmt = line.split()[1]
                    conn.sendall(serialize.command_reply(f"+OK event listener enabled {fmt}"))
                    payload = json if fmt == "json" else plain
                    chunk = payload * 16
                    full, rest = divmod(repeat, 16)
                    for _ in range(full):
                        conn.sendall(chunk)
                    for _ in range(rest):
                        conn.sendall(payload)
                elif line == "exit":
                    conn.sendall(serialize.command_reply("+OK bye"))
                    conn.sendall(serialize.disconnect_notice())
                    return
                else:
                    conn.sendall(serialize.command_reply("+OK"))
    except OSError:
        return
    finally:
        conn.close()


def _greenswitch_run(port: int, expected: int) -> tuple[int, float, float]:
    """Stock greenswitch in its own thread and hub: count events in a '*' handler."""
    result: dict[str, Any] = {}

    def run() -> None:
        import gevent
        import gevent.event
        from greenswitch.esl import InboundESL

        done = gevent.event.Event()
        count = 0

        def on_event(event: Any) -> None:
            nonlocal count
            count += 1
            if count >= expected:
                done.set()

        cpu0, t0 = time.thread_time(), time.perf_counter()
        esl = InboundESL("127.0.0.1", port, "ClueCon")
        esl.connect()
        esl.register_handle("*", on_event)
        esl.send("event plain ALL")
        done.wait(timeout=600)
        result.update(count=count, wall=time.perf_counter() - t0, cpu=time.thread_time() - cpu0)
        esl._run = False  # stop() would wait for 'exit' on a socket full of events
        esl.sock.close()
        gevent.joinall([esl._receive_events_greenlet, esl._process_events_greenlet], timeout=2)
        gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=run, name="bench-greenswitch")
    thread.start()
    thread.join()
    return result["count"], result["wall"], result["cpu"]


async def _ours_run(port: int, expected: int, fmt: EventFormat) -> tuple[int, float, float]:
    """Our transport: count the events arriving at the asyncio consumer."""
    wanted = frozenset(DEFAULT_EVENTS)
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}", event_format=fmt)
    stream = connection.events()
    count = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    await connection.connect()
    try:
        async with asyncio.timeout(600):
            async for item in stream:
                if isinstance(item, Event) and item.name in wanted:
                    count += 1
                    if count >= expected:
                        break
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await connection.close()
    return count, wall, cpu


@pytest.mark.bench
async def test_event_throughput_greenswitch_vs_ours() -> None:
    _, _, per_pass = _event_frames()
    repeat = math.ceil(EVENTS / per_pass)
    expected = repeat * per_pass
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(listener, repeat), daemon=True
    )
    server.start()
    try:
        results = {
            "greenswitch (stock, plain)": await asyncio.to_thread(_greenswitch_run, port, expected),
            "ours plain": await _ours_run(port, expected, "plain"),
            "ours json": await _ours_run(port, expected, "json"),
        }
    finally:
        server.kill()
        server.join()
        listener.close()
    print(f"\nESL event throughput, {expected:,} events ({per_pass} per trace pass):")
    rates: dict[str, float] = {}
    for name, (count, wall, cpu) in results.items():
        rates[name] = count / wall
        print(
            f"  {name:28s} {count / wall:>10,.0f} events/s  "
            f"{wall:6.2f} s wall  {cpu / wall:5.0%} CPU of the client"
        )
    base = rates["greenswitch (stock, plain)"]
    print(f"  ratio ours plain / greenswitch: {rates['ours plain'] / base:.2f}")
    print(f"  ratio ours json  / greenswitch: {rates['ours json'] / base:.2f}")
    print(f"  ratio ours json  / ours plain:  {rates['ours json'] / rates['ours plain']:.2f}")
    for name, (count, _, _) in results.items():
        assert count == expected, name
