"""Profile: where the controller's CPU goes per IVR-only call and per agent call.

Opt-in (``BENCH_PROFILE=1``; it adds about two minutes): on the capacity benchmark's
rig (``tests.bench.capacity``), each path at ``BENCH_PROFILE_RATE`` new calls/s
(default 20) for ``BENCH_PROFILE_SECONDS`` (default 15), twice:

1. with the loop sampler only (low overhead, the shares are those of a normal run):
   the controller's CPU per call by thread and category, then the functions by
   inclusive and by self CPU, as a share of the controller's whole CPU;
2. with cProfile on the event-loop thread (exact call counts; wall-clock times, so the
   wait in epoll is left out and calls that release the GIL include waiting for it):
   the top functions by own time and by cumulative time (``telephony`` code), with
   calls per citizen call. The pstats files stay in the printed folder.

Run: ``BENCH_PROFILE=1 pytest tests/bench/test_profile.py -m bench -s``.
"""

from __future__ import annotations

import os
import pstats
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.bench.capacity import (
    Phase,
    Rig,
    Settings,
    bench_database,  # noqa: F401 (a fixture)
    problems_of,
)
from tests.bench.harness import REPO
from tests.store.conftest import Database, embedded_server  # noqa: F401

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(
        os.environ.get("BENCH_PROFILE") != "1", reason="set BENCH_PROFILE=1 to profile"
    ),
]

RATE = float(os.environ.get("BENCH_PROFILE_RATE", "20"))
SECONDS = float(os.environ.get("BENCH_PROFILE_SECONDS", "15"))
TOP = int(os.environ.get("BENCH_PROFILE_TOP", "25"))


def _short(path: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[1]
    return path


def _where(row: list[Any]) -> str:
    path, line, name = row[0], row[1], row[2]
    return f"{_short(path)}:{line} {name}"


@pytest.mark.timeout(0)
def test_profile(bench_database: Database) -> None:  # noqa: F811
    settings = Settings(agent_rates=[RATE], paths=("ivr", "agent"))
    root = Path(tempfile.mkdtemp(prefix="telephony-profile-", dir="/tmp"))
    root.chmod(0o755)
    database = bench_database
    pg_dir = database.server.data_dir if database.server is not None else None
    rig = Rig(settings, root, database.url, pg_dir)
    phases: list[Phase] = []
    try:
        rig.start_sims()
        rig.add_agents(settings.agents())
        rig.start_serve()
        for path in ("ivr", "agent"):
            sampled = rig.run_phase(path, RATE, SECONDS)
            phases.append(sampled)
            _print_sampled(sampled)
            pstats_file = root / f"{path}.pstats"
            profiled = rig.profile(path, RATE, SECONDS, pstats_file)
            phases.append(profiled)
            _print_cprofile(profiled, pstats_file)
    finally:
        rig.close()
        print(f"\n  pstats and logs: {root}")
    problems = problems_of(phases)
    assert not problems, "\n".join(problems)


def _print_sampled(phase: Phase) -> None:
    report, n = phase.report, phase.attempted
    total = phase.cpu_s
    print(
        f"\n=== {phase.path} path, {phase.rate:g} calls/s, {n} calls, sampler only: "
        f"{total * 1000 / n:.2f} ms CPU per call ({report['samples']} samples, sampler "
        f"overhead {report['sampler_overhead_s'] * 1000 / n:.3f} ms per call, taken off; clock: "
        f"{report.get('sampler_clock')})"
    )
    print("  by thread, ms per call: " + ", ".join(
        f"{name} {seconds * 1000 / n:.2f}" for name, seconds in sorted(report["threads"].items())
    ))  # fmt: skip
    print("  loop thread by category, ms per call: " + ", ".join(
        f"{name} {seconds * 1000 / n:.2f}"
        for name, seconds in sorted(report["loop_split"].items(), key=lambda kv: -kv[1])
    ))  # fmt: skip
    print("  split, ms per call: " + ", ".join(
        f"{name} {seconds * 1000 / n:.2f}" for name, seconds in phase.split.items()
    ))  # fmt: skip
    events = report.get("events", {})
    print(
        f"  per call: {sum(events.values()) / n:.1f} events received, "
        f"{report.get('statements', 0) / n:.1f} SQL statements, {phase.log_lines / n:.1f} log lines"
    )
    print("  events per call: " + ", ".join(
        f"{name} {count / n:.1f}" for name, count in sorted(events.items(), key=lambda kv: -kv[1])
    ))  # fmt: skip
    print(f"  loop thread, inclusive (share of all controller CPU), top {TOP}:")
    for row in report["inclusive"][:TOP]:
        print(f"    {row[3] / total:6.1%} {row[3] * 1000 / n:6.3f} ms  {_where(row)}")
    print(f"  loop thread, self (innermost frame), top {TOP}:")
    for row in report["leaves"][:TOP]:
        print(f"    {row[3] / total:6.1%} {row[3] * 1000 / n:6.3f} ms  {_where(row)}")


def _print_cprofile(phase: Phase, pstats_file: Path) -> None:
    n = phase.attempted
    stats = pstats.Stats(str(pstats_file))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    table = stats.stats  # type: ignore[attr-defined]
    # cProfile's clock is the wall clock: the loop's wait in epoll is idle time, not cost.
    idle = sum(row[2] for key, row in table.items() if "epoll" in key[2])
    busy = sum(row[2] for row in table.values()) - idle
    print(
        f"\n=== {phase.path} path, {phase.rate:g} calls/s, {n} calls, cProfile on the loop "
        f"thread: {phase.cpu_s * 1000 / n:.2f} ms CPU per call with the profiler on; "
        f"{busy * 1000 / n:.2f} ms per call profiled, the wait in epoll left out"
    )
    print("  (a coroutine counts one call per resumption; shares are of the profiled time, on")
    print("  the wall clock: calls that release the GIL, such as socket send/recv, urandom, a")
    print("  greenlet switch, include waiting to get it back; the sampler gives CPU shares)")
    print(f"  own time, calls per citizen call, top {TOP}:")
    rows = [kv for kv in table.items() if "epoll" not in kv[0][2]]
    for (path, line, name), (_, calls, own, _cum, _) in sorted(rows, key=lambda kv: -kv[1][2])[
        :TOP
    ]:
        print(
            f"    {own / busy:6.1%} {own * 1000 / n:6.3f} ms {calls / n:8.1f}/call  "
            f"{_short(path)}:{line} {name}"
        )
    print(f"  cumulative, telephony code, top {TOP}:")
    ours = [kv for kv in rows if "/telephony/" in kv[0][0]]
    for (path, line, name), (_, calls, _own, cum, _) in sorted(ours, key=lambda kv: -kv[1][3])[
        :TOP
    ]:
        print(
            f"    {cum / busy:6.1%} {cum * 1000 / n:6.3f} ms {calls / n:8.1f}/call  "
            f"{_short(path)}:{line} {name}"
        )
