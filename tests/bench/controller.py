"""The control plane under measurement: ``telephony serve`` itself, plus counters read in-process.

``python -m tests.bench.controller --control 127.0.0.1:PORT`` (settings from the same
``TELEPHONY_*`` / ``DATABASE_URL`` environment as ``telephony serve``) configures logging
as ``telephony serve`` does (INFO unless ``--log-level``) and runs
:func:`telephony.api.server.serve` unchanged: services, engine, IVR, write buffer, HTTP
API, SIGTERM handling. Its own process, so that its CPU counters hold nothing but the
control plane (the simulator, PostgreSQL and the benchmark driver are other processes).

What it adds, all inside this process:

* a control port (one JSON object per line, one reply line each): ``ready``, ``state``
  (live calls, write-buffer depth), ``mark`` (start a measurement window), ``report``
  (the window's numbers), ``profile_start`` / ``profile_stop`` (cProfile of the loop's
  thread, written as pstats to a file);
* CPU per thread, from the kernel's per-thread clocks (``pthread_getcpuclockid``), and the
  process total (``getrusage(RUSAGE_SELF)``): the event-loop thread, ``esl-gevent``
  (socket reads, frame parsing and decoding: the ESL codec), ``log-writer`` (log output),
  worker threads;
* the loop thread's CPU split by a sampler: a POSIX timer on the loop thread's own CPU
  clock (``timer_create(CLOCK_THREAD_CPUTIME_ID)``, delivered to that thread; where there
  is none, ``setitimer(ITIMER_PROF)``) sends SIGPROF every ``BENCH_SAMPLE_MS`` ms of its
  CPU (default 3); the handler (Python runs it on the main thread, the loop's, at the
  next bytecode) charges the thread's CPU since the previous sample
  (``time.thread_time``) to the stack it interrupted: the innermost frame of a known
  package decides (``CATEGORIES``). Its own cost is measured and taken off;
  ``BENCH_SAMPLE_MS=0`` turns it off;
* event-loop lag: a timer every ``BENCH_LAG_MS`` ms (default 20) notes how late it runs,
  and samples the write buffer's depth (its cost, about 2 ms of CPU a second, is in the
  idle figure the benchmark prints);
* key-press -> next-prompt samples: every value the ``telephony_ivr_reaction_seconds``
  histogram observes;
* events received by name (the ``telephony_esl_events`` counter) and SQL statements sent
  (a ``before_cursor_execute`` listener, plus the write buffer's batches, one each).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ctypes
import ctypes.util
import gc
import heapq
import os
import resource
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from telephony.sim.load import serve_json_lines

#: (path fragment, category): the innermost frame whose file matches decides.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("/logging/", "logging"),
    ("/telephony/logs.py", "logging"),
    ("/sqlalchemy/", "database"),
    ("/asyncpg/", "database"),
    ("/telephony/store/", "database"),
    ("/prometheus_client/", "metrics"),
    ("/telephony/metrics.py", "metrics"),
    ("/telephony/esl/", "esl"),
    ("/greenswitch/", "esl"),
    ("/gevent/", "esl"),
    ("/uvicorn/", "http"),
    ("/starlette/", "http"),
    ("/fastapi/", "http"),
    ("/h11/", "http"),
    ("/telephony/api/", "http"),
    ("/telephony/ivr/", "engine"),
    ("/telephony/calls/", "engine"),
    ("/telephony/acd/", "engine"),
    ("/telephony/fsm.py", "engine"),
    ("/telephony/services.py", "engine"),
)
#: Code of this harness charged to "bench" (its lag timer); the rest of this file (main,
#: the control port) is at the bottom of every stack and charges nothing.
_BENCH_CODE: set[CodeType] = set()


def _category_of(code: CodeType) -> str | None:
    if code in _BENCH_CODE:
        return "bench"
    path = code.co_filename
    for fragment, category in CATEGORIES:
        if fragment in path:
            return category
    return None


class _Sigevent(ctypes.Structure):
    """``struct sigevent`` (Linux, 64 bytes) for ``SIGEV_THREAD_ID``."""

    _fields_ = (
        ("value", ctypes.c_void_p),
        ("signo", ctypes.c_int),
        ("notify", ctypes.c_int),
        ("tid", ctypes.c_int),
        ("pad", ctypes.c_int * 11),
    )


class _Timespec(ctypes.Structure):
    _fields_ = (("sec", ctypes.c_long), ("nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("interval", _Timespec), ("value", _Timespec))


class _ThreadCpuTimer:
    """A POSIX timer on the calling thread's CPU clock that signals that same thread
    (``timer_create(CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID)``): it fires only while the
    thread runs, so a sample never lands on a thread that sat idle in ``epoll_wait``."""

    def __init__(self, signum: int, interval_s: float) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("rt") or None, use_errno=True)
        self._create, self._settime = libc.timer_create, libc.timer_settime
        self._delete = libc.timer_delete
        event = _Sigevent(signo=signum, notify=4, tid=threading.get_native_id())  # THREAD_ID
        self._id = ctypes.c_void_p()
        if self._create(3, ctypes.byref(event), ctypes.byref(self._id)) != 0:  # THREAD_CPUTIME
            raise OSError(ctypes.get_errno(), "timer_create")
        ns = int(interval_s * 1e9)
        period = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
        spec = _Itimerspec(period, period)
        if self._settime(self._id, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timer_settime")

    def delete(self) -> None:
        self._delete(self._id)


class Sampler:
    """CPU-weighted stack sampling of the main (event-loop) thread; see the module docstring."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._codes: dict[CodeType, str | None] = {}
        self.categories: defaultdict[str, float] = defaultdict(float)
        self.leaves: defaultdict[tuple[str, int, str], float] = defaultdict(float)
        self.inclusive: defaultdict[tuple[str, int, str], float] = defaultdict(float)
        self.overhead = 0.0
        self.samples = 0
        self._last = time.thread_time()
        self._timer: _ThreadCpuTimer | None = None
        self.clock = "off"
        #: Set while the loop's thread reads or clears the tables (the handler skips).
        self.paused = False

    def start(self) -> None:
        """Arm the timer (call on the main thread, which it measures)."""
        if self.interval_s <= 0:
            return
        signal.signal(signal.SIGPROF, self._on_signal)
        try:
            self._timer = _ThreadCpuTimer(signal.SIGPROF, self.interval_s)
            self.clock = "the loop thread's CPU clock"
        except (OSError, AttributeError):  # no timer_create: the process's CPU instead
            signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)
            self.clock = "the process's CPU (ITIMER_PROF)"

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        elif self.interval_s > 0:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def reset(self) -> None:
        self.categories.clear()
        self.leaves.clear()
        self.inclusive.clear()
        self.overhead = 0.0
        self.samples = 0
        self._last = time.thread_time()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.paused:  # the handler runs between any two bytecodes of the loop's thread
            self._last = time.thread_time()
            return
        start = time.thread_time()
        spent = start - self._last
        self.samples += 1
        category: str | None = None
        seen: set[CodeType] = set()
        leaf = True
        depth = 0
        while frame is not None and depth < 80:
            code = frame.f_code
            known = self._codes.get(code, "?")
            if known == "?":
                known = self._codes[code] = _category_of(code)
            if leaf:
                self.leaves[(code.co_filename, code.co_firstlineno, code.co_name)] += spent
                leaf = False
            if known is not None and category is None:
                category = known
            if known is not None and code not in seen:
                seen.add(code)
                self.inclusive[(code.co_filename, code.co_firstlineno, code.co_name)] += spent
            frame = frame.f_back
            depth += 1
        self.categories[category or "loop"] += spent
        self._last = time.thread_time()
        self.overhead += self._last - start


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of every live Python thread, by name (workers summed by prefix)."""
    out: defaultdict[str, float] = defaultdict(float)
    for thread in threading.enumerate():
        ident = thread.ident
        if ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(ident)
            seconds = time.clock_gettime(clock)
        except OSError:  # the thread ended meanwhile
            continue
        name = thread.name
        if thread is threading.main_thread():
            name = "loop"
        elif name.startswith("asyncio_") or name.startswith("ThreadPoolExecutor"):
            name = "workers"
        elif name not in ("esl-gevent", "log-writer"):
            name = "other threads"
        out[name] += seconds
    return dict(out)


def _top(table: dict[tuple[str, int, str], float], n: int) -> list[list[Any]]:
    return [[*key, spent] for key, spent in heapq.nlargest(n, table.items(), key=lambda kv: kv[1])]


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "n": len(ordered),
        "p50": ordered[round(0.5 * last)],
        "p99": ordered[round(0.99 * last)],
        "max": ordered[-1],
    }


@dataclass
class Window:
    """What one measurement window has collected so far."""

    wall: float = field(default_factory=time.monotonic)
    process: float = field(default_factory=_process_cpu)
    threads: dict[str, float] = field(default_factory=_thread_cpu)
    lags: list[float] = field(default_factory=list)
    depth_max: int = 0
    reactions: list[float] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)
    statements: int = 0
    gc_pauses: list[float] = field(default_factory=list)  # s, every collection
    gc_full: int = 0  # collections of the oldest generation


class Harness:
    """The in-process side: the services once ``serve`` built them, the window, the sampler."""

    def __init__(self, sampler: Sampler, lag_interval_s: float) -> None:
        self.sampler = sampler
        self.lag_interval_s = lag_interval_s
        self.services: Any = None
        self.window = Window()
        self.profile: cProfile.Profile | None = None
        self.statements = 0

    def attach(self, services: Any) -> None:
        """Called with the services ``serve`` opened: watch the reaction histogram."""
        self.services = services
        histogram = services.metrics.ivr_reaction
        observe = histogram.observe

        def observed(amount: float, *args: Any, **kwargs: Any) -> None:
            self.window.reactions.append(amount)
            observe(amount, *args, **kwargs)

        histogram.observe = observed
        from sqlalchemy import event

        def counted(*args: Any) -> None:
            self.statements += 1

        for engine in (services.database, services.writer):
            event.listen(engine.sync_engine, "before_cursor_execute", counted)

    def sql_statements(self) -> int:
        """Statements sent so far: SQLAlchemy's, and the write buffer's straight to asyncpg."""
        buffer = self.services.buffer.statements if self.services is not None else 0
        return self.statements + buffer

    def events(self) -> dict[str, float]:
        """Events received so far, by name (the ``telephony_esl_events`` counter)."""
        if self.services is None:
            return {}
        out: defaultdict[str, float] = defaultdict(float)
        for metric in self.services.metrics.esl_events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels.get("event", "?")] += sample.value
        return dict(out)

    def start_gc_monitor(self) -> None:
        """Time every garbage collection (a pause of the whole process, loop included)."""
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
                return
            window = self.window
            window.gc_pauses.append(time.perf_counter() - started[0])
            if info.get("generation") == 2:
                window.gc_full += 1

        gc.callbacks.append(on_gc)

    def start_lag_monitor(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.lag_interval_s

        def tick(due: float) -> None:
            now = loop.time()
            window = self.window
            window.lags.append(max(0.0, now - due))
            if self.services is not None:
                depth = self.services.buffer.depth
                if depth > window.depth_max:
                    window.depth_max = depth
            loop.call_at(now + interval, tick, now + interval)

        _BENCH_CODE.add(tick.__code__)
        loop.call_later(interval, tick, loop.time() + interval)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        services = self.services
        if cmd == "ready":
            switches = services.switches if services is not None else []
            connected = bool(switches) and all(s.connected for s in switches)
            return {"ready": bool(connected), "pid": os.getpid()}
        if cmd == "state":
            if services is None:
                return {"live_calls": None, "buffer_depth": None}
            return {
                "live_calls": len(services.calls.live_calls()),
                "buffer_depth": services.buffer.depth,
            }
        if cmd == "mark":
            self.sampler.paused = True
            try:
                self.sampler.reset()
            finally:
                self.sampler.paused = False
            self.window = Window(events=self.events(), statements=self.sql_statements())
            return {}
        if cmd == "report":
            self.sampler.paused = True
            try:
                return self.report()
            finally:
                self.sampler.paused = False
        if cmd == "profile_start":
            self.profile = cProfile.Profile()
            self.profile.enable()
            return {}
        if cmd == "profile_stop":
            if self.profile is None:
                raise ValueError("no profile running")
            self.profile.disable()
            self.profile.dump_stats(str(request["path"]))
            self.profile = None
            return {}
        raise ValueError(f"unknown command {cmd!r}")

    def report(self) -> dict[str, Any]:
        window, sampler = self.window, self.sampler
        threads = _thread_cpu()
        thread_delta = {
            name: seconds - window.threads.get(name, 0.0) for name, seconds in threads.items()
        }
        process = _process_cpu() - window.process
        top = 40
        return {
            "wall_s": time.monotonic() - window.wall,
            "cpu_s": process - sampler.overhead,
            "sampler_overhead_s": sampler.overhead,
            "samples": sampler.samples,
            "sampler_clock": sampler.clock,
            "threads": thread_delta,
            "loop_split": dict(sampler.categories),
            "leaves": _top(sampler.leaves, top),
            "inclusive": _top(sampler.inclusive, top),
            "lag": _percentiles(window.lags),
            "gc": {
                **_percentiles(window.gc_pauses),
                "full": window.gc_full,
                "total_s": sum(window.gc_pauses),
            },
            "buffer_depth_max": window.depth_max,
            "reaction": _percentiles(window.reactions),
            "events": {
                name: count - window.events.get(name, 0.0)
                for name, count in self.events().items()
                if count - window.events.get(name, 0.0)
            },
            "statements": self.sql_statements() - window.statements,
        }

    async def serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await serve_json_lines(self.handle, reader, writer)


async def _main(harness: Harness, control: str) -> None:
    import telephony.api.server as server
    from telephony.config import Settings

    opened = getattr(server, "open_services")  # noqa: B009

    async def open_and_attach(settings: Settings) -> Any:
        services = await opened(settings)
        harness.attach(services)
        return services

    setattr(server, "open_services", open_and_attach)  # noqa: B010 (serve() looks it up)
    host, _, port = control.rpartition(":")
    ctl = await asyncio.start_server(harness.serve_control, host or "127.0.0.1", int(port))
    harness.start_lag_monitor()
    harness.start_gc_monitor()
    try:
        await server.serve(Settings.load())
    finally:
        ctl.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.controller")
    parser.add_argument("--control", required=True, metavar="HOST:PORT")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    from telephony import runtime
    from telephony.logs import configure_logging

    configure_logging(args.log_level.upper())  # as `telephony --log-level ... serve`
    sampler = Sampler(float(os.environ.get("BENCH_SAMPLE_MS", "3")) / 1000)
    harness = Harness(sampler, float(os.environ.get("BENCH_LAG_MS", "20")) / 1000)
    sampler.start()
    try:
        runtime.run(_main(harness, args.control))
    finally:
        sampler.stop()


if __name__ == "__main__":
    main()
