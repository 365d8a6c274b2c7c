"""Benchmark: how many calls a second the controller serves, and what each call costs it.

The simulator runs in its own process and places the calls itself at a fixed rate
(``telephony.sim.load``); the controller is ``telephony serve`` in its own process
(``tests.bench.controller``), on the tests' embedded PostgreSQL; a baseline controller
(``tests.bench.baseline``: the least ESL work that serves the same calls, no database,
no logs, no ``telephony`` code) serves the same load in the same run, so
"control plane CPU per call / baseline CPU per call" compares code versions on any
machine. The *floor* runs too (the baseline with ``--protocol engine``: the engine's
own subscription, filters and commands, each waited for): what any CPython controller
of this ESL protocol pays, below which no engine code can go; and on the ``ivr`` path
``esl``, the floor's calls through ``telephony.esl`` (what our ESL layer adds to it).
Paths: ``ivr`` (the 12345 flow: answer, welcome, menu, key 1, the next menu
starts, the citizen hangs up) and ``agent`` (key 0, queue, an agent phone that answers
at once, recorded, the citizen hangs up 4 s after the bridge).

Printed per path and rate: calls attempted / served / refused / otherwise lost, CDRs
written and still open with their outcomes; the controller's CPU per call split into
ESL (socket + parse), engine (calls, IVR, ACD), database (write buffer, SQLAlchemy,
asyncpg) and logging, against the baseline and the simulator's own CPU per call;
PostgreSQL's CPU per call; event-loop lag p99 and max; the write buffer's largest depth;
log lines per call; key press -> next prompt p50/p99, from the controller's
``telephony_ivr_reaction_seconds`` samples and from inside the simulator.

Nothing is asserted on time. Asserted, after printing: every attempted call has a
CDR, none is left open, every call ended, and the controller drained.

Run: ``make bench`` or ``pytest tests/bench/test_capacity.py -m bench -s``. Settings
(environment): BENCH_RATES (ivr, default 10,25,50), BENCH_AGENT_RATES (default
10,20,30), BENCH_SECONDS (per rate, default 15), BENCH_PATHS (ivr,agent),
BENCH_BASELINE (top: at each path's highest rate, all, off), BENCH_BASELINE_SECONDS
(10), BENCH_PROMPT_MS (1000), BENCH_LOG_LEVEL (INFO, serve's default), BENCH_SAMPLE_MS
(the loop sampler's period in ms of CPU, 0 = off), BENCH_NODES (simulator processes,
the rate spread over them, default 1). The issue's long run:
``BENCH_PATHS=ivr BENCH_RATES=50,125 BENCH_SECONDS=600 make bench``; two nodes:
``BENCH_NODES=2 BENCH_PATHS=ivr BENCH_RATES=222 make bench`` (needs more than 2 cores).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.bench.capacity import (
    Phase,
    Rig,
    Settings,
    bench_database,  # noqa: F401 (a fixture)
    print_tables,
    problems_of,
    remove,
)
from tests.store.conftest import Database, embedded_server  # noqa: F401

pytestmark = pytest.mark.bench


@pytest.mark.timeout(0)
def test_capacity(bench_database: Database) -> None:  # noqa: F811
    settings = Settings()
    # Not under pytest's tmp_path (0700): the switch's user must reach the recordings folder.
    root = Path(tempfile.mkdtemp(prefix="telephony-bench-", dir="/tmp"))
    root.chmod(0o755)
    database = bench_database
    pg_dir = database.server.data_dir if database.server is not None else None
    rig = Rig(settings, root, database.url, pg_dir)
    phases: list[Phase] = []
    idle: float | None = None
    try:
        rig.start_sims()
        if settings.agents():
            rig.add_agents(settings.agents())
        if settings.baseline != "off":
            for path in settings.paths:
                rates = settings.rates(path)
                chosen = rates if settings.baseline == "all" else rates[-1:]
                if not chosen:
                    continue
                protocols = ("least", "engine", "esl") if path == "ivr" else ("least", "engine")
                for protocol in protocols:
                    rig.start_baseline(path, protocol)
                    try:
                        for rate in chosen:
                            phases.append(rig.run_phase(path, rate, settings.baseline_seconds))
                            _progress(phases[-1])
                    finally:
                        rig.stop_controller()
        rig.start_serve()
        idle = rig.idle_cpu_per_s()
        for path in settings.paths:
            for rate in settings.rates(path):
                phases.append(rig.run_phase(path, rate, settings.seconds))
                _progress(phases[-1])
    finally:
        rig.close()
        print_tables(phases, settings, idle)
        print(f"\n  logs: {root} (serve.log, sim*.log; removed when the run passes)")
    problems = problems_of(phases)
    assert not problems, "\n".join(problems)
    remove(root)


def _progress(phase: Phase) -> None:
    per_call = phase.per_call_ms(phase.cpu_s) or 0.0
    print(
        f"\n  {phase.label} {phase.controller}: {phase.load['served']}/{phase.attempted} served,"
        f" {per_call:.2f} ms CPU per call, {phase.wall_s:.0f} s",
        flush=True,
    )
