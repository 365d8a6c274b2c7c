"""``/v1/recordings``: call recordings' metadata, their audio (audited), deletion (audited).

Who sees a recording (that of its call, ``recordings.call_uuid`` -> ``calls``):

* an agent: the recordings of the calls it answered (``calls.agent_id``), nothing else;
* a supervisor: those whose call's hotline or answering agent is of one of its
  areas (the same rule as call records, :func:`telephony.api.call_records.area_scope`);
* admins and auditors: every recording.

A recording outside the caller's scope is answered 404, as one that does not
exist. Every ``GET .../audio`` (each request, including each ``Range``
request a player sends to seek) writes an audit row ``recording.listen``
before any byte is sent; if that row cannot be written the audio is refused.
``DELETE`` (supervisors of the area and admins; with a reason) writes
``recording.delete`` in the transaction that marks the recording deleted, then
removes the file and its off-site copy (:meth:`RecordingArchive.remove`).

``GET /v1/recordings/offsite`` reports the off-site copy (话务语音异地灾备): how
many recordings are not yet safe, and the oldest of them.
``GET/PUT /v1/recordings/retention`` show and set the days each hotline's
recordings are kept (admins).
"""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, false, func, select

from telephony.api.call_records import area_scope
from telephony.api.deps import AdminCaller, AuditLog, CurrentCaller, ServicesDep, require_role
from telephony.api.errors import (
    ERROR_RESPONSES,
    ApiError,
    ErrorBody,
    forbidden,
    not_found,
    responses,
)
from telephony.api.validation import INT64_MAX, Query32, Query64, UtcDatetime
from telephony.auth import Caller, Role
from telephony.recording.archive import CopyStatus, NotFound, RemovedRecording
from telephony.store.models import Call, Recording, table_of

router = APIRouter(prefix="/v1/recordings", tags=["recordings"], responses=ERROR_RESPONSES)

_RECORDINGS = table_of(Recording)
_CALLS = table_of(Call)
MAX_PAGE = 500
OpsReader = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.AUDITOR))]
GONE: dict[int | str, dict[str, Any]] = {
    410: {"model": ErrorBody, "description": "The recording was deleted."}
}
HotlineNumber = Annotated[
    str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_+\-]+$")
]


class OffsiteCopy(BaseModel):
    """A recording's off-site copy: ``pending`` until read back with the original's SHA-256."""

    status: str
    location: str | None
    sha256: str | None
    attempts: int
    error: str | None
    next_attempt_at: datetime | None
    verified_at: datetime | None


class RecordingView(BaseModel):
    """A recording's metadata, with its call's hotline, caller and agent."""

    id: str
    call_uuid: str
    hotline: str | None
    caller: str | None
    agent_id: str | None
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    size_bytes: int | None
    sha256: str | None
    deleted_at: datetime | None
    delete_reason: str | None
    offsite: OffsiteCopy
    audio: str = Field(description="where to fetch the audio (audited; Range honoured)")


class RecordingPage(BaseModel):
    """One page of recordings, newest first."""

    recordings: list[RecordingView]
    total: int
    limit: int
    offset: int


class RecordingDelete(BaseModel):
    """Why the recording is deleted (kept with the row and in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
    )


class OffsiteReport(BaseModel):
    """Recordings safe off-site, those that are not yet, and the oldest of those."""

    store: str | None = Field(description="the second store; null: none is configured")
    total: int
    verified: int
    not_safe: int
    failing: int = Field(description="not safe, and the last attempt failed")
    oldest_not_safe: list[dict[str, Any]]


class RetentionPolicies(BaseModel):
    """Days each hotline's recordings are kept; ``default_days`` for the others (0: for ever)."""

    default_days: int
    hotlines: dict[str, int]


class RetentionChange(BaseModel):
    """A hotline's retention in days (null: back to the default)."""

    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(ge=1, le=36_500)


def _scope(caller: Caller) -> ColumnElement[bool] | None:
    """The caller's condition on ``calls``; None when it sees every recording."""
    if caller.role is Role.AGENT:
        return _CALLS.c.agent_id == caller.agent_id if caller.agent_id else false()
    return area_scope(caller)


def _query(caller: Caller, *conditions: ColumnElement[bool]) -> Select[Any]:
    query = select(_RECORDINGS, _CALLS.c.hotline, _CALLS.c.caller, _CALLS.c.agent_id).select_from(
        _RECORDINGS.outerjoin(_CALLS, _CALLS.c.uuid == _RECORDINGS.c.call_uuid)
    )
    scope = _scope(caller)
    return query.where(*conditions, *(() if scope is None else (scope,)))


def _view(row: Any) -> RecordingView:
    return RecordingView(
        id=str(row.id),
        call_uuid=str(row.call_uuid),
        hotline=row.hotline,
        caller=row.caller,
        agent_id=row.agent_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        seconds=row.seconds,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        deleted_at=row.deleted_at,
        delete_reason=row.delete_reason,
        offsite=OffsiteCopy(
            status=row.copy_status,
            location=row.copy_location,
            sha256=row.copy_sha256,
            attempts=row.copy_attempts,
            error=row.copy_error,
            next_attempt_at=row.copy_next_at,
            verified_at=row.copy_verified_at,
        ),
        audio=f"/v1/recordings/{row.id}/audio",
    )


async def _visible(services: ServicesDep, caller: Caller, recording_id: uuid_module.UUID) -> Any:
    """The recording's row if the caller may see it; 404 otherwise."""
    async with services.database.connect() as connection:
        row = (
            await connection.execute(_query(caller, _RECORDINGS.c.id == recording_id))
        ).one_or_none()
    if row is None:
        raise not_found("recording", str(recording_id))
    return row


@router.get("", summary="Recordings the caller may see, newest first, with filters")
async def list_recordings(
    services: ServicesDep,
    caller: CurrentCaller,
    since: Annotated[UtcDatetime | None, Query(description="started at or after")] = None,
    until: Annotated[UtcDatetime | None, Query(description="started before")] = None,
    hotline: Annotated[Query32 | None, Query(description="the dialled hotline")] = None,
    agent: Annotated[Query64 | None, Query(description="the answering agent")] = None,
    call: Annotated[uuid_module.UUID | None, Query(description="the call's uuid")] = None,
    offsite: Annotated[CopyStatus | None, Query(description="the off-site copy's status")] = None,
    deleted: Annotated[bool, Query(description="also the deleted ones")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> RecordingPage:
    r = _RECORDINGS.c
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(r.started_at >= since)
    if until is not None:
        conditions.append(r.started_at < until)
    if hotline is not None:
        conditions.append(_CALLS.c.hotline == hotline)
    if agent is not None:
        conditions.append(_CALLS.c.agent_id == agent)
    if call is not None:
        conditions.append(r.call_uuid == call)
    if offsite is not None:
        conditions.append(r.copy_status == offsite.value)
    if not deleted:
        conditions.append(r.deleted_at.is_(None))
    query = _query(caller, *conditions)
    async with services.database.connect() as connection:
        total = await connection.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = (
            await connection.execute(
                query.order_by(r.started_at.desc(), r.id).limit(limit).offset(offset)
            )
        ).all()
    return RecordingPage(
        recordings=[_view(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.get("/offsite", summary="The off-site copy: recordings not yet safe (admin, auditor)")
async def offsite_report(services: ServicesDep, caller: OpsReader) -> OffsiteReport:
    return OffsiteReport(**asdict(await services.recordings.report()))


@router.get("/retention", summary="Days each hotline's recordings are kept (admin, auditor)")
async def retention(services: ServicesDep, caller: OpsReader) -> RetentionPolicies:
    return RetentionPolicies(
        default_days=services.recordings.settings.retention_days,
        hotlines=await services.recordings.policies(),
    )


@router.put("/retention/{hotline}", summary="Set a hotline's retention in days (admin)")
async def set_retention(
    services: ServicesDep, caller: AdminCaller, body: RetentionChange, hotline: HotlineNumber
) -> RetentionPolicies:
    await services.recordings.set_policy(hotline, body.days, caller.name)
    return await retention(services, caller)


@router.get("/{recording_id}", summary="One recording's metadata")
async def get_recording(
    services: ServicesDep, caller: CurrentCaller, recording_id: uuid_module.UUID
) -> RecordingView:
    return _view(await _visible(services, caller, recording_id))


@router.get(
    "/{recording_id}/audio",
    summary="The recording's audio (every request audited; Range honoured: 206)",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "the whole file"},
        206: {"content": {"audio/wav": {}}, "description": "the byte range asked for"},
        **GONE,
        416: {"description": "the range is outside the file"},
    },
)
async def get_audio(
    request: Request,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    recording_id: uuid_module.UUID,
) -> Response:
    row = await _visible(services, caller, recording_id)
    if row.deleted_at is not None:
        raise ApiError(410, "gone", f"recording {recording_id} was deleted: {row.delete_reason}")
    path = Path(row.path)
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(404, "not_found", f"the file of recording {recording_id} is missing")
    await audit.record(
        "recording.listen",
        "recording",
        str(recording_id),
        call=str(row.call_uuid),
        range=request.headers.get("range"),
    )
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=f"{recording_id}{path.suffix or '.wav'}",
        content_disposition_type="inline",
    )


@router.delete(
    "/{recording_id}",
    status_code=204,
    summary="Delete a recording and its off-site copy, with a reason (area supervisor, admin)",
    responses={**responses(403), **GONE},
)
async def delete_recording(
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    body: RecordingDelete,
    recording_id: uuid_module.UUID,
) -> Response:
    if caller.role not in (Role.ADMIN, Role.SUPERVISOR):
        raise forbidden(f"role {caller.role.value} may not delete recordings")
    row = await _visible(services, caller, recording_id)
    if row.deleted_at is not None:
        raise ApiError(410, "gone", f"recording {recording_id} was deleted already")

    async def write_audit(connection: Any, removed: RemovedRecording) -> None:
        await audit.record_on(
            connection,
            "recording.delete",
            "recording",
            str(removed.recording_id),
            call=str(removed.call_uuid),
            reason=removed.reason,
            hotline=removed.hotline,
        )

    try:
        await services.recordings.remove(recording_id, body.reason.strip(), write_audit)
    except NotFound:
        raise ApiError(410, "gone", f"recording {recording_id} was deleted already") from None
    return Response(status_code=204)
