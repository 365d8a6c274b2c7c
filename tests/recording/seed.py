"""Recordings for the tests: real WAV files on disk, their ``recordings`` and ``calls`` rows."""

from __future__ import annotations

import os
import socket
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.models import Agent, Call, Hotline, Recording, table_of

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV file of noise (so each one has its own SHA-256)."""
    data = os.urandom(int(seconds * rate) * 2)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


@dataclass(frozen=True)
class Seeded:
    """One recording made by :func:`seed_recordings`."""

    id: uuid.UUID
    call_uuid: uuid.UUID
    path: Path
    hotline: str
    agent_id: str | None
    started_at: datetime


async def seed_areas(engine: AsyncEngine) -> None:
    """Hotlines 12345 (east) and 12315 (west), agents e1 (east) and w1 (west)."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(table_of(Hotline)),
            [
                {"number": "12345", "name": "East", "flow": "main", "area": "east"},
                {"number": "12315", "name": "West", "flow": "main", "area": "west"},
            ],
        )
        await connection.execute(
            insert(table_of(Agent)),
            [
                {
                    "id": "e1",
                    "name": "E",
                    "extension": "1001",
                    "area": "east",
                    "state": "logged_out",
                },
                {
                    "id": "w1",
                    "name": "W",
                    "extension": "2001",
                    "area": "west",
                    "state": "logged_out",
                },
            ],
        )


async def seed_recordings(
    engine: AsyncEngine,
    folder: Path,
    count: int,
    *,
    hotline: str = "12345",
    agent_id: str | None = "e1",
    started_at: datetime = T0,
    seconds: float = 0.5,
) -> list[Seeded]:
    """``count`` answered calls of ``hotline``, each with a recording file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[Seeded] = []
    for i in range(count):
        call = uuid.uuid4()
        path = folder / f"{call}.wav"
        path.write_bytes(wav(seconds))
        at = started_at + timedelta(seconds=i)
        made.append(Seeded(uuid.uuid4(), call, path, hotline, agent_id, at))
    async with engine.begin() as connection:
        await connection.execute(
            insert(table_of(Call)),
            [
                {
                    "uuid": s.call_uuid,
                    "hotline": s.hotline,
                    "caller": "13800138000",
                    "arrived_at": s.started_at,
                    "agent_id": s.agent_id,
                    "outcome": "answered",
                    "recording_id": s.id,
                }
                for s in made
            ],
        )
        await connection.execute(
            insert(table_of(Recording)),
            [
                {
                    "id": s.id,
                    "call_uuid": s.call_uuid,
                    "path": str(s.path),
                    "started_at": s.started_at,
                    "ended_at": s.started_at + timedelta(seconds=seconds),
                    "seconds": seconds,
                    "size_bytes": s.path.stat().st_size,
                }
                for s in made
            ],
        )
    return made


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
