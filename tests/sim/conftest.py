"""A raw ESL client for the simulator tests: asyncio streams and bytes, no project parser.

Frames are read the way the protocol defines them (a header block, then exactly
``Content-Length`` bytes); ``text/event-plain`` bodies are split into lines first
and each value is URL-decoded afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest

from telephony.sim import Simulator

TIME_SCALE = 50.0
SUBSCRIBE = (
    "event plain CHANNEL_CREATE CHANNEL_PARK CHANNEL_ANSWER CHANNEL_EXECUTE "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HOLD CHANNEL_UNHOLD "
    "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY DTMF PLAYBACK_START PLAYBACK_STOP "
    "RECORD_START RECORD_STOP BACKGROUND_JOB CHANNEL_ORIGINATE CHANNEL_PROGRESS "
    "CHANNEL_PROGRESS_MEDIA CUSTOM sofia::register sofia::unregister sofia::expire"
)


@dataclass
class Frame:
    headers: dict[str, str]
    body: bytes
    raw: bytes

    @property
    def ctype(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass
class Ev:
    """A decoded plain event: header items (duplicates kept), a dict view, the body."""

    items: list[tuple[str, str]]
    body: str | None
    h: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.h = dict(self.items)

    @property
    def name(self) -> str:
        return self.h.get("Event-Subclass") or self.h["Event-Name"]

    @property
    def uuid(self) -> str:
        return self.h.get("Unique-ID", "")


def decode_plain(body: bytes) -> Ev:
    head, sep, rest = body.partition(b"\n\n")
    items = []
    for line in head.decode().split("\n"):
        name, _, value = line.partition(": ")
        items.append((name, unquote(value)))
    inner = None
    length = dict(items).get("Content-Length")
    if length is not None and sep:
        inner = rest[: int(length)].decode()
    return Ev(items, inner)


class RawClient:
    """Reads every frame in a background task; tests wait on what arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: list[Frame] = []
        self.decoded: list[Ev] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def _pump(self) -> None:
        try:
            while True:
                block = await self.reader.readuntil(b"\n\n")
                headers = dict(
                    line.split(": ", 1) for line in block.decode().strip("\n").split("\n") if line
                )
                body = b""
                if "Content-Length" in headers:
                    body = await self.reader.readexactly(int(headers["Content-Length"]))
                frame = Frame(headers, body, block + body)
                self.frames.append(frame)
                if frame.ctype == "text/event-plain":
                    self.decoded.append(decode_plain(body))
                self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = True
            self._changed.set()

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e.name, e.uuid[:8]) for e in self.decoded[-12:]]
                raise AssertionError(f"timed out; last events: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def replies(self) -> list[Frame]:
        return [f for f in self.frames if f.ctype in ("command/reply", "api/response")]

    def events(self, uuid: str | None = None) -> list[Ev]:
        return [e for e in self.decoded if uuid is None or e.uuid == uuid]

    def names(self, uuid: str) -> list[str]:
        return [e.name for e in self.events(uuid)]

    async def command(self, text: str, timeout: float = 5.0) -> Frame:
        """Send one command and return its reply (the next reply frame)."""
        before = len(self.replies())
        self.send(text if text.endswith("\n\n") else text + "\n\n")
        await self.wait(lambda: len(self.replies()) > before, timeout)
        return self.replies()[before]

    async def api(self, cmd: str) -> str:
        return (await self.command(f"api {cmd}")).body.decode()

    async def wait_event(
        self, name: str, uuid: str | None = None, n: int = 1, timeout: float = 5.0
    ) -> Ev:
        def found() -> list[Ev]:
            return [e for e in self.events(uuid) if e.name == name]

        await self.wait(lambda: len(found()) >= n, timeout)
        return found()[n - 1]

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, int]]:
    simulator = Simulator("ClueCon", time_scale=TIME_SCALE)
    port = await simulator.start("127.0.0.1", 0)
    try:
        yield simulator, port
    finally:
        await simulator.stop()


@pytest.fixture
async def client(sim: tuple[Simulator, int]) -> AsyncIterator[RawClient]:
    """An authenticated client subscribed to the control plane's event list."""
    c = await RawClient.connect(sim[1])
    await c.wait(lambda: bool(c.frames))
    assert (await c.command("auth ClueCon")).headers["Reply-Text"] == "+OK accepted"
    reply = await c.command(SUBSCRIBE)
    assert reply.headers["Reply-Text"] == "+OK event listener enabled plain"
    try:
        yield c
    finally:
        await c.close()


async def parked_call(c: RawClient, *options: str, dest: str = "12345") -> str:
    """Place a scripted call and wait for its CHANNEL_PARK; returns the caller's uuid."""
    body = await c.api(" ".join(["sim call", dest, "13800138000", *options]))
    assert body.startswith("+OK ")
    uuid = body.split()[1]
    await c.wait_event("CHANNEL_PARK", uuid)
    return uuid


async def execute(c: RawClient, uuid: str, app: str, arg: str = "", event_uuid: str = "") -> Ev:
    """``sendmsg execute`` with an Event-UUID; returns the matching EXECUTE_COMPLETE."""
    event_uuid = event_uuid or f"ev-{app}-{len(c.frames)}"
    msg = f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: {app}\n"
    if arg:
        msg += f"execute-app-arg: {arg}\n"
    msg += f"Event-UUID: {event_uuid}\n\n"
    reply = await c.command(msg)
    assert reply.headers["Reply-Text"] == "+OK"

    def done() -> bool:
        return any(
            e.name == "CHANNEL_EXECUTE_COMPLETE" and e.h.get("Application-UUID") == event_uuid
            for e in c.events(uuid)
        )

    await c.wait(done, 10)
    return next(
        e
        for e in c.events(uuid)
        if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.h.get("Application-UUID") == event_uuid
    )


async def agent_leg(c: RawClient, ext: str = "1001", caller: str = "", job: str = "job-1") -> str:
    """bgapi originate to a registered phone, parked; returns the agent's uuid."""
    vars_ = "origination_caller_id_number=12345,origination_caller_id_name=12345"
    if caller:
        vars_ += f",hotline_call={caller}"
    reply = await c.command(f"bgapi originate {{{vars_}}}user/{ext} &park()\nJob-UUID: {job}")
    assert reply.headers["Reply-Text"] == f"+OK Job-UUID: {job}"
    await c.wait(
        lambda: any(e.name == "BACKGROUND_JOB" and e.h["Job-UUID"] == job for e in c.events()),
        10,
    )
    ev = next(e for e in c.events() if e.name == "BACKGROUND_JOB" and e.h["Job-UUID"] == job)
    assert ev.body is not None and ev.body.startswith("+OK "), ev.body
    uuid = ev.body.split()[1]
    await c.wait_event("CHANNEL_PARK", uuid)
    return uuid
