"""Transfers through the API on the simulator: blind (skill group, agent, number) and
attended (completed, cancelled, refused, the consulted party or the citizen leaving)."""

from __future__ import annotations

import asyncio

from tests.calls.control_rig import ControlRig, control_rig  # noqa: F401
from tests.store.conftest import database, embedded_server, engine  # noqa: F401


async def _group(rig: ControlRig, group: str) -> None:
    reply = await rig.http.post(
        "/v1/skill-groups", json={"id": group, "name": group}, headers=rig.admin
    )
    assert reply.status_code == 201, reply.text


async def test_blind_transfer_to_an_agent(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    first_leg = rig.engine.calls[uuid].agent_leg
    body = {"to": {"agent": "a2"}, "mode": "blind"}
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", a1, body)
    assert reply.status_code == 200, reply.text

    async def with_a2() -> bool:
        live = await rig.live(uuid)
        return bool(live and live["state"] == "talking" and live["agent_id"] == "a2")

    await rig.wait_for(with_a2)
    assert first_leg is not None and not await rig.channel_exists(first_leg)
    await rig.wait_agent("a1", "available")  # wrap-up over
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a2"
    kinds = await rig.timeline(uuid)
    assert kinds.count("connected") == 2 and "transfer" in kinds and "offered" in kinds, kinds


async def test_blind_transfer_to_a_skill_group_keeps_priority(
    control_rig: ControlRig,  # noqa: F811
) -> None:
    rig = control_rig
    await _group(rig, "tax")
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    rig.engine.calls[uuid].priority = 5
    body = {"to": {"skill_group": "tax"}, "mode": "blind"}
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", a1, body)
    assert reply.status_code == 200, reply.text
    await rig.wait_state(uuid, "queued")
    queue = rig.engine.queues["tax"]
    assert [w.call_uuid for w in queue.waiting()] == [uuid]
    assert queue.head() is not None and queue.head().priority == 5  # type: ignore[union-attr]
    # An agent of the group takes it.
    reply = await rig.http.post(
        "/v1/agents",
        json={"id": "t1", "name": "t1", "extension": "1003", "skills": {"tax": 1}},
        headers=rig.admin,
    )
    assert reply.status_code == 201
    await rig.sim_api("phone", "1003", "answer_after_ms=300")
    await rig.post("/v1/agents/t1/sign-in")
    await rig.wait_state(uuid, "talking")
    assert (await rig.live(uuid) or {})["agent_id"] == "t1"
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered" and cdr["skill_group_id"] == "tax"
    assert "requeued" in await rig.timeline(uuid)


async def test_citizen_leaves_while_requeued_is_still_answered(
    control_rig: ControlRig,  # noqa: F811
) -> None:
    rig = control_rig
    await _group(rig, "tax")
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    body = {"to": {"skill_group": "tax"}}
    assert (await rig.post(f"/v1/calls/{uuid}/transfer", a1, body)).status_code == 200
    await rig.wait_state(uuid, "queued")
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered" and cdr["hung_up_by"] == "caller"


async def test_blind_transfer_to_a_number(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "02088880000", "answer", "answer_after_ms=300")
    uuid = await rig.talking()
    body = {"to": {"number": "02088880000"}, "mode": "blind"}
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", a1, body)
    assert reply.status_code == 200, reply.text

    async def outside() -> bool:
        return "transferred" in await rig.timeline(uuid)

    await rig.wait_for(outside)
    assert (await rig.live(uuid) or {})["state"] == "talking"
    await rig.wait_agent("a1", "available")
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered"


async def test_blind_transfer_to_a_busy_number_requeues(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "02088880001", "busy")
    uuid = await rig.talking()
    body = {"to": {"number": "02088880001"}}
    assert (await rig.post(f"/v1/calls/{uuid}/transfer", a1, body)).status_code == 200

    async def failed() -> bool:
        return "transfer_failed" in await rig.timeline(uuid)

    await rig.wait_for(failed)
    # never dropped: back in its queue, and a1 (after wrap-up) takes it again
    await rig.wait_state(uuid, "talking")
    assert await rig.channel_exists(uuid)


async def _consult(rig: ControlRig, a1: dict[str, str], uuid: str, to: dict[str, str]) -> None:
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", a1, {"to": to, "mode": "attended"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "consulting"


async def _consulting(rig: ControlRig, uuid: str) -> None:
    async def joined() -> bool:
        return "consult_connected" in await rig.timeline(uuid)

    await rig.wait_for(joined)
    assert (await rig.live(uuid) or {})["state"] == "consulting"


async def test_attended_transfer_completed(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    first_leg = rig.engine.calls[uuid].agent_leg
    await _consult(rig, a1, uuid, {"agent": "a2"})
    await rig.wait_agent("a2", "in_call")
    await _consulting(rig, uuid)
    assert await rig.channel_exists(uuid)
    reply = await rig.post(f"/v1/calls/{uuid}/transfer/complete", a1)
    assert reply.status_code == 200, reply.text

    async def with_a2() -> bool:
        live = await rig.live(uuid)
        return bool(live and live["state"] == "talking" and live["agent_id"] == "a2")

    await rig.wait_for(with_a2)
    await rig.wait_agent("a1", "available")
    assert first_leg is not None
    await rig.wait_for(lambda: _gone(rig, first_leg))
    # a2 hangs up: the citizen hears the survey, a2 goes to wrap-up
    assert (await rig.post(f"/v1/calls/{uuid}/hangup")).status_code == 200
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a2"
    assert cdr["hold_seconds"] and cdr["hold_seconds"] > 0
    kinds = await rig.timeline(uuid)
    for kind in ("consult", "consult_connected", "transfer_completing", "transferred"):
        assert kind in kinds, kinds


async def _gone(rig: ControlRig, leg: str) -> bool:
    return not await rig.channel_exists(leg)


async def test_attended_transfer_cancelled(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    await _consult(rig, a1, uuid, {"agent": "a2"})
    await _consulting(rig, uuid)
    consult_leg = next(u for u, p in rig.engine.control.legs.items() if p.role == "consult")
    reply = await rig.post(f"/v1/calls/{uuid}/transfer/cancel", a1)
    assert reply.status_code == 200, reply.text
    await rig.wait_state(uuid, "talking")
    assert (await rig.live(uuid) or {})["agent_id"] == "a1"
    await rig.wait_for(lambda: _gone(rig, consult_leg))
    await rig.wait_agent("a2", "available")
    # the citizen and a1 still talk: a hold works
    assert (await rig.post(f"/v1/calls/{uuid}/hold", a1)).status_code == 200
    assert (await rig.post(f"/v1/calls/{uuid}/retrieve", a1)).status_code == 200
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["agent_id"] == "a1" and cdr["outcome"] == "answered"
    assert "consult_cancelled" in await rig.timeline(uuid)
    await rig.wait_agent("a1", "available")


async def test_attended_transfer_refused_by_the_consulted_agent(
    control_rig: ControlRig,  # noqa: F811
) -> None:
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002", answer="reject")
    await _consult(rig, a1, uuid, {"agent": "a2"})

    async def failed() -> bool:
        return "consult_failed" in await rig.timeline(uuid)

    await rig.wait_for(failed)
    await rig.wait_state(uuid, "talking")
    assert (await rig.live(uuid) or {})["agent_id"] == "a1"
    leg = rig.engine.calls[uuid].agent_leg
    assert leg is not None and not rig.sim.switch.get(leg).held  # type: ignore[union-attr]
    assert await rig.channel_exists(uuid)
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered" and cdr["hung_up_by"] == "caller"


async def test_consulted_party_hangs_up_citizen_returns(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    await _consult(rig, a1, uuid, {"agent": "a2"})
    await _consulting(rig, uuid)
    consult_leg = next(u for u, p in rig.engine.control.legs.items() if p.role == "consult")
    await rig.sim_api("hangup", consult_leg)
    await rig.wait_state(uuid, "talking")
    assert (await rig.live(uuid) or {})["agent_id"] == "a1"
    agent_leg = rig.engine.calls[uuid].agent_leg
    assert agent_leg is not None and await rig.channel_exists(agent_leg)
    await rig.sim_api("hangup", uuid)
    await rig.ended_cdr(uuid)
    await rig.wait_for(lambda: _gone(rig, agent_leg))


async def test_citizen_hangs_up_during_consult(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    first_leg = rig.engine.calls[uuid].agent_leg
    await _consult(rig, a1, uuid, {"agent": "a2"})
    await _consulting(rig, uuid)
    consult_leg = next(u for u, p in rig.engine.control.legs.items() if p.role == "consult")
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["hung_up_by"] == "caller"
    assert first_leg is not None
    await rig.wait_for(lambda: _gone(rig, consult_leg))
    await rig.wait_for(lambda: _gone(rig, first_leg))
    await rig.wait_agent("a1", "available")
    await rig.wait_agent("a2", "available")


async def test_consult_to_a_number_not_answered(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "02088880002", "no_answer")
    uuid = await rig.talking()
    await _consult(rig, a1, uuid, {"number": "02088880002"})

    async def failed() -> bool:
        return "consult_failed" in await rig.timeline(uuid)

    await rig.wait_for(failed, timeout=20)
    await rig.wait_state(uuid, "talking")
    await asyncio.sleep(0.1)
    assert await rig.channel_exists(uuid)
