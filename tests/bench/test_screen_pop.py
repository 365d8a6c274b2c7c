"""Benchmark: an agent's phone starts ringing -> its screen pop arrives, with 200 clients.

The control plane runs in this process as ``telephony serve`` wires it (simulator in
process too, ``tests/live/stack.py``); the WebSocket clients run in a child process
(``python -m tests.bench.test_screen_pop``), one per agent, each authenticated as its
agent. A sample is the time from the ring (the engine putting the agent leg's row in
the write buffer: the feed's observer sees it there) to the child receiving that
leg's ``screen_pop``, with the citizen's history read from PostgreSQL (a table of
``SEED_ROWS`` earlier calls). Both ends read ``time.perf_counter`` (CLOCK_MONOTONIC,
one clock for the machine). Printed: p50, p99 and max with one client connected (the
baseline) and with 200, and the ratio; nothing is asserted on time.

Run: pytest tests/bench/test_screen_pop.py -m bench -s
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import insert

from telephony.acd.agent_state import Agent, AgentEvent
from telephony.auth import Role
from telephony.live.hub import EventKind, LiveEvent
from telephony.store.buffer import Write
from telephony.store.models import Agent as AgentRow
from telephony.store.models import Call as CallRow
from telephony.store.models import table_of
from tests.bench.harness import REPO, percentile
from tests.live.stack import LiveStack, live_stack
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401

pytestmark = pytest.mark.bench

CLIENTS = 200
CALLS = 200
CALLS_PER_SECOND = 20
SEED_ROWS = 20_000
EXTENSION_BASE = 3000


async def _seed(stack: LiveStack, agents: int) -> list[str]:
    """``agents`` signed-in agents with tokens, and SEED_ROWS earlier calls of 2,000 callers."""
    now = datetime.now(UTC)
    ids = [f"b{n:03d}" for n in range(agents)]
    async with stack.services.database.begin() as connection:
        await connection.execute(
            insert(table_of(AgentRow)),
            [
                {
                    "id": i,
                    "name": i.upper(),
                    "extension": str(EXTENSION_BASE + n),
                    "state": "logged_out",
                }
                for n, i in enumerate(ids)
            ],
        )
        rows = [
            {
                "uuid": uuid.uuid4(),
                "caller": f"1390000{n % 2000:04d}",
                "hotline": "12345",
                "arrived_at": now - timedelta(hours=n % 1000),
                "outcome": "answered",
                "agent_id": ids[n % agents],
            }
            for n in range(SEED_ROWS)
        ]
        await connection.execute(insert(table_of(CallRow)), rows)
    roster = stack.services.roster
    roster.load(Agent(i, str(EXTENSION_BASE + n), name=i.upper()) for n, i in enumerate(ids))
    tokens = []
    for n, agent_id in enumerate(ids):
        roster.apply(agent_id, AgentEvent.SIGN_IN)
        await stack.sim_api("phone", str(EXTENSION_BASE + n), "answer_after_ms=2000")
        tokens.append(await stack.token(f"bench-{agent_id}", Role.AGENT, agent_id=agent_id))
    return tokens


async def _measure(stack: LiveStack, tokens: list[str], calls: int) -> tuple[list[float], ...]:
    """Ring -> pop published in this process, and ring -> pop received by the child."""
    rings: dict[str, float] = {}
    published: dict[str, float] = {}
    hub = stack.services.live
    publish = hub.publish

    def ring(write: Write) -> None:
        row = write.row
        if (
            write.table.name == "call_legs"
            and row["role"] == "agent"
            and row["answered_at"] is None
        ):
            rings.setdefault(str(row["uuid"]), time.perf_counter())

    def timed_publish(event: LiveEvent) -> int:
        seq = publish(event)
        if event.kind is EventKind.SCREEN_POP:
            published[event.body["leg_uuid"]] = time.perf_counter()
        return seq

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.test_screen_pop",
        stack.ws_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(orjson.dumps(tokens) + b"\n")
    await child.stdin.drain()
    assert (await asyncio.wait_for(child.stdout.readline(), 120)).strip() == b"ready"
    assert hub.subscribers == len(tokens)
    stack.services.buffer.observers.append(ring)
    hub.publish = timed_publish  # type: ignore[method-assign]
    received: dict[str, float] = {}
    try:
        for n in range(calls):
            caller = f"1390000{n % 2000:04d}"
            await stack.call(caller, "dtmf=0", "dtmf_delay_ms=5000", "hangup_after_s=20")
            await asyncio.sleep(1 / CALLS_PER_SECOND)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while len(received) < calls:
                    line = await child.stdout.readline()
                    if not line:
                        break
                    pop = orjson.loads(line)
                    received[pop["leg"]] = pop["t"]
    finally:
        hub.publish = publish  # type: ignore[method-assign]
        stack.services.buffer.observers.remove(ring)
        child.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        await child.wait()
    print(f"\nrings {len(rings)}, pops published {len(published)}, received {len(received)}")
    server = [published[leg] - at for leg, at in rings.items() if leg in published]
    client = [received[leg] - at for leg, at in rings.items() if leg in received]
    return server, client


def _line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:>34}: n={len(ms):4d}  p50 {percentile(ms, 0.5):6.1f} ms  "
        f"p99 {percentile(ms, 0.99):6.1f} ms  max {max(ms):6.1f} ms"
    )


async def test_ring_to_screen_pop_latency_with_200_clients(
    database: Database,  # noqa: F811
    shared_dir: Path,
) -> None:
    url = database.url.render_as_string(hide_password=False)
    async with live_stack(url, shared_dir, ring_timeout_seconds=60) as stack:
        tokens = await _seed(stack, CLIENTS)
        server, client = await _measure(stack, tokens, CALLS)
        dropped = stack.services.live.dropped
    print()
    print(_line("ring -> pop published (baseline)", server))
    print(_line(f"ring -> pop at one of {CLIENTS} clients", client))
    ratio = percentile(client, 0.99) / percentile(server, 0.99)
    print(f"p99 ratio client/published: {ratio:.2f}; slow clients dropped: {dropped}")
    assert len(client) >= CALLS * 0.9, f"only {len(client)} of {CALLS} pops arrived"


# -- the child: CLIENTS WebSocket clients ------------------------------------------------------


async def _clients(url: str) -> None:
    from tests.live.client import EventsClient

    tokens = orjson.loads(sys.stdin.readline())
    clients = [await EventsClient.open(url, token) for token in tokens]
    for client in clients:
        await client.next()  # welcome
        await client.next()  # snapshot
    out = sys.stdout.buffer

    async def listen(client: EventsClient) -> None:
        async for text in client.connection:
            at = time.perf_counter()
            message = orjson.loads(text)
            if message["type"] == "screen_pop":
                out.write(orjson.dumps({"leg": message["leg_uuid"], "t": at}) + b"\n")
                out.flush()

    out.write(b"ready\n")
    out.flush()
    await asyncio.gather(*(listen(c) for c in clients), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(_clients(sys.argv[1]))
