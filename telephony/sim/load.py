"""Load driver inside the simulator process: citizens at a rate, each call's fate from the switch.

``python -m telephony.sim.load --listen 127.0.0.1:8021 --control 127.0.0.1:8022`` runs the
simulator (as ``telephony sim`` does) plus a control port for a benchmark. The load is
generated here, in the switch's own process, so the load generator never competes with
the control plane it measures, and every time is read on the switch's clock.

A *run* places ``count`` calls at ``rate`` new calls per simulated second to ``dest``,
from ``prefix`` followed by a 6-digit sequence number, each a scripted citizen:

``ivr``    wait for the answer (``answer_patience_s``, else hang up: ORIGINATOR_CANCEL),
           press ``digit`` ``dtmf_delay_s`` after the answer, hang up ``after_digit_s``
           later (recv_bye).
``agent``  the same up to the key, then wait to be bridged (``queue_patience_s``, else
           hang up), and hang up ``talk_s`` after the bridge (recv_bye).

Every event the switch fires on a run's caller legs is observed (before subscription
filtering), so the run knows, per call: when it was answered, when the key was pressed,
when the next prompt started (PLAYBACK_START, or CHANNEL_EXECUTE of a media app: the
same rule as the control plane's reaction timer), when it was bridged, and how and by
whom it ended. :meth:`Run.report` sums that up: attempted, served (the scripted end was
reached: for ``ivr`` the key got its next prompt, for ``agent`` the call was bridged),
refused (ended by the switch side before answer), the other failures by kind, hang-up
causes, and the samples (ms) of key press -> next prompt, of the answer delay (placed
-> answered) and of the queue wait (key -> bridged).

Control protocol: one JSON object per line, one reply line each::

    {"cmd": "phones", "count": 300, "first": 2000, "answer_after_ms": 0}
    {"cmd": "set", "name": "playback_default_ms", "value": "1000"}
    {"cmd": "start", "run": "ivr-10", "path": "ivr", "count": 150, "rate": 10,
     "prefix": "1501", "digit": "1"}                      (other fields: see RunSpec)
    {"cmd": "status", "run": "ivr-10"}   -> {"placed": .., "active": .., "count": ..}
    {"cmd": "report", "run": "ivr-10"}   -> Run.report()
    {"cmd": "stats"}                     -> channels, phones, calls placed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from telephony import runtime
from telephony.sim.channel import Channel
from telephony.sim.server import Simulator
from telephony.sim.switch import Switch

log = logging.getLogger(__name__)

#: Applications whose CHANNEL_EXECUTE starts a prompt (as telephony.ivr.timing counts them).
MEDIA_APPS = frozenset({"playback", "speak", "say", "play_and_get_digits", "record"})
PATHS = ("ivr", "agent")


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What one run's citizens do (times in simulated seconds)."""

    path: str
    count: int
    rate: float
    prefix: str
    dest: str = "12345"
    digit: str = "1"
    dtmf_delay_s: float = 3.0
    after_digit_s: float = 1.0
    talk_s: float = 4.0
    answer_patience_s: float = 15.0
    queue_patience_s: float = 30.0

    @classmethod
    def of(cls, data: dict[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        spec = cls(**{k: v for k, v in data.items() if k in names})
        if spec.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}")
        if spec.count < 1 or spec.rate <= 0:
            raise ValueError("count and rate must be positive")
        return spec


@dataclass(slots=True)
class Fate:
    """What happened to one citizen's call, on the switch's clock (simulated seconds)."""

    placed: float
    answered: float | None = None
    pressed: float | None = None
    prompt: float | None = None  # the first prompt start after the key
    bridged: float | None = None
    ended: float | None = None
    cause: str = ""
    disposition: str = ""
    #: The citizen reached the script's end and hung up as planned.
    scripted: bool = False
    #: The citizen gave up: "unanswered" or "queue".
    gave_up: str = ""
    #: Set at the bridge; dropped when the call ends (a run keeps every fate: an Event each
    #: would grow the heap the garbage collector scans, and its pauses, over a long run).
    bridged_evt: asyncio.Event | None = field(default_factory=asyncio.Event)


class Run:
    """One run's calls and their fates."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.fates: list[Fate] = []
        self.active = 0
        self.done_placing = False

    def served(self, fate: Fate) -> bool:
        if self.spec.path == "ivr":
            return fate.scripted and fate.prompt is not None
        return fate.bridged is not None

    def report(self) -> dict[str, Any]:
        fates = self.fates
        kinds: Counter[str] = Counter()
        causes: Counter[str] = Counter()
        for fate in fates:
            kind = self._kind(fate)
            kinds[kind] += 1
            if kind not in ("served", "up"):
                causes[f"{fate.cause or 'none'}/{fate.disposition or 'none'}"] += 1
        return {
            "path": self.spec.path,
            "count": self.spec.count,
            "attempted": len(fates),
            "served": kinds.pop("served", 0),
            "refused": kinds.pop("refused", 0),
            "up": kinds.pop("up", 0),
            "answered": sum(1 for f in fates if f.answered is not None),
            "failures": dict(kinds),
            "causes": dict(causes),
            # Raw samples in ms (0.01 ms), so that several nodes' runs can be merged.
            "reaction_ms": _samples(fates, "prompt", "pressed"),
            "answer_ms": _samples(fates, "answered", "placed"),
            "queue_wait_ms": _samples(fates, "bridged", "pressed"),
        }

    def _kind(self, fate: Fate) -> str:
        if self.served(fate):
            return "served"
        if fate.ended is None:
            return "up"
        if fate.answered is None:
            return "unanswered_gave_up" if fate.gave_up else "refused"
        if fate.gave_up == "queue":
            return "queue_gave_up"
        if fate.scripted:  # hung up as planned, but the key never got its prompt
            return "key_unanswered"
        return "ended_by_switch"


def _samples(fates: list[Fate], end: str, start: str) -> list[float]:
    """``end - start`` in ms (to 0.01 ms) of every call that has both times."""
    out = []
    for fate in fates:
        b, a = getattr(fate, end), getattr(fate, start)
        if a is not None and b is not None:
            out.append(round((b - a) * 1000, 2))
    return out


class LoadDriver:
    """Places the runs' calls and watches every event fired on their caller legs."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.switch: Switch = sim.switch
        self.runs: dict[str, Run] = {}
        self._watched: dict[str, Fate] = {}
        fire = self.switch.fire

        def observed_fire(name: str, ch: Channel | None = None, **kw: Any) -> None:
            fire(name, ch, **kw)
            if ch is not None:
                fate = self._watched.get(ch.uuid)
                if fate is not None:
                    self._saw(fate, name, ch, kw)

        # Every event goes through Switch.fire; wrapping it sees them all, subscribed or not.
        setattr(self.switch, "fire", observed_fire)  # noqa: B010

    def _saw(self, fate: Fate, name: str, ch: Channel, kw: dict[str, Any]) -> None:
        now = self.switch.clock.now()
        if name == "CHANNEL_ANSWER":
            if fate.answered is None:
                fate.answered = now
        elif name == "DTMF":
            fate.pressed, fate.prompt = now, None
        elif name == "PLAYBACK_START" or (
            name == "CHANNEL_EXECUTE" and dict(kw.get("post", ())).get("Application") in MEDIA_APPS
        ):
            if fate.pressed is not None and fate.prompt is None:
                fate.prompt = now
        elif name == "CHANNEL_BRIDGE":
            if fate.bridged is None:
                fate.bridged = now
            if fate.bridged_evt is not None:
                fate.bridged_evt.set()
        elif name == "CHANNEL_HANGUP":
            fate.ended = now
            fate.cause = ch.hangup_cause or ""
            fate.disposition = ch.disposition
            self._watched.pop(ch.uuid, None)

    # ---------------------------------------------------------------- commands

    def phones(self, count: int, first: int, answer_after_ms: int) -> int:
        scripts = self.sim.scripts
        for n in range(count):
            scripts.register(str(first + n), f"answer_after_ms={answer_after_ms}")
        return len(scripts.phones)

    def start(self, name: str, spec: RunSpec) -> None:
        if name in self.runs:
            raise ValueError(f"run {name!r} exists")
        run = Run(spec)
        self.runs[name] = run
        self.switch.spawn(self._place(run), name=f"load-{name}")

    async def _place(self, run: Run) -> None:
        spec, clock = run.spec, self.switch.clock
        start = clock.now()
        try:
            for n in range(spec.count):
                due = start + n / spec.rate
                if due > clock.now():
                    await clock.sleep(due - clock.now())
                ch = self.sim.scripts.call(spec.dest, f"{spec.prefix}{n:06d}")
                fate = Fate(placed=clock.now())
                run.fates.append(fate)
                if ch.is_up:
                    self._watched[ch.uuid] = fate
                run.active += 1
                self.switch.spawn(self._citizen(run, ch, fate), name=f"citizen-{ch.uuid}")
        finally:
            run.done_placing = True

    async def _citizen(self, run: Run, ch: Channel, fate: Fate) -> None:
        try:
            await self._script(run.spec, ch, fate)
        finally:
            run.active -= 1
            fate.bridged_evt = None

    async def _script(self, spec: RunSpec, ch: Channel, fate: Fate) -> None:
        sw = self.switch
        if not await self._wait(ch, ch.answered_evt, spec.answer_patience_s):
            if ch.is_up:
                fate.gave_up = "unanswered"
                sw.hangup(ch, "ORIGINATOR_CANCEL", "recv_cancel")
            return
        await self._wait(ch, None, spec.dtmf_delay_s)
        if not ch.is_up:
            return
        sw.dtmf(ch, spec.digit)
        if spec.path == "ivr":
            await self._wait(ch, None, spec.after_digit_s)
        else:
            assert fate.bridged_evt is not None  # dropped only when the call has ended
            if not await self._wait(ch, fate.bridged_evt, spec.queue_patience_s):
                if ch.is_up:
                    fate.gave_up = "queue"
                    sw.hangup(ch, "NORMAL_CLEARING", "recv_bye")
                return
            await self._wait(ch, None, spec.talk_s)
        if ch.is_up:
            fate.scripted = True
            sw.hangup(ch, "NORMAL_CLEARING", "recv_bye")

    async def _wait(self, ch: Channel, what: asyncio.Event | None, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``what`` (None: just the time); False if it did not
        happen, or the channel hung up meanwhile."""
        waiters = [asyncio.ensure_future(ch.hungup.wait())]
        if what is not None:
            waiters.append(asyncio.ensure_future(what.wait()))
        try:
            await asyncio.wait(
                waiters,
                timeout=self.switch.clock.real_seconds(seconds),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        return ch.is_up and (what is None or what.is_set())

    # ----------------------------------------------------------------- control

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "phones":
            registered = self.phones(
                int(request["count"]),
                int(request.get("first", 2000)),
                int(request.get("answer_after_ms", 0)),
            )
            return {"phones": registered}
        if cmd == "set":
            self.switch.settings[str(request["name"])] = str(request["value"])
            return {}
        if cmd == "start":
            self.start(str(request["run"]), RunSpec.of(request))
            return {}
        if cmd == "status":
            run = self.runs[str(request["run"])]
            return {
                "placed": len(run.fates),
                "count": run.spec.count,
                "active": run.active,
                "done": run.done_placing and run.active == 0,
            }
        if cmd == "report":
            return self.runs[str(request["run"])].report()
        if cmd == "stats":
            return {
                "channels": len(self.switch.channels),
                "phones": len(self.sim.scripts.phones),
                "calls_placed": self.sim.scripts.calls_placed,
                "connections": self.sim.connection_count(),
            }
        raise ValueError(f"unknown command {cmd!r}")

    async def serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await serve_json_lines(self.handle, reader, writer)


async def serve_json_lines(
    handle: Callable[[dict[str, Any]], dict[str, Any]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """A control connection: one JSON request a line, one JSON reply a line (``ok`` and
    the handler's fields, or ``ok: false`` and the error; the server keeps going)."""
    try:
        while line := await reader.readline():
            try:
                reply: dict[str, Any] = {"ok": True, **handle(orjson.loads(line))}
            except Exception as exc:  # reported to the client
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(orjson.dumps(reply) + b"\n")
            await writer.drain()
    finally:
        writer.close()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _main(listen: str, control: str, password: str, time_scale: float) -> None:
    sim = Simulator(password, time_scale=time_scale)
    host, port = _host_port(listen)
    await sim.start(host, port)
    driver = LoadDriver(sim)
    chost, cport = _host_port(control)
    server = await asyncio.start_server(driver.serve_control, chost, cport)
    runtime.settle_heap()  # a switch in C pauses for no collector: keep this one's pauses short
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await sim.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the simulator with the load driver's control port until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m telephony.sim.load", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8021", help="the Event Socket")
    parser.add_argument("--control", default="127.0.0.1:8022", help="the load control port")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    from telephony.logs import configure_logging

    configure_logging(args.log_level.upper())
    runtime.run(_main(args.listen, args.control, args.password, args.time_scale))


if __name__ == "__main__":
    main()
