"""The baseline controller: the least ESL work that serves the benchmark's calls, nothing else.

``python -m tests.bench.baseline --esl 127.0.0.1:PORT --path ivr|agent`` is a fixed
yardstick for the capacity benchmark: plain asyncio and orjson, no ``telephony`` import,
so its cost per call does not move when the control plane's code does, and the ratio
"control plane CPU per call / baseline CPU per call" measured in one run compares
today's code with later code on any machine.

It subscribes (``event json``) to the four events it needs and, per call:

* CHANNEL_PARK of an inbound leg: ``answer``, ``playback`` of the welcome and of the menu;
* the first DTMF: ``playback`` of the next prompt (the consult menu, or "to an agent");
  on the ``agent`` path also ``bgapi originate`` of the next agent phone
  (``user/EXT``, round robin, ``&park()``);
* the originate's BACKGROUND_JOB ``+OK``: ``bgapi uuid_bridge`` and ``bgapi uuid_record``.

No database, no log lines, no state beyond the calls waiting for their key.

``--protocol engine`` is the *floor* instead: the ESL traffic the engine itself has for
a call, at the least CPU plain asyncio allows. The same subscription and filters as
``telephony serve`` (so the same events a call, each decoded), and the engine's
commands in its order, each waiting for what the engine waits for: ``uuid_park`` on the
dialplan's park; on the core's park ``answer``, then ``uuid_setvar_multi``, ``playback``
of the welcome, ``play_and_get_digits`` of the menu, then on the ``ivr`` path that of
the consult menu; on the ``agent`` path ``playback`` of "to an agent", music on hold
and ``bgapi originate`` of the next phone, on its ``+OK`` ``uuid_break`` and
``uuid_bridge``, at the caller's CHANNEL_BRIDGE ``uuid_record``, and at the caller's
hang-up ``uuid_kill`` of the agent's leg. Every reply is matched in a FIFO and every
``execute`` to its CHANNEL_EXECUTE_COMPLETE by our ``Event-UUID``. What ``telephony
serve`` costs above this is the engine (state, CDRs, the IVR interpreter, logs,
metrics, the database); this much any CPython controller of this protocol pays.

``--protocol esl`` is the same calls, commands and waits as the floor, written against
``telephony.esl`` (an :class:`~telephony.esl.transport.EslConnection` configured as
``telephony serve`` configures it, one coroutine a call): what our ESL layer costs above
the floor, with no engine. The floor reads only the engine's subscription from
``telephony``; ``esl`` uses its ESL layer; the baseline imports nothing of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import socket
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

PROMPTS = Path(__file__).resolve().parents[2] / "ivr_flows" / "prompts"


def sendmsg_execute(uid: str, app: str, arg: str = "", event_uuid: str = "") -> str:
    """A ``sendmsg`` execute, without the blank line that ends it."""
    lines = [f"sendmsg {uid}", "call-command: execute", f"execute-app-name: {app}"]
    if arg:
        lines.append(f"execute-app-arg: {arg}")
    if event_uuid:
        lines.append(f"Event-UUID: {event_uuid}")
    return "\n".join(lines)


def collect_arg(prompt: str) -> str:
    """``play_and_get_digits`` of one key after a 12345 prompt, as the engine asks it."""
    file = PROMPTS / "12345" / prompt
    return f"1 1 1 5000 none {file} silence_stream://250 ivr_in_1 ^[0-9*#]+$ 5000"


class Baseline:
    def __init__(self, path: str, extensions: list[str], recordings: Path) -> None:
        self.path = path
        self.extensions = itertools.cycle(extensions)
        self.recordings = recordings
        self.waiting_key: set[str] = set()
        self.jobs: dict[str, tuple[str, str]] = {}
        self.writer: asyncio.StreamWriter | None = None

    def send(self, text: str) -> None:
        assert self.writer is not None
        self.writer.write(text.encode())

    def execute(self, uid: str, app: str, arg: str = "") -> None:
        self.send(sendmsg_execute(uid, app, arg) + "\n\n")

    def bgapi(self, command: str, job: str | None = None) -> None:
        self.send(f"bgapi {command}\nJob-UUID: {job or uuid.uuid4()}\n\n")

    def on_event(self, event: dict[str, Any]) -> None:
        name = event.get("Event-Name")
        uid = event.get("Unique-ID", "")
        if name == "CHANNEL_PARK":
            if event.get("Call-Direction") != "inbound" or uid in self.waiting_key:
                return
            self.waiting_key.add(uid)
            self.execute(uid, "answer")
            self.execute(uid, "playback", str(PROMPTS / "12345" / "welcome.wav"))
            self.execute(uid, "playback", str(PROMPTS / "12345" / "menu_main.wav"))
        elif name == "DTMF":
            if uid not in self.waiting_key:
                return
            self.waiting_key.discard(uid)
            if self.path == "ivr":
                self.execute(uid, "playback", str(PROMPTS / "12345" / "menu_consult.wav"))
                return
            self.execute(uid, "playback", str(PROMPTS / "common" / "to_agent.wav"))
            leg, job = str(uuid.uuid4()), str(uuid.uuid4())
            self.jobs[job] = (uid, leg)
            ext = next(self.extensions)
            self.bgapi(
                f"originate {{origination_uuid={leg},originate_timeout=15}}user/{ext} &park()",
                job,
            )
        elif name == "BACKGROUND_JOB":
            legs = self.jobs.pop(event.get("Job-UUID", ""), None)
            if legs is None or not str(event.get("_body", "")).startswith("+OK"):
                return
            caller, agent = legs
            self.bgapi(f"uuid_bridge {caller} {agent}")
            self.bgapi(f"uuid_record {caller} start {self.recordings / caller}.wav")

    async def run(self, host: str, port: int, password: str) -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        self.writer = writer
        await _frame(reader)  # auth/request
        self.send(f"auth {password}\n\n")
        await _frame(reader)
        self.send("event json CHANNEL_PARK DTMF BACKGROUND_JOB\n\n")
        while True:
            headers, body = await _frame(reader)
            if headers.get("Content-Type") == "text/event-json":
                self.on_event(orjson.loads(body))
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()


def cut_frames(buf: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """The complete frames in ``buf`` as (Content-Type, Reply-Text, body), and the rest."""
    frames = []
    pos = 0
    while (end := buf.find(b"\n\n", pos)) >= 0:
        length, kind, reply = 0, b"", b""
        for line in buf[pos:end].split(b"\n"):
            name, _, value = line.partition(b": ")
            if name == b"Content-Length":
                length = int(value)
            elif name == b"Content-Type":
                kind = value
            elif name == b"Reply-Text":
                reply = value
        stop = end + 2 + length
        if stop > len(buf):
            break
        frames.append((kind, reply, buf[end + 2 : stop]))
        pos = stop
    return frames, buf[pos:]


Then = Callable[[], None]


class Floor(asyncio.Protocol):
    """``--protocol engine``: the engine's ESL traffic for a call (module docstring).

    As lean as the protocol allows: an ``asyncio.Protocol`` on uvloop (as ``telephony
    serve`` runs), frames cut from each read in place, callbacks instead of coroutines.
    """

    def __init__(
        self, password: str, path: str = "ivr", extensions: list[str] | None = None,
        recordings: Path = Path("/tmp"),
    ) -> None:  # fmt: skip
        self.password = password
        self.path = path
        self.extensions = itertools.cycle(extensions or ["2000"])
        self.recordings = recordings
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.rest = b""
        self.replies: deque[Then | None] = deque()
        self.completions: dict[str, tuple[str, Then]] = {}
        self.by_channel: dict[str, set[str]] = {}
        self.jobs: dict[str, tuple[str, str]] = {}  # Job-UUID -> (caller, agent leg)
        self.bridging: dict[str, str] = {}  # caller -> agent leg, until CHANNEL_BRIDGE
        self.agent_of: dict[str, str] = {}  # caller -> agent leg, while bridged

    # -- the socket ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as telephony serve

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        frames, self.rest = cut_frames(self.rest + data if self.rest else data)
        for kind, reply, body in frames:
            if kind == b"text/event-json":
                self.on_event(orjson.loads(body))
            elif kind == b"command/reply":
                self.on_reply(reply.startswith(b"+OK"))
            elif kind == b"api/response":
                self.on_reply(body.startswith(b"+OK"))
            elif kind == b"auth/request":
                self.command(f"auth {self.password}", self.subscribe)

    # -- commands ------------------------------------------------------------------------

    def subscribe(self) -> None:
        """What ``telephony serve`` subscribes to and filters, read from it (no copy that
        could drift): its events and the dialplan applications the switch drops."""
        from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
        from telephony.esl.transport import subscription_names

        self.command("event json " + " ".join(subscription_names(ENGINE_EVENTS)))
        self.command("filter Event-Name /./")
        for app in DIALPLAN_APPLICATIONS:
            self.command(f"filter Application -{app}")

    def command(self, text: str, then: Then | None = None) -> None:
        assert self.transport is not None
        self.replies.append(then)
        self.transport.write((text + "\n\n").encode())

    def run_app(self, uid: str, app: str, arg: str, then: Then) -> None:
        """``execute`` with our Event-UUID: ``then`` runs at its CHANNEL_EXECUTE_COMPLETE."""
        event_uuid = str(uuid.uuid4())
        self.completions[event_uuid] = (uid, then)
        self.by_channel.setdefault(uid, set()).add(event_uuid)
        self.command(sendmsg_execute(uid, app, arg, event_uuid))

    def on_reply(self, ok: bool) -> None:
        then = self.replies.popleft() if self.replies else None
        if then is not None and ok:
            then()

    # -- the calls -----------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        name = event.get("Event-Name")
        uid = event.get("Unique-ID", "")
        if name == "CHANNEL_EXECUTE_COMPLETE":
            entry = self.completions.pop(event.get("Application-UUID", ""), None)
            if entry is not None:
                self.by_channel.get(entry[0], set()).discard(event["Application-UUID"])
                entry[1]()
        elif name == "CHANNEL_PARK" and event.get("Call-Direction") == "inbound":
            if event.get("Channel-State") == "CS_PARK":
                self.ivr(uid)
            else:
                self.command(f"api uuid_park {uid}")
        elif name == "BACKGROUND_JOB":
            legs = self.jobs.pop(event.get("Job-UUID", ""), None)
            if legs is not None and str(event.get("_body", "")).startswith("+OK"):
                self.bridge(*legs)
        elif name == "CHANNEL_BRIDGE" and uid in self.bridging:
            self.agent_of[uid] = self.bridging.pop(uid)
            self.command(f"api uuid_record {uid} start {self.recordings / uid}.wav")
        elif name == "CHANNEL_HANGUP_COMPLETE":
            for event_uuid in self.by_channel.pop(uid, set()):
                self.completions.pop(event_uuid, None)
            leg = self.agent_of.pop(uid, None) or self.bridging.pop(uid, None)
            if leg is not None:
                self.command(f"api uuid_kill {leg} NORMAL_CLEARING")

    def ivr(self, uid: str) -> None:
        def collect(prompt: str, then: Then) -> Then:
            return lambda: self.run_app(uid, "play_and_get_digits", collect_arg(prompt), then)

        def to_agent() -> None:
            prompt = str(PROMPTS / "common" / "to_agent.wav")
            self.run_app(uid, "playback", prompt, lambda: self.queue(uid))

        after_menu = collect("menu_consult.wav", lambda: None) if self.path == "ivr" else to_agent
        menu = collect("menu_main.wav", after_menu)

        def welcome() -> None:
            self.run_app(uid, "playback", str(PROMPTS / "12345" / "welcome.wav"), menu)

        def mark() -> None:
            variables = "park_after_bridge=true;playback_terminators=none;tel_state=ivr"
            self.command(f"api uuid_setvar_multi {uid} {variables}", welcome)

        self.run_app(uid, "answer", "", mark)

    def queue(self, uid: str) -> None:
        """Music on hold, and the next agent's phone rung (``bgapi originate``)."""
        self.run_app(uid, "playback", "local_stream://moh", lambda: None)
        leg, job = str(uuid.uuid4()), str(uuid.uuid4())
        self.jobs[job] = (uid, leg)
        variables = f"origination_uuid={leg},originate_timeout=15,hotline_call={uid}"
        target = f"{{{variables}}}user/{next(self.extensions)}"
        self.command(f"bgapi originate {target} &park()\nJob-UUID: {job}")

    def bridge(self, uid: str, leg: str) -> None:
        """The agent answered: music off, then ``uuid_bridge`` (recorded at CHANNEL_BRIDGE)."""
        self.bridging[uid] = leg
        self.command(
            f"api uuid_break {uid} all", lambda: self.command(f"api uuid_bridge {uid} {leg}")
        )

    async def run(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, host, port)
        await self.lost


async def _esl_floor(host: str, port: int, password: str) -> None:
    """``--protocol esl``: the floor's calls through ``telephony.esl`` (module docstring)."""
    from telephony.esl.messages import Event
    from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS, EslError, NodeAddress
    from telephony.esl.transport import EslConnection

    connection = EslConnection(
        NodeAddress(host, port, password),
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    tasks: set[asyncio.Task[None]] = set()

    async def ivr(uid: str) -> None:
        with contextlib.suppress(EslError):
            await connection.execute(uid, "answer")
            variables = "park_after_bridge=true;playback_terminators=none;tel_state=ivr"
            await connection.api("uuid_setvar_multi", uid, variables)
            await connection.execute(uid, "playback", str(PROMPTS / "12345" / "welcome.wav"))
            await connection.execute(uid, "play_and_get_digits", collect_arg("menu_main.wav"))
            await connection.execute(uid, "play_and_get_digits", collect_arg("menu_consult.wav"))

    async def take(uid: str) -> None:
        with contextlib.suppress(EslError):
            await connection.api("uuid_park", uid)

    def spawn(work: Any) -> None:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    stream = connection.events()
    await connection.connect()
    try:
        async for event in stream:
            if not isinstance(event, Event) or event.name != "CHANNEL_PARK":
                continue
            uid = event.unique_id
            if uid and event.get("Call-Direction") == "inbound":
                core_park = event.get("Channel-State") == "CS_PARK"
                spawn(ivr(uid) if core_park else take(uid))
    finally:
        await connection.close()


async def _frame(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    block = await reader.readuntil(b"\n\n")
    headers: dict[str, str] = {}
    for line in block.decode().splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            headers[name] = value
    length = int(headers.get("Content-Length", "0"))
    body = await reader.readexactly(length) if length else b""
    return headers, body


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.esl.rpartition(":")
    first, count = args.first_ext, args.phones
    extensions = [str(first + n) for n in range(max(1, count))]
    if args.protocol == "esl" and args.path != "ivr":
        raise SystemExit("--protocol esl serves the ivr path only")
    if args.protocol == "engine":
        floor = Floor(args.password, args.path, extensions, Path(args.recordings))
        run = floor.run(host or "127.0.0.1", int(port))
    elif args.protocol == "esl":
        run = _esl_floor(host or "127.0.0.1", int(port), args.password)
    else:
        baseline = Baseline(args.path, extensions, Path(args.recordings))
        run = baseline.run(host or "127.0.0.1", int(port), args.password)
    task = asyncio.create_task(run)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
        await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.baseline")
    parser.add_argument("--esl", required=True, metavar="HOST:PORT")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--path", choices=("ivr", "agent"), required=True)
    parser.add_argument("--first-ext", type=int, default=2000)
    parser.add_argument("--phones", type=int, default=1)
    parser.add_argument("--recordings", default="/tmp")
    parser.add_argument(
        "--protocol",
        choices=("least", "engine", "esl"),
        default="least",
        help="least: the fewest events and commands that serve the calls; engine: the"
        " engine's own subscription and commands, each waited for; esl: the same through"
        " telephony.esl (the ivr path only)",
    )
    args = parser.parse_args()
    if args.protocol != "least":
        import uvloop  # the loop telephony serve runs on

        uvloop.run(_main(args))
    else:
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
