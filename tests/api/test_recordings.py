"""``/v1/recordings``: who sees which, audio with Range (audited), delete (audited), retention."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from telephony.auth import Role
from telephony.recording.archive import CopyStatus, copy_key
from telephony.recording.stores import DirectoryStore
from telephony.services import Services
from telephony.store.models import AuditEntry, Recording, table_of
from tests.api.fakes import Tokens
from tests.recording.seed import T0, Seeded, seed_areas, seed_recordings

_AUDIT = table_of(AuditEntry)


@pytest.fixture
async def seeded(services: Services, tmp_path: Path) -> dict[str, Seeded]:
    """One east recording (agent e1) and one west recording (agent w1), copied to a DR folder."""
    await seed_areas(services.database)
    folder = tmp_path / "recordings"
    east = await seed_recordings(services.database, folder, 1)
    west = await seed_recordings(
        services.database, folder, 1, hotline="12315", agent_id="w1", started_at=T0 + timedelta(1)
    )
    services.recordings.store = DirectoryStore(tmp_path / "dr")
    await services.recordings.copy_due()
    return {"east": east[0], "west": west[0]}


@pytest.fixture
async def people(tokens: Tokens) -> dict[str, dict[str, str]]:
    return {
        "admin": await tokens.headers("root", Role.ADMIN),
        "auditor": await tokens.headers("audit", Role.AUDITOR),
        "east_sup": await tokens.headers("east-boss", Role.SUPERVISOR, area="east"),
        "west_sup": await tokens.headers("west-boss", Role.SUPERVISOR, area="west"),
        "e1": await tokens.headers("e1-token", Role.AGENT, agent_id="e1"),
        "w1": await tokens.headers("w1-token", Role.AGENT, agent_id="w1"),
    }


async def _ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> set[str]:
    reply = await client.get("/v1/recordings", headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    return {r["id"] for r in reply.json()["recordings"]}


async def _audit(services: Services, action: str) -> list[Any]:
    async with services.database.connect() as connection:
        return list(
            (
                await connection.execute(
                    select(_AUDIT).where(_AUDIT.c.action == action).order_by(_AUDIT.c.at)
                )
            ).all()
        )


async def test_who_lists_and_fetches_which_recordings(
    client: httpx.AsyncClient, seeded: dict[str, Seeded], people: dict[str, dict[str, str]]
) -> None:
    east, west = str(seeded["east"].id), str(seeded["west"].id)
    assert await _ids(client, people["admin"]) == {east, west}
    assert await _ids(client, people["auditor"]) == {east, west}
    assert await _ids(client, people["east_sup"]) == {east}
    assert await _ids(client, people["west_sup"]) == {west}
    assert await _ids(client, people["e1"]) == {east}
    assert await _ids(client, people["w1"]) == {west}
    assert await _ids(client, people["admin"], hotline="12315") == {west}
    assert await _ids(client, people["admin"], agent="e1") == {east}
    assert await _ids(client, people["admin"], offsite="verified") == {east, west}
    assert await _ids(client, people["admin"], offsite="pending") == set()

    # An agent (or a supervisor) of another area: 404 for metadata and audio, as for nothing.
    for who, other in (("e1", west), ("w1", east), ("east_sup", west)):
        for path in (f"/v1/recordings/{other}", f"/v1/recordings/{other}/audio"):
            reply = await client.get(path, headers=people[who])
            assert reply.status_code == 404, (who, path, reply.text)

    reply = await client.get(f"/v1/recordings/{east}", headers=people["e1"])
    assert reply.status_code == 200
    body = reply.json()
    assert body["call_uuid"] == str(seeded["east"].call_uuid)
    assert body["hotline"] == "12345" and body["agent_id"] == "e1"
    assert body["offsite"]["status"] == "verified"
    assert body["sha256"] == body["offsite"]["sha256"]
    assert body["audio"] == f"/v1/recordings/{east}/audio"


async def test_audio_is_streamed_with_range_and_every_listen_is_audited(
    client: httpx.AsyncClient,
    services: Services,
    seeded: dict[str, Seeded],
    people: dict[str, dict[str, str]],
) -> None:
    east = seeded["east"]
    audio = east.path.read_bytes()
    url = f"/v1/recordings/{east.id}/audio"

    whole = await client.get(url, headers=people["auditor"])
    assert whole.status_code == 200
    assert whole.content == audio
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"

    part = await client.get(url, headers={**people["e1"], "Range": "bytes=44-1043"})
    assert part.status_code == 206
    assert part.content == audio[44:1044]
    assert part.headers["content-range"] == f"bytes 44-1043/{len(audio)}"

    tail = await client.get(url, headers={**people["east_sup"], "Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == audio[-100:]

    outside = await client.get(url, headers={**people["admin"], "Range": f"bytes={len(audio)}-"})
    assert outside.status_code == 416

    listens = await _audit(services, "recording.listen")
    assert [(e.principal, e.detail["range"]) for e in listens] == [
        ("audit", None),
        ("e1-token", "bytes=44-1043"),
        ("east-boss", "bytes=-100"),
        ("root", f"bytes={len(audio)}-"),
    ]
    assert all(
        e.target_id == str(east.id) and e.detail["call"] == str(east.call_uuid) for e in listens
    )
    assert listens[1].detail["role"] == "agent"

    # Refused requests are not listens.
    await client.get(f"/v1/recordings/{seeded['west'].id}/audio", headers=people["e1"])
    assert len(await _audit(services, "recording.listen")) == 4


async def test_delete_needs_a_reason_and_the_area_and_is_audited(
    client: httpx.AsyncClient,
    services: Services,
    seeded: dict[str, Seeded],
    people: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    east = seeded["east"]
    url = f"/v1/recordings/{east.id}"
    copy = tmp_path / "dr" / copy_key(east.id, east.started_at, str(east.path))
    assert copy.is_file()
    body = {"reason": "citizen's request under the privacy rules (ticket 4711)"}

    for who in ("e1", "auditor"):
        reply = await client.request("DELETE", url, headers=people[who], json=body)
        assert reply.status_code == 403, (who, reply.text)
    reply = await client.request("DELETE", url, headers=people["west_sup"], json=body)
    assert reply.status_code == 404
    reply = await client.request("DELETE", url, headers=people["east_sup"], json={})
    assert reply.status_code == 422
    reply = await client.request("DELETE", url, headers=people["east_sup"], json={"reason": "  "})
    assert reply.status_code == 422
    assert east.path.is_file() and copy.is_file()
    assert await _audit(services, "recording.delete") == []

    reply = await client.request("DELETE", url, headers=people["east_sup"], json=body)
    assert reply.status_code == 204, reply.text
    assert not east.path.exists() and not copy.exists()
    (entry,) = await _audit(services, "recording.delete")
    assert entry.principal == "east-boss" and entry.target_id == str(east.id)
    assert entry.detail["reason"] == body["reason"]
    assert entry.detail["role"] == "supervisor" and entry.detail["hotline"] == "12345"

    assert await _ids(client, people["admin"]) == {str(seeded["west"].id)}
    assert await _ids(client, people["admin"], deleted=True) == {
        str(east.id),
        str(seeded["west"].id),
    }
    meta = (await client.get(url, headers=people["admin"])).json()
    assert meta["delete_reason"] == body["reason"] and meta["deleted_at"]
    assert meta["offsite"]["status"] == CopyStatus.REMOVED
    assert (await client.get(url + "/audio", headers=people["admin"])).status_code == 410
    again = await client.request("DELETE", url, headers=people["admin"], json=body)
    assert again.status_code == 410
    assert services.metrics.recordings_removed.labels("deleted")._value.get() == 1


async def test_offsite_report_and_retention_settings(
    client: httpx.AsyncClient,
    services: Services,
    seeded: dict[str, Seeded],
    people: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    more = await seed_recordings(services.database, tmp_path / "recordings", 2)
    reply = await client.get("/v1/recordings/offsite", headers=people["auditor"])
    assert reply.status_code == 200
    report = reply.json()
    assert report["store"] == f"folder {tmp_path / 'dr'}"
    assert (report["total"], report["verified"], report["not_safe"]) == (4, 2, 2)
    assert {r["id"] for r in report["oldest_not_safe"]} == {str(m.id) for m in more}
    assert (
        await client.get("/v1/recordings/offsite", headers=people["east_sup"])
    ).status_code == 403

    put = await client.put(
        "/v1/recordings/retention/12345", headers=people["admin"], json={"days": 180}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {"default_days": 0, "hotlines": {"12345": 180}}
    refused = await client.put(
        "/v1/recordings/retention/12345", headers=people["east_sup"], json={"days": 1}
    )
    assert refused.status_code == 403
    assert (
        await client.put(
            "/v1/recordings/retention/12345", headers=people["admin"], json={"days": 0}
        )
    ).status_code == 422
    cleared = await client.put(
        "/v1/recordings/retention/12345", headers=people["admin"], json={"days": None}
    )
    assert cleared.json()["hotlines"] == {}
    changes = await _audit(services, "recording.retention")
    assert [e.detail["days"] for e in changes] == [180, None]


async def test_unknown_recording_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/recordings/{missing}", headers=admin)).status_code == 404
    assert (await client.get(f"/v1/recordings/{missing}/audio", headers=admin)).status_code == 404
    reply = await client.request(
        "DELETE", f"/v1/recordings/{missing}", headers=admin, json={"reason": "x"}
    )
    assert reply.status_code == 404


def test_recording_model_has_the_copy_columns() -> None:
    columns = set(table_of(Recording).c.keys())
    assert {"copy_status", "copy_sha256", "copy_attempts", "delete_reason"} <= columns
