"""The capacity benchmark's driver: processes, phases, counters, and the printed tables.

Three processes besides pytest, each measured on its own counters:

* the simulator with its load driver (``python -m telephony.sim.load``): places the calls
  at a rate and records each call's fate on the switch's clock;
* the controller: either the real control plane (``python -m tests.bench.controller``:
  ``telephony serve`` unchanged, with in-process counters, see that module) or the
  baseline (``python -m tests.bench.baseline``: the least ESL work for the same calls);
* PostgreSQL (the tests' embedded server), whose CPU is read from ``/proc``.

A *phase* is one path at one rate for a number of seconds: the controller's window is
marked, the calls are placed, the benchmark waits until every call has ended on the
switch and the controller holds no live call and no pending write, then reads every
counter. So a phase's CPU is all the work its calls caused, the drain included.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy.engine import URL

from telephony.store.database import EmbeddedPostgres
from tests.bench import harness
from tests.bench.harness import PYTHON, LineClient
from tests.store.conftest import Database, _create_database, _drop_database

# -------------------------------------------------------------------- database


@pytest.fixture
def bench_database(embedded_server: tuple[EmbeddedPostgres, URL]) -> Iterator[Database]:
    """A fresh, migrated database on the tests' embedded server (whose CPU the benchmark
    reads from /proc), dropped at the end; DATABASE_URL is not used."""
    server, url = embedded_server
    created = asyncio.run(_create_database(url))
    try:
        yield Database(created, server)
    finally:
        asyncio.run(_drop_database(created))


# -------------------------------------------------------------------- settings


def _floats(name: str, default: str) -> list[float]:
    text = os.environ.get(name, default).strip()
    return [float(x) for x in text.split(",") if x.strip()] if text else []


@dataclass(frozen=True)
class Settings:
    """The benchmark's knobs, from the environment (``BENCH_*``)."""

    ivr_rates: list[float] = field(default_factory=lambda: _floats("BENCH_RATES", "10,25,50"))
    agent_rates: list[float] = field(
        default_factory=lambda: _floats("BENCH_AGENT_RATES", "10,20,30")
    )
    seconds: float = float(os.environ.get("BENCH_SECONDS", "15"))
    paths: tuple[str, ...] = tuple(
        p.strip() for p in os.environ.get("BENCH_PATHS", "ivr,agent").split(",") if p.strip()
    )
    #: "top": the baseline at each path's highest rate; "all": at every rate; "off".
    baseline: str = os.environ.get("BENCH_BASELINE", "top")
    baseline_seconds: float = float(os.environ.get("BENCH_BASELINE_SECONDS", "10"))
    prompt_ms: int = int(os.environ.get("BENCH_PROMPT_MS", "1000"))
    dtmf_delay_s: float = float(os.environ.get("BENCH_DTMF_DELAY_S", "3"))
    after_digit_s: float = 1.0
    talk_s: float = float(os.environ.get("BENCH_TALK_S", "4"))
    wrap_up_s: float = float(os.environ.get("BENCH_WRAP_UP_S", "1"))
    log_level: str = os.environ.get("BENCH_LOG_LEVEL", "INFO")
    #: Simulator processes (FreeSWITCH nodes) the controller drives; the rate is spread
    #: evenly over them.
    nodes: int = int(os.environ.get("BENCH_NODES", "1"))
    answer_patience_s: float = 15.0
    queue_patience_s: float = 30.0

    def rates(self, path: str) -> list[float]:
        return self.ivr_rates if path == "ivr" else self.agent_rates

    def agents(self) -> int:
        """Enough agents that none is ever short at the top agent rate (talk, wrap-up,
        hand-over), with half as many again to spare."""
        if "agent" not in self.paths or not self.agent_rates:
            return 0
        busy_s = self.talk_s + self.wrap_up_s + 1.0
        return math.ceil(max(self.agent_rates) * busy_s * 1.5) + 10

    def longest_call_s(self) -> float:
        return self.answer_patience_s + self.dtmf_delay_s + self.queue_patience_s + self.talk_s + 5

    def describe(self) -> str:
        return (
            f"{self.seconds:g} s of new calls per rate, simulator at time scale 1, prompts "
            f"{self.prompt_ms} ms, {self.nodes} node(s) (the rate spread over them).\n"
            f"  ivr:   12345 flow, key 1 at {self.dtmf_delay_s:g} s after answer (the consult "
            f"menu starts), hang up {self.after_digit_s:g} s after the key.\n"
            f"  agent: key 0 at {self.dtmf_delay_s:g} s ('to an agent', queue general), the "
            f"agent's phone answers at once, recorded, hang up {self.talk_s:g} s after the "
            f"bridge; {self.agents()} agents, wrap-up {self.wrap_up_s:g} s."
        )


FIRST_EXTENSION = 2000
CATEGORIES = ("esl", "engine", "database", "logging", "asyncio", "other")


# --------------------------------------------------------------------- results


@dataclass
class Phase:
    """One phase's numbers (CPU in seconds, times in seconds)."""

    #: "serve", "baseline", "floor" (the engine's protocol) or "esl" (it through telephony.esl)
    controller: str
    path: str
    rate: float
    seconds: float
    load: dict[str, Any]
    wall_s: float
    cpu_s: float
    sim_cpu_s: float
    pg_cpu_s: float | None
    kernel_s: float = math.nan  # of cpu_s: the controller's time in the kernel
    split: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    cdrs: dict[str, int] = field(default_factory=dict)
    cdrs_open: int = 0
    recorded: int = 0
    log_lines: int = 0
    log_problems: Counter[str] = field(default_factory=Counter)
    controller_live_calls: int | None = None
    controller_buffer_depth: int | None = None

    @property
    def attempted(self) -> int:
        return int(self.load["attempted"])

    @property
    def label(self) -> str:
        return f"{self.path:5s} {self.rate:5g}/s"

    def per_call_ms(self, seconds: float | None) -> float | None:
        if seconds is None or not self.attempted:
            return None
        return seconds * 1000 / self.attempted

    @property
    def cdr_total(self) -> int:
        return sum(self.cdrs.values())


# ---------------------------------------------------------------------- the rig


@dataclass
class Node:
    """One simulator process and its control connection."""

    process: Any
    ctl: LineClient
    esl_port: int


class Rig:
    """The processes of one benchmark run, in one scratch folder."""

    def __init__(self, settings: Settings, root: Path, db_url: URL, pg_dir: Path | None) -> None:
        self.settings = settings
        self.root = root
        self.db_url = db_url
        self.pg_dir = pg_dir
        self.nodes: list[Node] = []
        self.controllers: list[Any] = []  # the serve process, or one baseline per node
        self.ctl: LineClient | None = None
        self.controller_kind = ""
        self.serve_log = root / "serve.log"
        self._log_offset = 0
        self._runs = 0

    # ------------------------------------------------------------ processes

    def start_sims(self) -> None:
        """``BENCH_NODES`` simulators, each with every agent's phone registered."""
        for n in range(self.settings.nodes):
            esl, control = harness.free_port(), harness.free_port()
            process = harness.start(
                [PYTHON, "-m", "telephony.sim.load", "--listen", f"127.0.0.1:{esl}",
                 "--control", f"127.0.0.1:{control}"],
                self.root / f"sim{n}.log",
            )  # fmt: skip
            self.nodes.append(Node(process, LineClient(control, process=process), esl))
        for node in self.nodes:
            harness.wait_for_port(node.esl_port, node.process)
            node.ctl("set", name="playback_default_ms", value=str(self.settings.prompt_ms))
            if self.settings.agents():
                node.ctl(
                    "phones", count=self.settings.agents(), first=FIRST_EXTENSION,
                    answer_after_ms=0,
                )  # fmt: skip

    def start_serve(self) -> None:
        control = harness.free_port()
        data = self.root / "serve-data"
        data.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": self.db_url.render_as_string(hide_password=False),
            "TELEPHONY_FREESWITCH": ",".join(
                f"esl://:ClueCon@127.0.0.1:{node.esl_port}" for node in self.nodes
            ),
            "TELEPHONY_API_LISTEN": f"127.0.0.1:{harness.free_port()}",
            "TELEPHONY_DATA_DIR": str(data),
            "TELEPHONY_IVR_FLOWS": str(harness.REPO / "ivr_flows"),
            "TELEPHONY_WRAP_UP_SECONDS": str(self.settings.wrap_up_s),
        }
        process = harness.start(
            [PYTHON, "-m", "tests.bench.controller", "--control", f"127.0.0.1:{control}",
             "--log-level", self.settings.log_level],
            self.serve_log,
            env,
        )  # fmt: skip
        self.controllers = [process]
        self.ctl = LineClient(control, process=process, wait=60)
        deadline = time.monotonic() + 60
        while not self.ctl("ready")["ready"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"the controller did not connect; see {self.serve_log}")
            time.sleep(0.2)
        time.sleep(1.0)  # adoption of the (empty) nodes, first IVR flow load
        self.controller_kind = "serve"

    def start_baseline(self, path: str, protocol: str = "least") -> None:
        """One baseline controller per node (``protocol``: see ``tests.bench.baseline``)."""
        recordings = self.root / "baseline-recordings"
        recordings.mkdir(exist_ok=True)
        phones = str(max(1, self.settings.agents()))
        for n, node in enumerate(self.nodes):
            process = harness.start(
                [PYTHON, "-m", "tests.bench.baseline", "--esl", f"127.0.0.1:{node.esl_port}",
                 "--path", path, "--first-ext", str(FIRST_EXTENSION), "--phones", phones,
                 "--recordings", str(recordings), "--protocol", protocol],
                self.root / f"baseline{n}.log",
            )  # fmt: skip
            self.controllers.append(process)
        deadline = time.monotonic() + 20
        while any(node.ctl("stats")["connections"] < 1 for node in self.nodes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.controllers):
                raise AssertionError("the baseline controller did not connect")
            time.sleep(0.1)
        time.sleep(0.5)
        self.controller_kind = {"engine": "floor", "esl": "esl"}.get(protocol, "baseline")

    def stop_controller(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        for process in self.controllers:
            harness.stop(process)
        self.controllers = []
        self.controller_kind = ""

    def close(self) -> None:
        self.stop_controller()
        for node in self.nodes:
            node.ctl.close()
            harness.stop(node.process)

    # --------------------------------------------------------------- database

    def _connect_args(self) -> dict[str, Any]:
        url = self.db_url
        return {
            "user": url.username,
            "password": url.password,
            "host": url.query.get("host") or url.host,
            "port": url.port,
            "database": url.database,
        }

    def add_agents(self, count: int) -> None:
        async def insert() -> None:
            connection = await asyncpg.connect(**self._connect_args())
            try:
                await connection.executemany(
                    "insert into agents (id, name, extension, state, state_changed_at) "
                    "values ($1, $2, $3, 'available', now()) on conflict do nothing",
                    [
                        (f"bench{n:04d}", f"Bench {n}", str(FIRST_EXTENSION + n))
                        for n in range(count)
                    ],
                )
            finally:
                await connection.close()

        asyncio.run(insert())

    def cdrs(self, prefix: str) -> tuple[dict[str, int], int, int]:
        """(CDRs by outcome, plus "recorded", and CDRs still open) of calls from ``prefix``."""

        async def query() -> tuple[dict[str, int], int, int]:
            connection = await asyncpg.connect(**self._connect_args())
            try:
                rows = await connection.fetch(
                    "select coalesce(outcome, 'open') as outcome, ended_at is null as open,"
                    " count(*) as n, count(recording_id) as recorded"
                    " from calls where caller like $1 group by 1, 2",
                    prefix + "%",
                )
            finally:
                await connection.close()
            outcomes: Counter[str] = Counter()
            still_open = recorded = 0
            for row in rows:
                outcomes[row["outcome"]] += row["n"]
                recorded += row["recorded"]
                if row["open"]:
                    still_open += row["n"]
            return dict(outcomes), still_open, recorded

        return asyncio.run(query())

    # ----------------------------------------------------------------- phases

    def idle_cpu_per_s(self, seconds: float = 3.0) -> float:
        """The controller's CPU while no call runs, in ms per second."""
        assert self.ctl is not None
        self.ctl("mark")
        time.sleep(seconds)
        report = self.ctl("report")
        return float(report["cpu_s"]) * 1000 / float(report["wall_s"])

    def _cpu(self, processes: list[Any]) -> float:
        return sum(harness.process_cpu(p.pid) for p in processes)

    def run_phase(self, path: str, rate: float, seconds: float) -> Phase:
        """``rate`` new calls a second for ``seconds``, spread evenly over the nodes."""
        assert self.nodes and self.controllers
        s = self.settings
        self._runs += 1
        prefix = f"19{self._runs:03d}"
        name = f"{self.controller_kind}-{path}-{rate:g}-{self._runs}"
        count = max(1, round(rate * seconds))
        sims = [node.process for node in self.nodes]
        sim_before, cpu_before = self._cpu(sims), self._cpu(self.controllers)
        kernel_before = sum(harness.kernel_cpu(p.pid) for p in self.controllers)
        pg_before = harness.postgres_cpu(self.pg_dir) if self.pg_dir else None
        started = time.monotonic()
        if self.ctl is not None:
            self._log_offset = self.serve_log.stat().st_size
            self.ctl("mark")
        share = len(self.nodes)
        for n, node in enumerate(self.nodes):
            node.ctl(
                "start",
                run=name,
                path=path,
                count=count // share + (1 if n < count % share else 0),
                rate=rate / share,
                prefix=f"{prefix}{n}",
                digit="1" if path == "ivr" else "0",
                dtmf_delay_s=s.dtmf_delay_s,
                after_digit_s=s.after_digit_s,
                talk_s=s.talk_s,
                answer_patience_s=s.answer_patience_s,
                queue_patience_s=s.queue_patience_s,
            )
        deadline = started + seconds + s.longest_call_s() + 30
        while not all(node.ctl("status", run=name)["done"] for node in self.nodes):
            if time.monotonic() > deadline:
                break  # reported: the calls still up show in the load report
            time.sleep(0.25)
        live: int | None = None
        depth: int | None = None
        if self.ctl is not None:
            drain = time.monotonic() + 60
            while True:
                state = self.ctl("state")
                live, depth = state["live_calls"], state["buffer_depth"]
                if (live == 0 and depth == 0) or time.monotonic() > drain:
                    break
                time.sleep(0.1)
        else:
            time.sleep(0.5)
        wall = time.monotonic() - started
        load = _merge([node.ctl("report", run=name) for node in self.nodes])
        sim_cpu = self._cpu(sims) - sim_before
        cpu = self._cpu(self.controllers) - cpu_before
        kernel = sum(harness.kernel_cpu(p.pid) for p in self.controllers) - kernel_before
        pg_after = harness.postgres_cpu(self.pg_dir) if self.pg_dir else None
        pg_cpu = pg_after - pg_before if pg_after is not None and pg_before is not None else None
        if self.ctl is None:
            return Phase(
                self.controller_kind, path, rate, seconds, load, wall, cpu, sim_cpu, pg_cpu, kernel
            )
        report = self.ctl("report")
        cdrs, still_open, recorded = self.cdrs(prefix)
        lines, problems = self._read_log()
        return Phase(
            "serve", path, rate, seconds, load, wall, float(report["cpu_s"]), sim_cpu, pg_cpu,
            kernel,
            split=_split(report), report=report, cdrs=cdrs, cdrs_open=still_open,
            recorded=recorded, log_lines=lines, log_problems=problems,
            controller_live_calls=live, controller_buffer_depth=depth,
        )  # fmt: skip

    def _read_log(self) -> tuple[int, Counter[str]]:
        lines = 0
        problems: Counter[str] = Counter()
        with self.serve_log.open("rb") as log:
            log.seek(self._log_offset)
            for raw in log:
                lines += 1
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    problems[f"(not JSON) {raw[:80].decode(errors='replace').strip()}"] += 1
                    continue
                level = str(record.get("level", ""))
                if level in ("warning", "error", "critical"):
                    problems[f"{level}: {record.get('msg')}"] += 1
        return lines, problems

    def profile(self, path: str, rate: float, seconds: float, pstats: Path) -> Phase:
        """One phase with cProfile running on the controller's loop thread."""
        assert self.ctl is not None
        self.ctl("profile_start")
        try:
            return self.run_phase(path, rate, seconds)
        finally:
            self.ctl("profile_stop", path=str(pstats))


def _split(report: dict[str, Any]) -> dict[str, float]:
    """CPU seconds by category: the loop thread's sampled split plus the named threads.

    ``asyncio`` is loop-thread time with no known package on the stack (the selector,
    callbacks of C protocols such as asyncpg's, task stepping); ``other`` the rest (HTTP
    API, metrics, worker threads, the benchmark's own lag timer)."""
    loop_split: dict[str, float] = report.get("loop_split", {})
    threads: dict[str, float] = report.get("threads", {})
    split = {
        "esl": loop_split.get("esl", 0.0) + threads.get("esl-gevent", 0.0),
        "engine": loop_split.get("engine", 0.0),
        "database": loop_split.get("database", 0.0),
        "logging": loop_split.get("logging", 0.0) + threads.get("log-writer", 0.0),
        "asyncio": loop_split.get("loop", 0.0),
    }
    if not loop_split:  # no sampler: the loop thread is not split
        split["engine"] = split["database"] = split["asyncio"] = math.nan
    split["other"] = float(report["cpu_s"]) - sum(v for v in split.values() if v == v)
    return split


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The nodes' load reports as one: counts summed, samples pooled into summaries."""
    merged: dict[str, Any] = {"failures": Counter(), "causes": Counter()}
    for key in ("attempted", "served", "refused", "up", "answered"):
        merged[key] = sum(int(r[key]) for r in reports)
    for r in reports:
        merged["failures"].update(r["failures"])
        merged["causes"].update(r["causes"])
    merged["failures"], merged["causes"] = dict(merged["failures"]), dict(merged["causes"])
    for key, out in (("reaction_ms", "reaction"), ("answer_ms", "answer_delay")):
        merged[out] = summary([x / 1000 for r in reports for x in r[key]])
    merged["queue_wait"] = summary([x / 1000 for r in reports for x in r["queue_wait_ms"]])
    return merged


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p99 and max of ``values`` (empty: n = 0)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": harness.percentile(values, 0.5),
        "p99": harness.percentile(values, 0.99),
        "max": max(values),
    }


# -------------------------------------------------------------------- printing


def _ms(value: float | None, width: int = 6, digits: int = 2) -> str:
    if value is None or value != value:
        return "-".rjust(width)
    return f"{value:{width}.{digits}f}"


def _lat(summary: dict[str, Any], key: str, scale: float = 1000.0) -> str:
    if not summary or not summary.get("n"):
        return "     -"
    return f"{summary[key] * scale:6.1f}"


def print_tables(phases: list[Phase], settings: Settings, idle_ms_per_s: float | None) -> None:
    out = print
    out("\nCapacity benchmark on the simulator")
    out(settings.describe())
    if idle_ms_per_s is not None:
        out(
            f"  controller idle: {idle_ms_per_s:.1f} ms CPU per second "
            "(in each total below; net takes it off)"
        )

    out("\nCalls (served: ivr = the key got its next prompt, agent = bridged to an agent)")
    out(
        "  phase              ctl       attempted served refused other  up"
        "   CDRs  open  CDR outcomes"
    )
    for p in phases:
        load = p.load
        other = sum(load["failures"].values())
        cdr = " ".join(f"{k}={v}" for k, v in sorted(p.cdrs.items()))
        if p.path == "agent" and p.controller == "serve":
            cdr += f", recorded={p.recorded}"
        cdrs = f"{p.cdr_total:6d} {p.cdrs_open:5d}" if p.controller == "serve" else "     -     -"
        out(
            f"  {p.label}  {p.controller:8s} {p.attempted:9d} {load['served']:6d} "
            f"{load['refused']:7d} {other:5d} {load['up']:3d} {cdrs}  {cdr}"
        )
        if load["causes"]:
            out(
                f"      not served: {load['failures']}  hang-up cause/disposition: {load['causes']}"
            )

    out("\nCPU per call, ms. Controller: its process counters (getrusage); net = less its idle")
    out("  CPU over the phase; split (of total): esl = the esl-gevent thread (socket, parse)")
    out("  + ESL code on the loop, engine = calls/IVR/ACD, database = write buffer, SQLAlchemy,")
    out("  asyncpg, logging = formatting + the log-writer thread, asyncio = loop internals with")
    out("  no known caller, other = HTTP, metrics, workers, the lag timer. kernel = the part of")
    out("  total spent in system calls (stime; a loopback send carries the TCP stack's work).")
    out("  ctl/base = total over the baseline controller's, ctl/sim = over the simulator's own")
    out("  CPU in the same phase.")
    out(
        "  phase              ctl       total    net kernel    esl engine     db    log asyncio"
        " other  ctl/base ctl/sim    sim postgres"
    )
    for p in phases:
        base = _baseline_for(p, phases)
        serve = p.controller == "serve"
        mine, theirs = p.per_call_ms(p.cpu_s), base.per_call_ms(base.cpu_s) if base else None
        ratio = f"{mine / theirs:7.1f}x" if serve and mine and theirs else "       -"
        ctl_sim = f"{p.cpu_s / p.sim_cpu_s:6.2f}x" if p.sim_cpu_s else "      -"
        split = [_ms(p.per_call_ms(p.split.get(c))) for c in CATEGORIES] if serve else []
        net = (
            _ms(p.per_call_ms(p.cpu_s - idle_ms_per_s * p.wall_s / 1000))
            if serve and idle_ms_per_s is not None
            else _ms(None)
        )
        out(
            f"  {p.label}  {p.controller:8s} {_ms(p.per_call_ms(p.cpu_s), 7)} {net} "
            f"{_ms(p.per_call_ms(p.kernel_s))} "
            f"{' '.join(split or ['     -'] * len(CATEGORIES))}  {ratio} {ctl_sim} "
            f"{_ms(p.per_call_ms(p.sim_cpu_s))} {_ms(p.per_call_ms(p.pg_cpu_s), 8)}"
        )

    out("\nController load: event-loop lag (a timer every BENCH_LAG_MS), write-buffer depth,")
    out("  what each call costs it in events received, SQL statements and log lines, and the")
    out("  garbage collector's longest pause, its collections of the oldest generation and the")
    out("  time all its collections took, per call")
    out(
        "  phase              lag p99  lag max  buffer max  events/call  SQL/call  log lines/call"
        "  gc max  full gc  gc/call"
    )
    for p in phases:
        if p.controller != "serve":
            continue
        lag = p.report.get("lag", {})
        gc_pauses = p.report.get("gc", {})
        events = sum(p.report.get("events", {}).values())
        out(
            f"  {p.label}  {_lat(lag, 'p99')} ms {_lat(lag, 'max')} ms "
            f"{p.report.get('buffer_depth_max', 0):10d} {events / p.attempted:12.1f}"
            f" {p.report.get('statements', 0) / p.attempted:9.1f}"
            f" {p.log_lines / p.attempted:15.1f}"
            f"  {_lat(gc_pauses, 'max')} ms {gc_pauses.get('full', 0):8d}"
            f" {_ms(p.per_call_ms(gc_pauses.get('total_s')), 5, 3)} ms"
        )

    out("\nKey press -> next prompt, ms (ctl: the telephony_ivr_reaction_seconds samples;")
    out("  switch: DTMF to the next prompt start, seen inside the simulator), answer delay")
    out(
        "  phase              ctl         ctl n   p50   p99   switch n   p50   p99    max"
        "   answer p50  p99"
    )
    for p in phases:
        r = p.report.get("reaction", {})
        sw = p.load["reaction"]
        ans = p.load["answer_delay"]
        out(
            f"  {p.label}  {p.controller:8s} {r.get('n', 0) if r else '-':>6} {_lat(r, 'p50')}"
            f"{_lat(r, 'p99')}   {sw.get('n', 0):8d} {_lat(sw, 'p50')}{_lat(sw, 'p99')}"
            f"{_lat(sw, 'max')}     {_lat(ans, 'p50')}{_lat(ans, 'p99')}"
        )

    problems: Counter[str] = Counter()
    for p in phases:
        problems.update(p.log_problems)
    if problems:
        out("\nController warnings and errors (all phases):")
        for message, n in problems.most_common(15):
            out(f"  {n:6d}  {message[:140]}")


def _baseline_for(phase: Phase, phases: list[Phase]) -> Phase | None:
    """The baseline phase of the same path at the same rate, else at the nearest rate."""
    candidates = [b for b in phases if b.controller == "baseline" and b.path == phase.path]
    if not candidates:
        return None
    return min(candidates, key=lambda b: abs(b.rate - phase.rate))


def problems_of(phases: list[Phase]) -> list[str]:
    """What the benchmark asserts (correctness, never time): every attempted call has
    a CDR, none is left open, no call is still up, the controller drained."""
    found = []
    for p in phases:
        if p.load["up"]:
            found.append(f"{p.label} {p.controller}: {p.load['up']} calls still up on the switch")
        if p.controller != "serve":
            continue
        if p.cdrs_open:
            found.append(f"{p.label}: {p.cdrs_open} CDRs left open")
        if p.cdr_total != p.attempted:
            found.append(f"{p.label}: {p.cdr_total} CDRs for {p.attempted} calls attempted")
        if p.controller_live_calls or p.controller_buffer_depth:
            found.append(
                f"{p.label}: the controller still holds {p.controller_live_calls} calls and "
                f"{p.controller_buffer_depth} writes after the drain"
            )
    return found


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
