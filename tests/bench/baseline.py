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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import uuid
from pathlib import Path
from typing import Any

import orjson

PROMPTS = Path(__file__).resolve().parents[2] / "ivr_flows" / "prompts"


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
        lines = [f"sendmsg {uid}", "call-command: execute", f"execute-app-name: {app}"]
        if arg:
            lines.append(f"execute-app-arg: {arg}")
        self.send("\n".join(lines) + "\n\n")

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
    baseline = Baseline(
        args.path, [str(first + n) for n in range(max(1, count))], Path(args.recordings)
    )
    task = asyncio.create_task(baseline.run(host or "127.0.0.1", int(port), args.password))
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
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
