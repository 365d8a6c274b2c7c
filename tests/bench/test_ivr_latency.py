"""Benchmark: key press to the next prompt, under load, at 10, 50 and 125 new calls per second.

The simulator runs in its own process at real time (time scale 1) and places
the calls itself (`api sim calls`), so the load generator does not compete
with the controller. The controller (ESL transport, engine, IVR flows, write
buffer on the embedded PostgreSQL) runs in this process on the repository's
12345 flow: welcome, menu, the citizen presses 0 five seconds after answer,
the "to an agent" prompt starts, the call waits in queue and hangs up after
8 s. Each sample is the switch's time from the DTMF event to the next prompt
starting (the reaction the citizen hears). Printed: p50, p99 and max per
rate, and p99 as a ratio to the 10 calls/s run; nothing is asserted on time.

Run: pytest tests/bench/test_ivr_latency.py -m bench -s
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.esl.transport import EslConnection
from tests.bench.harness import REPO, percentile, sim_port  # noqa: F401
from tests.calls.conftest import start_controller
from tests.store.conftest import database, embedded_server, engine  # noqa: F401

pytestmark = pytest.mark.bench

RATES = (10, 50, 125)
SECONDS_PER_RATE = 6
HANGUP_AFTER_S = 8


async def test_dtmf_to_next_prompt_latency_under_load(
    sim_port: int,  # noqa: F811
    engine: AsyncEngine,  # noqa: F811
    tmp_path: Path,
) -> None:
    samples: list[float] = []

    class Collect:
        def reaction(self, seconds: float) -> None:
            samples.append(seconds)

        def reload_error(self, path: str, errors: int) -> None:
            raise AssertionError(f"{path}: {errors} flow errors")

        def flow_finished(self, flow: str, action: str) -> None:
            pass

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    controller = await start_controller(
        sim_port, engine, recordings, REPO / "ivr_flows", ivr_hooks=Collect()
    )
    loader = EslConnection(f"esl://:ClueCon@127.0.0.1:{sim_port}", events=())
    await loader.connect()
    results: dict[int, tuple[int, float, float, float]] = {}
    try:
        for rate in RATES:
            samples.clear()
            count = rate * SECONDS_PER_RATE
            await loader.api(
                "sim",
                "calls",
                str(count),
                str(rate),
                "12345",
                f"139{rate:03d}",
                "dtmf=0",
                "dtmf_delay_ms=5000",
                f"hangup_after_s={HANGUP_AFTER_S}",
            )
            await asyncio.sleep(SECONDS_PER_RATE)
            async with asyncio.timeout(120):
                while controller.calls.calls:
                    await asyncio.sleep(0.2)
            assert len(samples) >= 0.9 * count, f"{rate}/s: {len(samples)} of {count} calls"
            results[rate] = (
                len(samples),
                statistics.median(samples),
                percentile(samples, 0.99),
                max(samples),
            )
    finally:
        await loader.close()
        await controller.stop()

    base = results[RATES[0]][2]
    print(f"\nDTMF to next prompt, {SECONDS_PER_RATE} s of new calls per rate (12345 flow):")
    for rate, (n, p50, p99, worst) in results.items():
        print(
            f"  {rate:4d} calls/s  n={n:4d}  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"
            f"  max {worst * 1000:7.1f} ms  p99/p99@{RATES[0]} {p99 / base:5.2f}"
        )
