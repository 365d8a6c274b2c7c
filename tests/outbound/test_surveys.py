"""Follow-up campaigns: 200 numbers from a CSV, each called from the hotline's number and
played the follow-up flow's survey; results per ticket, retries, coverage."""

from __future__ import annotations

from typing import Any

from tests.outbound.conftest import OutboundRig

BUSY = range(170, 190)
NO_ANSWER = range(190, 200)


def number(n: int) -> str:
    return f"1370000{n:04d}"


async def test_a_200_number_campaign_gives_results_per_ticket_and_full_coverage(
    outbound_rig: OutboundRig,
) -> None:
    rig = outbound_rig
    for n in range(200):
        if n in BUSY:
            await rig.sim_api("citizen", number(n), "busy")
        elif n in NO_ANSWER:
            await rig.sim_api("citizen", number(n), "no_answer")
        else:
            key = str(n % 5 + 1)
            await rig.sim_api(
                "citizen",
                number(n),
                "answer",
                "answer_after_ms=500",
                f"dtmf={key * 6}",
                "dtmf_delay_ms=1500",
                "hangup_after_s=60",
            )
    csv = "number,reference\n" + "".join(f"{number(n)},T2026{n:06d}\n" for n in range(200))
    bad = await rig.http.post(
        "/v1/surveys?name=bad&hotline=12345&flow=follow-up",
        content="number,reference\nnot-a-number,T1\n",
        headers={**rig.admin, "content-type": "text/csv"},
    )
    assert bad.status_code == 422 and "line 2" in bad.text
    reply = await rig.http.post(
        "/v1/surveys?name=Nov%20tickets&hotline=12345&flow=follow-up&max_attempts=2&retry_seconds=1",
        content=csv,
        headers={**rig.admin, "content-type": "text/csv"},
    )
    assert reply.status_code == 201, reply.text
    campaign = reply.json()
    assert campaign["progress"]["total"] == 200 and campaign["progress"]["pending"] == 200
    await rig.dialer.start()
    await rig.settled("survey", timeout=180)

    detail = (
        await rig.http.get(f"/v1/surveys/{campaign['id']}?limit=1000", headers=rig.admin)
    ).json()
    progress = detail["progress"]
    assert progress["coverage"] == 1.0 and progress["attempted_rate"] == 1.0
    assert progress["reached"] == 170 and progress["failed"] == 30
    assert progress["reached_rate"] == 0.85 and progress["scored"] == 170
    results: dict[str, Any] = {r["reference"]: r for r in detail["results"]}
    assert len(results) == 200
    for n in range(200):
        result = results[f"T2026{n:06d}"]
        if n in BUSY or n in NO_ANSWER:
            assert result["state"] == "failed" and result["attempts"] == 2
            assert result["disposition"] == ("busy" if n in BUSY else "no_answer")
        else:
            assert result["state"] == "reached" and result["score"] == n % 5 + 1
    assert rig.dialer.peak <= 4
    assert {ch.var("origination_caller_id_number") for ch in rig.gateway_legs} == {"12345"}
    assert not [ch for ch in rig.gateway_legs if ch.is_up]  # every leg hung up by us
    listing = (await rig.http.get("/v1/surveys", headers=rig.admin)).json()
    assert listing["surveys"][0]["progress"]["coverage"] == 1.0
