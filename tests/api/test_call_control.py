"""Call control through the API on the simulator: hold, retrieve, hang-up, refusals, scope.

Each test drives a real engine on the simulator through HTTP only, and reads the
live state (GET /v1/calls), the CDR and the timeline.
"""

from __future__ import annotations

import asyncio

from telephony.auth import Role
from tests.calls.control_rig import ControlRig, control_rig  # noqa: F401
from tests.store.conftest import database, embedded_server, engine  # noqa: F401


async def test_hold_and_retrieve_count_hold_time(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    agent = await rig.agent("a1", "1001")
    uuid = await rig.talking()

    reply = await rig.post(f"/v1/calls/{uuid}/hold", agent)
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "held"
    assert (await rig.live(uuid) or {})["state"] == "held"
    leg = rig.engine.calls[uuid].agent_leg
    assert leg is not None and rig.sim.switch.get(leg).held  # type: ignore[union-attr]
    again = await rig.post(f"/v1/calls/{uuid}/hold", agent)
    assert again.status_code == 409 and again.json()["error"] == "conflict", again.text

    await asyncio.sleep(1.0)
    reply = await rig.post(f"/v1/calls/{uuid}/retrieve", agent)
    assert reply.status_code == 200, reply.text
    assert (await rig.live(uuid) or {})["state"] == "talking"
    again = await rig.post(f"/v1/calls/{uuid}/retrieve", agent)
    assert again.status_code == 409, again.text

    reply = await rig.post(f"/v1/calls/{uuid}/hangup", agent)
    assert reply.status_code == 200, reply.text
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "answered"
    assert cdr["hung_up_by"] == "agent"
    assert 0.8 <= cdr["hold_seconds"] < 5, cdr["hold_seconds"]
    kinds = await rig.timeline(uuid)
    for kind in ("connected", "held", "retrieved", "hangup_requested", "agent_hung_up", "ended"):
        assert kind in kinds, kinds
    assert not await rig.audits("call.hold")  # the agent's own call: not audited
    await rig.wait_agent("a1", "available")


async def test_citizen_hangs_up_on_hold(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    agent = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    assert (await rig.post(f"/v1/calls/{uuid}/hold", agent)).status_code == 200
    await asyncio.sleep(0.5)
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["hung_up_by"] == "caller"
    assert cdr["hold_seconds"] and cdr["hold_seconds"] > 0.3
    await rig.wait_agent("a1", "available")


async def test_refusals(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    agent = await rig.agent("a1", "1001")
    other = await rig.agent("a2", "1002", sign_in=False)
    missing = await rig.post("/v1/calls/5b0f3f8e-0000-4000-8000-000000000000/hold")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    uuid = await rig.talking()
    # another agent's call
    assert (await rig.post(f"/v1/calls/{uuid}/hold", other)).status_code == 403
    # a supervisor of another area, an auditor
    west = await rig.tokens.headers("w", Role.SUPERVISOR, area="west")
    assert (await rig.post(f"/v1/calls/{uuid}/hold", west)).status_code == 403
    auditor = await rig.tokens.headers("z", Role.AUDITOR)
    assert (await rig.post(f"/v1/calls/{uuid}/hold", auditor)).status_code == 403
    # transfer to a logged-out agent, to nobody, to a number that is not a number
    body = {"to": {"agent": "a2"}, "mode": "blind"}
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", agent, body)
    assert reply.status_code == 409 and "logged_out" in reply.json()["detail"], reply.text
    body = {"to": {"agent": "nobody"}}
    assert (await rig.post(f"/v1/calls/{uuid}/transfer", agent, body)).status_code == 404
    body = {"to": {"number": "12a45"}}
    reply = await rig.post(f"/v1/calls/{uuid}/transfer", agent, body)
    assert reply.status_code == 422 and reply.json()["error"], reply.text
    body = {"to": {"number": "123", "agent": "a2"}}
    assert (await rig.post(f"/v1/calls/{uuid}/transfer", agent, body)).status_code == 422
    body = {"to": {"skill_group": "nope"}}
    assert (await rig.post(f"/v1/calls/{uuid}/transfer", agent, body)).status_code == 404
    # nothing to complete, nothing to leave, not monitored
    assert (await rig.post(f"/v1/calls/{uuid}/transfer/complete", agent)).status_code == 409
    assert (await rig.post(f"/v1/calls/{uuid}/transfer/cancel", agent)).status_code == 409
    reply = await rig.http.delete(f"/v1/calls/{uuid}/three-way", headers=agent)
    assert reply.status_code == 409
    # agents do not monitor
    reply = await rig.post(f"/v1/calls/{uuid}/monitor", agent, {"mode": "listen"})
    assert reply.status_code == 403
    # ready when not in wrap-up
    reply = await rig.post("/v1/agents/a1/ready", agent)
    assert reply.status_code == 409, reply.text
    # the call is untouched by all that
    assert (await rig.live(uuid) or {})["state"] == "talking"


async def test_supervisor_hold_is_audited(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    await rig.agent("a1", "1001", area="east")
    east = await rig.tokens.headers("e", Role.SUPERVISOR, area="east")
    uuid = await rig.talking()
    assert (await rig.post(f"/v1/calls/{uuid}/hold", east)).status_code == 200
    assert (await rig.post(f"/v1/calls/{uuid}/retrieve", east)).status_code == 200
    audits = await rig.audits("call.hold")
    assert len(audits) == 1 and audits[0]["principal"] == "e", audits


async def test_hangup_of_a_queued_call(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    uuid = await rig.call()
    await rig.wait_state(uuid, "queued")
    assert (await rig.post(f"/v1/calls/{uuid}/hold")).status_code == 409
    reply = await rig.post(f"/v1/calls/{uuid}/hangup")
    assert reply.status_code == 200, reply.text
    cdr = await rig.ended_cdr(uuid)
    assert cdr["hung_up_by"] == "system"
    assert "hangup_requested" in await rig.timeline(uuid)
