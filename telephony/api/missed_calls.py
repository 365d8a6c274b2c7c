"""``/v1/missed-calls``: inbound calls that reached no agent (漏接), with their callback state.

Each row is one CDR the hotline's rules count as missed; a citizen's repeats
within the merge window share one callback task, whose state and attempts
the row shows. ``POST /v1/missed-calls/{id}/callback``: an agent takes that
callback now (the dialer rings the agent, then calls the citizen from the
hotline's number). Scope as ``/v1/callbacks``.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select

from telephony.api.callbacks import OutboundReader, hotline_scope
from telephony.api.deps import AuditLog, ServicesDep, StaffCaller
from telephony.api.errors import ERROR_RESPONSES, ApiError, not_found
from telephony.api.validation import INT64_MAX, Identifier, Query32, UtcDatetime
from telephony.auth import Role
from telephony.outbound.dialer import Busy
from telephony.outbound.store import MISSED, TASKS

router = APIRouter(prefix="/v1/missed-calls", tags=["missed calls"], responses=ERROR_RESPONSES)
MAX_PAGE = 500


class MissedCallView(BaseModel):
    """A missed call and its callback."""

    id: str = Field(description="the call's uuid (its CDR)")
    caller: str
    hotline: str
    arrived_at: dt.datetime
    outcome: str
    callback_state: str = Field(description="pending, dialing, reached, failed, not_required")
    attempts: int
    callback_id: str
    merged_calls: int = Field(description="missed calls of this citizen in the same callback")


class MissedCallPage(BaseModel):
    missed_calls: list[MissedCallView]
    total: int
    limit: int
    offset: int


class TakeCallback(BaseModel):
    agent: Identifier | None = Field(
        default=None, description="the agent who calls back (an agent token: itself)"
    )


class CallbackStarted(BaseModel):
    callback_id: str
    attempt_id: str
    call_uuid: str
    agent: str
    state: str = "dialing"


@router.get("", summary="Missed calls, newest first, with their callback state")
async def list_missed_calls(
    services: ServicesDep,
    caller: OutboundReader,
    since: Annotated[UtcDatetime | None, Query(description="arrived at or after")] = None,
    until: Annotated[UtcDatetime | None, Query(description="arrived before")] = None,
    hotline: Annotated[Query32 | None, Query()] = None,
    outcome: Annotated[Query32 | None, Query(description="e.g. abandoned_in_queue")] = None,
    callback_state: Annotated[Query32 | None, Query(description="pending, reached, ...")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> MissedCallPage:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(MISSED.c.arrived_at >= since)
    if until is not None:
        conditions.append(MISSED.c.arrived_at < until)
    for column, value in (
        (MISSED.c.hotline, hotline),
        (MISSED.c.outcome, outcome),
        (TASKS.c.state, callback_state),
    ):
        if value is not None:
            conditions.append(column == value)
    scope = hotline_scope(caller, MISSED.c.hotline)
    if scope is not None:
        conditions.append(scope)
    joined = MISSED.join(TASKS, TASKS.c.id == MISSED.c.task_id)
    query = (
        select(
            MISSED,
            TASKS.c.state.label("callback_state"),
            TASKS.c.attempts,
            TASKS.c.missed_count,
        )
        .select_from(joined)
        .where(*conditions)
    )
    async with services.database.connect() as connection:
        total = await connection.scalar(select(func.count()).select_from(joined).where(*conditions))
        rows = (
            await connection.execute(
                query.order_by(MISSED.c.arrived_at.desc(), MISSED.c.call_uuid)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return MissedCallPage(
        missed_calls=[
            MissedCallView(
                id=str(r.call_uuid),
                caller=r.caller,
                hotline=r.hotline,
                arrived_at=r.arrived_at,
                outcome=r.outcome,
                callback_state=r.callback_state,
                attempts=r.attempts,
                callback_id=str(r.task_id),
                merged_calls=r.missed_count,
            )
            for r in rows
        ],
        total=total or 0,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{missed_id}/callback",
    status_code=202,
    summary="An agent takes this callback now (agent, supervisor, admin)",
    responses={409: {"description": "not possible now (the reason says why)"}},
)
async def take_callback(
    services: ServicesDep,
    caller: StaffCaller,
    audit: AuditLog,
    missed_id: uuid_module.UUID,
    body: TakeCallback | None = None,
) -> CallbackStarted:
    agent = caller.agent_id if caller.role is Role.AGENT else (body.agent if body else None)
    if caller.role is Role.AGENT and body is not None and body.agent not in (None, agent):
        raise ApiError(403, "forbidden", "an agent takes callbacks for itself only")
    if not agent:
        raise ApiError(422, "invalid", 'name the agent who calls back: {"agent": ID}')
    conditions: list[ColumnElement[bool]] = [MISSED.c.call_uuid == missed_id]
    scope = hotline_scope(caller, MISSED.c.hotline)
    if scope is not None:
        conditions.append(scope)
    async with services.database.connect() as connection:
        task_id = await connection.scalar(select(MISSED.c.task_id).where(*conditions))
    if task_id is None:
        raise not_found("missed call", str(missed_id))
    dialer = services.outbound
    if dialer is None:
        raise ApiError(409, "conflict", "the outbound dialer is not running")
    try:
        claimed = await dialer.take(task_id, agent)
    except Busy as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    await audit.record(
        "callback.take", "callback", claimed.task_id, agent=agent, attempt=claimed.attempt_id
    )
    return CallbackStarted(
        callback_id=claimed.task_id,
        attempt_id=claimed.attempt_id,
        call_uuid=claimed.call_uuid,
        agent=agent,
    )
