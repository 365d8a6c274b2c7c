"""One smoke test of the transport against the simulator (skipped if it is not there)."""

from __future__ import annotations

import asyncio

import pytest

from telephony.esl.messages import Event
from telephony.esl.port import NodeConnected
from telephony.esl.transport import EslConnection, EventStream

server = pytest.importorskip("telephony.sim.server")


async def _event(stream: EventStream, name: str, channel: str | None = None) -> Event:
    async with asyncio.timeout(10):
        async for item in stream:
            matches = channel is None or getattr(item, "unique_id", None) == channel
            if isinstance(item, Event) and item.name == name and matches:
                return item
    raise AssertionError(f"stream ended before {name}")


async def test_a_parked_call_answered_and_an_agent_originated() -> None:
    sim = server.Simulator(time_scale=20)
    port = await sim.start("127.0.0.1", 0)
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    stream = connection.events()
    try:
        await connection.connect()
        assert isinstance(await anext(stream), NodeConnected)
        await connection.api("sim", "phone", "1001")
        caller = (await connection.api("sim", "call", "12345", "13800138000")).body.split()[1]
        park = await _event(stream, "CHANNEL_PARK", caller)
        assert park.get("Caller-Destination-Number") == "12345"
        answered = await connection.execute(caller, "answer")
        assert answered.application == "answer" and answered.unique_id == caller
        job = await connection.bgapi(
            "originate", "{origination_caller_id_number=12345}user/1001", "&park()"
        )
        assert job.body is not None and job.body.startswith("+OK ")
        agent = job.body.split()[1]
        await connection.hangup(agent)
        await connection.hangup(caller)
        await _event(stream, "CHANNEL_DESTROY", caller)
    finally:
        await connection.close()
        await sim.stop()
