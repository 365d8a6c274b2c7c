"""``/healthz`` (liveness) and ``/readyz`` (readiness: database, ESL nodes, recording), no auth.

``/readyz`` answers 200 only when the database answers ``SELECT 1`` and every
node named in ``TELEPHONY_FREESWITCH`` has a connected ESL session whose
recording probe passed (a short recording through the switch into the
recordings folders, checked here: :mod:`telephony.recording.probe`); otherwise
503 with ``{"error": "not_ready", "detail": ..., "database": ..., "nodes": ...}``
so that an orchestrator (and a person) sees what is missing. Each node says
``recording``: ``ok``, why it cannot record (the switch's reply), ``not checked
yet`` (connected, probe still running), or null when no probe runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from telephony.api.deps import ServicesDep
from telephony.api.errors import ErrorBody
from telephony.recording.probe import NOT_CHECKED

router = APIRouter(tags=["health"])


class DatabaseHealth(BaseModel):
    reachable: bool
    error: str | None


class NodeHealthView(BaseModel):
    node: str
    connected: bool
    recording: str | None = None


class NotReady(ErrorBody):
    """``/readyz``'s 503: the error body, plus the state of the database and of each node."""

    database: DatabaseHealth
    nodes: list[NodeHealthView]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, every ESL node connected and able to record",
    responses={
        503: {"model": NotReady, "description": "Not ready: `detail` says what is missing."}
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    ready = await services.readiness()
    body: dict[str, Any] = {
        "database": {"reachable": ready.database, "error": ready.database_error},
        "nodes": [
            {"node": n.node, "connected": n.connected, "recording": n.recording}
            for n in ready.nodes
        ],
    }
    if ready.ready:
        return JSONResponse({"status": "ready", **body})
    missing = []
    for n in ready.nodes:
        if not n.connected:
            missing.append(f"ESL node {n.node} not connected")
        elif n.recording == NOT_CHECKED:
            missing.append(f"ESL node {n.node}: recording not checked yet")
        elif n.recording not in (None, "ok"):
            missing.append(f"ESL node {n.node} cannot record: {n.recording}")
    if not ready.database:
        missing.insert(0, "database unreachable")
    if not ready.nodes:
        missing.append("no ESL node configured")
    return JSONResponse(
        {"error": "not_ready", "detail": "; ".join(missing), **body}, status_code=503
    )
