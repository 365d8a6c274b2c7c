"""``/v1/callbacks``: callback tasks (回拨) with their attempts, dispositions and coverage.

Who: admins and auditors see every task; supervisors those of their areas'
hotlines (``hotlines.area``); agents those of their own area, or all when
they have none (they take callbacks from the list). The list carries the
coverage of the tasks it selects, counted from the rows (漏接回拨率).
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, select

from telephony.api.deps import ServicesDep, require_role
from telephony.api.errors import ERROR_RESPONSES, not_found
from telephony.api.validation import INT64_MAX, Query32, Query64, UtcDatetime
from telephony.auth import Caller, Role
from telephony.outbound.campaigns import coverage
from telephony.outbound.store import ATTEMPTS, TASKS
from telephony.store.models import Hotline, table_of

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"], responses=ERROR_RESPONSES)

_HOTLINES = table_of(Hotline)
MAX_PAGE = 500
#: Who may read callbacks, missed calls and campaigns (agents too: they take callbacks).
OutboundReader = Annotated[
    Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR, Role.AUDITOR, Role.AGENT))
]


def hotline_scope(caller: Caller, column: Any) -> ColumnElement[bool] | None:
    """The condition on a hotline column for what ``caller`` may see (None: everything)."""
    if caller.role in (Role.ADMIN, Role.AUDITOR):
        return None
    if not caller.areas:
        return None if caller.role is Role.AGENT else false()
    areas = sorted(caller.areas)
    condition: ColumnElement[bool] = column.in_(
        select(_HOTLINES.c.number).where(_HOTLINES.c.area.in_(areas))
    )
    return condition


class AttemptView(BaseModel):
    """One call made for a task."""

    id: str
    number: str
    caller_id: str
    state: str
    call_uuid: str
    agent_id: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    disposition: str | None
    hangup_cause: str | None
    talk_seconds: float | None
    recording_id: str | None
    score: int | None


class TaskView(BaseModel):
    """A callback (or follow-up) task as it stands."""

    id: str
    kind: str
    hotline: str
    number: str
    state: str
    skill_group: str | None
    campaign_id: str | None
    reference: str | None
    attempts: int
    max_attempts: int
    next_at: dt.datetime
    missed_count: int
    first_missed_at: dt.datetime | None
    last_missed_at: dt.datetime | None
    disposition: str | None
    score: int | None
    reached_at: dt.datetime | None
    created_at: dt.datetime


class TaskDetail(TaskView):
    attempt_list: list[AttemptView]


class CoverageView(BaseModel):
    """Counts and rates of the selected tasks, from the rows."""

    total: int
    pending: int
    dialing: int
    reached: int
    failed: int
    not_required: int
    attempted: int
    attempts: int
    scored: int
    attempted_rate: float | None
    coverage: float | None
    reached_rate: float | None


class TaskPage(BaseModel):
    callbacks: list[TaskView]
    total: int
    limit: int
    offset: int
    summary: CoverageView


def _text(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid_module.UUID) else v) for k, v in values.items()}


def task_view(row: Any) -> TaskView:
    return TaskView.model_validate(_text(dict(row._mapping)))


def attempt_view(row: Any) -> AttemptView:
    return AttemptView.model_validate(_text(dict(row._mapping)))


@router.get("", summary="Callback tasks with filters, newest first, and their coverage")
async def list_callbacks(
    services: ServicesDep,
    caller: OutboundReader,
    since: Annotated[UtcDatetime | None, Query(description="created at or after")] = None,
    until: Annotated[UtcDatetime | None, Query(description="created before")] = None,
    hotline: Annotated[Query32 | None, Query()] = None,
    state: Annotated[Query32 | None, Query(description="pending, dialing, reached, ...")] = None,
    number: Annotated[Query64 | None, Query(description="the citizen's number")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> TaskPage:
    conditions: list[ColumnElement[bool]] = [TASKS.c.kind == "callback"]
    if since is not None:
        conditions.append(TASKS.c.created_at >= since)
    if until is not None:
        conditions.append(TASKS.c.created_at < until)
    for column, value in (
        (TASKS.c.hotline, hotline),
        (TASKS.c.state, state),
        (TASKS.c.number, number),
    ):
        if value is not None:
            conditions.append(column == value)
    scope = hotline_scope(caller, TASKS.c.hotline)
    if scope is not None:
        conditions.append(scope)
    async with services.database.connect() as connection:
        summary = await coverage(connection, *conditions)
        rows = (
            await connection.execute(
                select(TASKS)
                .where(*conditions)
                .order_by(TASKS.c.created_at.desc(), TASKS.c.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return TaskPage(
        callbacks=[task_view(r) for r in rows],
        total=summary.total,
        limit=limit,
        offset=offset,
        summary=CoverageView.model_validate(summary.view()),
    )


async def task_detail(
    services: Any, caller: Caller, task_id: uuid_module.UUID, kind: str
) -> TaskDetail:
    """One task with every attempt, oldest first (404 outside the caller's scope)."""
    conditions: list[ColumnElement[bool]] = [TASKS.c.id == task_id, TASKS.c.kind == kind]
    scope = hotline_scope(caller, TASKS.c.hotline)
    if scope is not None:
        conditions.append(scope)
    async with services.database.connect() as connection:
        row = (await connection.execute(select(TASKS).where(*conditions))).one_or_none()
        if row is None:
            raise not_found(kind, str(task_id))
        attempts = (
            await connection.execute(
                select(ATTEMPTS)
                .where(ATTEMPTS.c.task_id == task_id)
                .order_by(ATTEMPTS.c.started_at)
            )
        ).all()
    return TaskDetail(
        **task_view(row).model_dump(), attempt_list=[attempt_view(a) for a in attempts]
    )


@router.get("/{task_id}", summary="One callback task with its attempts")
async def get_callback(
    services: ServicesDep, caller: OutboundReader, task_id: uuid_module.UUID
) -> TaskDetail:
    return await task_detail(services, caller, task_id, "callback")
