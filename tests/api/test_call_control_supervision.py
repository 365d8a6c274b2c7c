"""Monitor (listen / whisper / barge), three-way calls, agents' outbound calls and wrap-up,
through the API on the simulator."""

from __future__ import annotations

import json
from typing import Any

from telephony.auth import Role
from tests.calls.control_rig import ControlRig, control_rig  # noqa: F401
from tests.store.conftest import database, embedded_server, engine  # noqa: F401


async def _eavesdrop(rig: ControlRig, leg: str) -> dict[str, Any]:
    reply = await rig.sim_api("eavesdrop", leg)
    data: dict[str, Any] = json.loads(reply)
    return data


async def test_monitor_listen_whisper_barge_stop(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    await rig.agent("a1", "1001", area="east")
    await rig.sim_api("phone", "8001", "answer_after_ms=200")
    east = await rig.tokens.headers("boss", Role.SUPERVISOR, area="east")
    uuid = await rig.talking()
    agent_leg = rig.engine.calls[uuid].agent_leg
    reply = await rig.post(
        f"/v1/calls/{uuid}/monitor", east, {"mode": "listen", "extension": "8001"}
    )
    assert reply.status_code == 200, reply.text
    session = rig.engine.control.sessions[uuid]
    assert session.monitor is not None
    leg = session.monitor.leg

    async def mode(expected: str) -> bool:
        if not await rig.channel_exists(leg):
            return False
        rows = (await _eavesdrop(rig, leg))["eavesdrops"]
        return bool(rows) and rows[0]["mode"] == expected and rows[0]["target"] == agent_leg

    await rig.wait_for(lambda: mode("listen"))
    for wanted in ("whisper", "barge", "listen"):
        reply = await rig.http.patch(
            f"/v1/calls/{uuid}/monitor", json={"mode": wanted}, headers=east
        )
        assert reply.status_code == 200, reply.text
        await rig.wait_for(lambda w=wanted: mode(w))  # type: ignore[misc]
    # a second monitor is refused while the first runs
    again = await rig.post(f"/v1/calls/{uuid}/monitor", east, {"extension": "8001"})
    assert again.status_code == 409
    reply = await rig.http.delete(f"/v1/calls/{uuid}/monitor", headers=east)
    assert reply.status_code == 200, reply.text

    async def gone() -> bool:
        return not await rig.channel_exists(leg)

    await rig.wait_for(gone)
    assert (await rig.live(uuid) or {})["state"] == "talking"
    assert len(await rig.audits("call.monitor")) == 2  # attempts are audited, refused or not
    assert len(await rig.audits("call.monitor_mode")) == 3
    kinds = await rig.timeline(uuid)
    assert "monitor" in kinds and "monitor_ended" in kinds


async def test_monitor_starts_in_whisper_and_ends_with_the_call(
    control_rig: ControlRig,  # noqa: F811
) -> None:
    rig = control_rig
    await rig.agent("a1", "1001")
    await rig.sim_api("phone", "8001", "answer_after_ms=200")
    uuid = await rig.talking()
    reply = await rig.post(
        f"/v1/calls/{uuid}/monitor", json={"mode": "whisper", "extension": "8001"}
    )
    assert reply.status_code == 200, reply.text
    monitor = rig.engine.control.sessions[uuid].monitor
    assert monitor is not None
    leg = monitor.leg

    async def whisper() -> bool:
        if not await rig.channel_exists(leg):
            return False
        rows = (await _eavesdrop(rig, leg))["eavesdrops"]
        return bool(rows) and rows[0]["mode"] == "whisper"

    await rig.wait_for(whisper)
    await rig.sim_api("hangup", uuid)
    await rig.ended_cdr(uuid)

    async def gone() -> bool:
        return not await rig.channel_exists(leg)

    await rig.wait_for(gone)


async def test_supervisor_of_another_area_cannot_monitor(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    await rig.agent("a1", "1001", area="east")
    west = await rig.tokens.headers("w", Role.SUPERVISOR, area="west")
    uuid = await rig.talking()
    reply = await rig.post(
        f"/v1/calls/{uuid}/monitor", west, {"mode": "listen", "extension": "8001"}
    )
    assert reply.status_code == 403 and reply.json()["error"] == "forbidden", reply.text
    assert (
        not rig.engine.control.sessions.get(uuid) or not rig.engine.control.sessions[uuid].monitor
    )
    assert not await rig.audits("call.monitor")
    # nothing to change or stop either
    reply = await rig.http.patch(f"/v1/calls/{uuid}/monitor", json={"mode": "barge"}, headers=west)
    assert reply.status_code == 403
    reply = await rig.http.patch(
        f"/v1/calls/{uuid}/monitor", json={"mode": "barge"}, headers=rig.admin
    )
    assert reply.status_code == 409


async def test_three_way_with_an_agent_and_leaving_it(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    uuid = await rig.talking()
    await rig.agent("a2", "1002")
    agent_leg = rig.engine.calls[uuid].agent_leg
    reply = await rig.post(f"/v1/calls/{uuid}/three-way", a1, {"to": {"agent": "a2"}})
    assert reply.status_code == 200, reply.text
    await rig.wait_state(uuid, "conference")
    await rig.wait_agent("a2", "in_call")
    third = rig.engine.control.sessions[uuid].party_leg
    assert third is not None

    async def barging() -> bool:
        rows = (await _eavesdrop(rig, third))["eavesdrops"]
        return bool(rows) and rows[0]["target"] == agent_leg

    await rig.wait_for(barging)
    assert (await rig.post(f"/v1/calls/{uuid}/hold", a1)).status_code == 409
    reply = await rig.http.delete(f"/v1/calls/{uuid}/three-way", headers=a1)
    assert reply.status_code == 200, reply.text
    await rig.wait_state(uuid, "talking")

    async def gone() -> bool:
        return not await rig.channel_exists(third)

    await rig.wait_for(gone)
    await rig.wait_agent("a2", "available")
    await rig.sim_api("hangup", uuid)
    cdr = await rig.ended_cdr(uuid)
    assert cdr["agent_id"] == "a1"
    kinds = await rig.timeline(uuid)
    assert "three_way" in kinds and "conference" in kinds and "three_way_ended" in kinds


async def test_three_way_party_hangs_up(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "02088880003", "answer", "answer_after_ms=200")
    uuid = await rig.talking()
    reply = await rig.post(f"/v1/calls/{uuid}/three-way", a1, {"to": {"number": "02088880003"}})
    assert reply.status_code == 200, reply.text
    await rig.wait_state(uuid, "conference")
    third = rig.engine.control.sessions[uuid].party_leg
    assert third is not None
    await rig.sim_api("hangup", third)
    await rig.wait_state(uuid, "talking")
    assert await rig.channel_exists(uuid)


async def test_agent_dials_out_and_ends_wrap_up(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "13900139000", "answer", "answer_after_ms=300")
    bad = await rig.post("/v1/agents/a1/dial", a1, {"number": "not-a-number"})
    assert bad.status_code == 422
    reply = await rig.post("/v1/agents/a1/dial", a1, {"number": "13900139000"})
    assert reply.status_code == 200, reply.text
    uuid = reply.json()["uuid"]
    busy = await rig.post("/v1/agents/a1/dial", a1, {"number": "13900139000"})
    assert busy.status_code == 409
    await rig.wait_state(uuid, "talking")
    live = await rig.live(uuid) or {}
    assert live["caller"] == "13900139000" and live["hotline"] == "12345"
    assert live["agent_id"] == "a1"
    assert (await rig.post(f"/v1/calls/{uuid}/hold", a1)).status_code == 200
    assert (await rig.post(f"/v1/calls/{uuid}/retrieve", a1)).status_code == 200
    assert (await rig.post(f"/v1/calls/{uuid}/hangup", a1)).status_code == 200
    cdr = await rig.ended_cdr(uuid)
    assert cdr["direction"] == "outbound" and cdr["outcome"] == "answered"
    assert cdr["caller"] == "13900139000" and cdr["agent_id"] == "a1"
    kinds = await rig.timeline(uuid)
    assert "dialing" in kinds and "connected" in kinds and "ended" in kinds

    async def recorded() -> list[Any] | None:  # claimed at RECORD_STOP, with audio
        rows = await rig.fetch(
            "select r.size_bytes from calls c join recordings r on r.id = c.recording_id"
            " where c.uuid = cast(:u as uuid)",
            u=uuid,
        )
        return rows or None

    (recording,) = await rig.wait_for(recorded, 10)
    assert recording.size_bytes > 44  # more than a WAV header
    # wrap-up (0.5 s in the rig): extend it, then end it now
    await rig.wait_agent("a1", "wrap_up", timeout=5)
    reply = await rig.post("/v1/agents/a1/wrap-up", a1, {"extend_seconds": 60})
    assert reply.status_code == 200, reply.text
    assert await rig.agent_state("a1") == "wrap_up"
    reply = await rig.post("/v1/agents/a1/ready", a1)
    assert reply.status_code == 200, reply.text
    assert await rig.agent_state("a1") == "available"


async def test_dial_out_to_a_busy_number(control_rig: ControlRig) -> None:  # noqa: F811
    rig = control_rig
    a1 = await rig.agent("a1", "1001")
    await rig.sim_api("citizen", "13900139001", "busy")
    reply = await rig.post("/v1/agents/a1/dial", a1, {"number": "13900139001"})
    assert reply.status_code == 200, reply.text
    uuid = reply.json()["uuid"]
    cdr = await rig.ended_cdr(uuid)
    assert cdr["outcome"] == "failed" and cdr["direction"] == "outbound"
    assert "dial_failed" in await rig.timeline(uuid)
    await rig.wait_agent("a1", "available")
    legs = await rig.fetch(
        "select uuid, ended_at from call_legs where call_uuid = cast(:u as uuid)", u=uuid
    )
    for leg in legs:
        assert not await rig.channel_exists(str(leg["uuid"]))
