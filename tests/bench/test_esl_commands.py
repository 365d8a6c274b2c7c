"""Command path: the CPU of one ``execute`` + one ``api`` through ``EslConnection``, against
a minimal asyncio client doing the same in the same run.

Run with ``pytest tests/bench/test_esl_commands.py -m bench -s`` (``ESL_BENCH_PAIRS`` sets
the pairs per round, default 20,000; ``ESL_BENCH_ROUNDS`` the rounds, default 4). A
separate process plays the switch: ``+OK`` to every command, and after a ``sendmsg``
execute the application's CHANNEL_EXECUTE_COMPLETE (the one of the ``hotline_ivr_agent``
trace, about 7 KB as FreeSWITCH sends it, with our ``Application-UUID``). Fifty calls run
at once, each a loop of ``execute`` then ``api``, waiting for each as the engine does.

* ``minimal``: an ``asyncio.Protocol``, replies matched in a FIFO of futures and
  completions by ``Application-UUID``, events decoded by orjson; nothing else;
* ``telephony``: :class:`~telephony.esl.transport.EslConnection` as ``telephony serve``
  configures it (the engine's subscription and filters).

Both on uvloop, as ``telephony serve`` runs; CPU is this process's ``process_time``, the
server's own excluded. The best round counts. Asserted: every command was answered.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import uvloop

from telephony.esl import serialize
from telephony.esl.messages import Event
from telephony.esl.parser import FrameParser, decode
from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS, NodeAddress
from telephony.esl.transport import EslConnection
from tests.bench.baseline import cut_frames, sendmsg_execute

pytestmark = pytest.mark.bench

TRACE_FILE = Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "traces"
TRACE_FILE = TRACE_FILE / "hotline_ivr_agent.txt"
PAIRS = int(os.environ.get("ESL_BENCH_PAIRS", "20000"))
ROUNDS = int(os.environ.get("ESL_BENCH_ROUNDS", "4"))
CALLS = 50


def _completion() -> dict[str, str]:
    """The trace's first CHANNEL_EXECUTE_COMPLETE, as header -> value."""
    parser = FrameParser()
    parser.feed(TRACE_FILE.read_bytes())
    for frame in parser.frames():
        event = decode(frame)  # type: ignore[arg-type]
        if isinstance(event, Event) and event.name == "CHANNEL_EXECUTE_COMPLETE":
            return dict(event.headers)
    raise AssertionError("no CHANNEL_EXECUTE_COMPLETE in the trace")


def _serve(listener: socket.socket) -> None:
    template = _completion()
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_session, args=(conn, template), daemon=True).start()


def _session(conn: socket.socket, template: dict[str, str]) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(serialize.auth_request())
    ok, api_ok = serialize.command_reply("+OK"), serialize.api_response("+OK\n")
    buf = b""
    try:
        while data := conn.recv(65536):
            buf += data
            out = []
            while b"\n\n" in buf:
                command, buf = buf.split(b"\n\n", 1)
                lines = command.decode().split("\n")
                if lines[0].startswith("api "):
                    out.append(api_ok)
                    continue
                out.append(ok)
                if lines[0].startswith("sendmsg "):
                    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                    event = {
                        **template,
                        "Unique-ID": lines[0][len("sendmsg ") :],
                        "Application": headers.get("execute-app-name", ""),
                        "Application-UUID": headers.get("Event-UUID", ""),
                    }
                    out.append(serialize.event_json(list(event.items()), None))
                elif lines[0] == "exit":
                    out.append(serialize.disconnect_notice())
            conn.sendall(b"".join(out))
    except OSError:
        return
    finally:
        conn.close()


class _Minimal(asyncio.Protocol):
    """The least a client needs for the same exchange (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies: deque[asyncio.Future[bool]] = deque()
        self.completions: dict[str, asyncio.Future[None]] = {}
        self.rest = b""
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        frames, self.rest = cut_frames(self.rest + data if self.rest else data)
        for kind, _, body in frames:
            if kind == b"text/event-json":
                event = orjson.loads(body)
                done = self.completions.pop(event.get("Application-UUID", ""), None)
                if done is not None:
                    done.set_result(None)
            elif kind in (b"command/reply", b"api/response"):
                self.replies.popleft().set_result(True)
            elif kind == b"auth/request":
                self.ready.set_result(None)

    def send(self, text: str) -> asyncio.Future[bool]:
        assert self.transport is not None
        future = asyncio.get_running_loop().create_future()
        self.replies.append(future)
        self.transport.write((text + "\n\n").encode())
        return future

    async def execute(self, uid: str, app: str, arg: str) -> None:
        event_uuid = str(uuid.uuid4())
        done = asyncio.get_running_loop().create_future()
        self.completions[event_uuid] = done
        await self.send(sendmsg_execute(uid, app, arg, event_uuid))
        await done

    async def api(self, command: str) -> None:
        await self.send(f"api {command}")


Pair = Callable[[str], Awaitable[None]]


async def _rounds(pair: Pair) -> tuple[float, int]:
    """Best CPU seconds per pair over the rounds, and the pairs completed."""
    calls = [str(uuid.uuid4()) for _ in range(CALLS)]
    completed = 0

    async def call(uid: str) -> None:
        nonlocal completed
        for _ in range(PAIRS // CALLS):
            await pair(uid)
            completed += 1

    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        await asyncio.wait_for(asyncio.gather(*(call(uid) for uid in calls)), 120)
        best = min(best, (time.process_time() - started) / (PAIRS // CALLS * CALLS))
    return best, completed


async def _minimal(port: int) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(_Minimal, "127.0.0.1", port)
    await client.ready
    await client.send("auth ClueCon")
    await client.send("event json " + " ".join(ENGINE_EVENTS))

    async def pair(uid: str) -> None:
        await client.execute(uid, "playback", "/tmp/a.wav")
        await client.api(f"uuid_setvar {uid} a b")

    try:
        return await _rounds(pair)
    finally:
        assert client.transport is not None
        client.transport.close()


async def _telephony(port: int) -> tuple[float, int]:
    connection = EslConnection(
        NodeAddress("127.0.0.1", port, "ClueCon"),
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    await connection.connect()

    async def pair(uid: str) -> None:
        await connection.execute(uid, "playback", "/tmp/a.wav")
        await connection.api("uuid_setvar", uid, "a", "b")

    try:
        return await _rounds(pair)
    finally:
        await connection.close()


@pytest.mark.timeout(600)
def test_command_path() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(listener,))
    server.start()
    try:
        minimal, minimal_done = uvloop.run(_minimal(port))
        ours, ours_done = uvloop.run(_telephony(port))
    finally:
        server.kill()
        server.join()
        listener.close()
    print(f"\nCPU per execute + api ({PAIRS} a round, {CALLS} calls at once, best of {ROUNDS}):")
    print(f"  minimal    {minimal * 1e6:7.1f} us")
    print(f"  telephony  {ours * 1e6:7.1f} us  ({ours / minimal:.2f}x the minimal client)")
    expected = ROUNDS * (PAIRS // CALLS) * CALLS
    assert (minimal_done, ours_done) == (expected, expected)
