"""A controller killed during an attempt: after the restart the attempt is recorded once
and its task goes on; no leg is left up; a database outage pauses dialing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from telephony.calls.outbound_port import EngineOutbound
from telephony.outbound.dialer import Dialer, DialerSettings
from tests.outbound.conftest import OutboundRig, insert_cdr

CITIZEN = "13600000001"


async def test_a_kill_during_a_survey_call_is_recorded_once_and_the_task_goes_on(
    outbound_rig: OutboundRig,
) -> None:
    rig = outbound_rig
    # The citizen answers and listens without pressing a key: the survey is playing when
    # the controller dies.
    await rig.sim_api("citizen", CITIZEN, "answer", "answer_after_ms=200", "hangup_after_s=600")
    body = {
        "name": "restart",
        "hotline": "12345",
        "flow": "follow-up",
        "max_attempts": 3,
        "retry_seconds": 0.5,
        "numbers": [{"number": CITIZEN, "reference": "T1"}],
    }
    reply = await rig.http.post("/v1/surveys", json=body, headers=rig.admin)
    assert reply.status_code == 201, reply.text
    await rig.dialer.start()

    async def talking() -> bool:
        return any(ch.is_up and ch.answered_evt.is_set() for ch in rig.gateway_legs)

    await rig.wait_for(talking, 20)
    first_leg = rig.gateway_legs[0]
    await rig.restart_dialer()
    # This time the citizen presses 5.
    await rig.sim_api(
        "citizen",
        CITIZEN,
        "answer",
        "answer_after_ms=200",
        "dtmf=555555",
        "dtmf_delay_ms=1500",
        "hangup_after_s=60",
    )

    async def reached() -> list[Any]:
        rows = await rig.fetch("select * from outbound_tasks where number = :n", n=CITIZEN)
        return rows if rows[0]["state"] == "reached" else []

    task = (await rig.wait_for(reached, 30))[0]
    attempts = await rig.fetch(
        "select * from outbound_attempts where task_id = :t order by started_at", t=task["id"]
    )
    assert [(a["state"], a["disposition"]) for a in attempts] == [
        ("interrupted", "interrupted"),
        ("ended", "answered"),
    ]
    assert task["attempts"] == 2 and task["score"] == 5 and attempts[1]["score"] == 5
    assert not first_leg.is_up  # the interrupted attempt's leg was hung up
    assert not [ch for ch in rig.gateway_legs if ch.is_up]


async def test_a_kill_during_a_callback_keeps_what_the_cdr_says(outbound_rig: OutboundRig) -> None:
    rig = outbound_rig
    await insert_cdr(rig.services.database, CITIZEN, "abandoned_in_queue", dt.datetime.now(dt.UTC))
    await rig.sim_api("citizen", CITIZEN, "answer", "answer_after_ms=200", "hangup_after_s=600")
    await rig.agent("a1", "1001")
    await rig.dialer.start()

    async def connected() -> list[Any]:
        return await rig.fetch(
            "select * from calls where caller = :n and direction = 'outbound'"
            " and agent_answered_at is not null",
            n=CITIZEN,
        )

    await rig.wait_for(connected, 20)
    await rig.restart_dialer()

    async def settled() -> list[Any]:
        rows = await rig.fetch("select * from outbound_tasks where number = :n", n=CITIZEN)
        return rows if rows[0]["state"] not in ("pending", "dialing") else []

    task = (await rig.wait_for(settled, 20))[0]
    attempts = await rig.fetch("select * from outbound_attempts where task_id = :t", t=task["id"])
    assert len(attempts) == 1 and attempts[0]["state"] == "interrupted"
    assert attempts[0]["disposition"] == "answered" and attempts[0]["agent_id"] == "a1"
    assert task["state"] == "reached" and task["attempts"] == 1

    async def no_leg_up() -> bool:
        return not [ch for ch in rig.gateway_legs if ch.is_up]

    await rig.wait_for(no_leg_up, 10)


async def test_a_database_outage_pauses_dialing(outbound_rig: OutboundRig) -> None:
    rig = outbound_rig
    dead = create_async_engine("postgresql+asyncpg://nobody:x@127.0.0.1:1/none")
    dialer = Dialer(
        dead,
        EngineOutbound([rig.engine], rig.services.roster),
        settings=DialerSettings(channels=4, tick_s=0.05, scan_every_s=0),
    )
    await dialer.start()
    try:

        async def paused() -> bool:
            return dialer.paused is not None

        await rig.wait_for(paused, 10)
        assert "database unreachable" in (dialer.paused or "")
        assert not dialer.active and not rig.gateway_legs  # nothing dialled
    finally:
        await dialer.stop()
        await dead.dispose()
