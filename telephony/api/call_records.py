"""``/v1/call-records``: call detail records (CDRs) with filters, and one call's timeline.

Who: admins, auditors (read-only, every record) and supervisors. A
supervisor sees a record when the dialled hotline's area (``hotlines.area``)
or the answering agent's area (``agents.area``) is one of its areas: the
hotline's area owns the citizen's call, the agent's area owns its staff's
work, and a supervisor needs both (a call of another area's hotline that
overflowed to its agents, say). Records with neither are visible to admins
and auditors only. Agents have no access: their own history is a report.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Select, false, func, or_, select

from telephony.api.deps import ReportReader, ServicesDep
from telephony.api.errors import ERROR_RESPONSES, not_found
from telephony.api.schemas import CallEventView, CallRecordDetail, CallRecordPage, CallRecordView
from telephony.api.validation import INT64_MAX, Query32, Query64, UtcDatetime
from telephony.auth import Caller, Role
from telephony.store.models import Agent, Call, CallEvent, Hotline, table_of

router = APIRouter(prefix="/v1/call-records", tags=["call records"], responses=ERROR_RESPONSES)

_CALLS = table_of(Call)
_EVENTS = table_of(CallEvent)
_HOTLINES = table_of(Hotline)
_AGENTS = table_of(Agent)
MAX_PAGE = 500


def area_scope(caller: Caller) -> ColumnElement[bool] | None:
    """The supervisor's area condition on ``calls``; None when the caller sees everything."""
    if caller.role is not Role.SUPERVISOR:
        return None
    if not caller.areas:
        return false()
    areas = sorted(caller.areas)
    return or_(
        _CALLS.c.hotline.in_(select(_HOTLINES.c.number).where(_HOTLINES.c.area.in_(areas))),
        _CALLS.c.agent_id.in_(select(_AGENTS.c.id).where(_AGENTS.c.area.in_(areas))),
    )


def _record(row: Any) -> CallRecordView:
    values = dict(row._mapping)
    values["uuid"] = str(values["uuid"])
    values["recording_id"] = str(values["recording_id"]) if values["recording_id"] else None
    return CallRecordView.model_validate(values)


def _filtered(query: Select[Any], conditions: list[ColumnElement[bool]]) -> Select[Any]:
    return query.where(*conditions) if conditions else query


@router.get("", summary="Call records, newest first, with filters and paging")
async def list_call_records(
    services: ServicesDep,
    caller: ReportReader,
    since: Annotated[
        UtcDatetime | None, Query(description="arrived at or after (ISO 8601; no offset: UTC)")
    ] = None,
    until: Annotated[
        UtcDatetime | None, Query(description="arrived before (ISO 8601; no offset: UTC)")
    ] = None,
    caller_number: Annotated[
        Query64 | None, Query(alias="caller", description="the citizen's number")
    ] = None,
    hotline: Annotated[Query32 | None, Query(description="the dialled hotline")] = None,
    agent: Annotated[Query64 | None, Query(description="the answering agent")] = None,
    outcome: Annotated[Query32 | None, Query(description="e.g. answered")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> CallRecordPage:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(_CALLS.c.arrived_at >= since)
    if until is not None:
        conditions.append(_CALLS.c.arrived_at < until)
    for column, value in (
        (_CALLS.c.caller, caller_number),
        (_CALLS.c.hotline, hotline),
        (_CALLS.c.agent_id, agent),
        (_CALLS.c.outcome, outcome),
    ):
        if value is not None:
            conditions.append(column == value)
    scope = area_scope(caller)
    if scope is not None:
        conditions.append(scope)
    rows_query = _filtered(select(_CALLS), conditions)
    rows_query = rows_query.order_by(_CALLS.c.arrived_at.desc(), _CALLS.c.uuid)
    count_query = _filtered(select(func.count()).select_from(_CALLS), conditions)
    async with services.database.connect() as connection:
        total = await connection.scalar(count_query) or 0
        rows = (await connection.execute(rows_query.limit(limit).offset(offset))).all()
    return CallRecordPage(
        records=[_record(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{record_id}", summary="One call record with its timeline")
async def get_call_record(
    services: ServicesDep, caller: ReportReader, record_id: uuid_module.UUID
) -> CallRecordDetail:
    conditions: list[ColumnElement[bool]] = [_CALLS.c.uuid == record_id]
    scope = area_scope(caller)
    if scope is not None:
        conditions.append(scope)
    async with services.database.connect() as connection:
        row = (await connection.execute(select(_CALLS).where(*conditions))).one_or_none()
        if row is None:
            raise not_found("call record", str(record_id))
        events = (
            await connection.execute(
                select(_EVENTS.c.at, _EVENTS.c.kind, _EVENTS.c.detail)
                .where(_EVENTS.c.call_uuid == record_id)
                .order_by(_EVENTS.c.at, _EVENTS.c.id)
            )
        ).all()
    timeline = [CallEventView(at=e.at, kind=e.kind, detail=e.detail) for e in events]
    return CallRecordDetail(**_record(row).model_dump(), timeline=timeline)
