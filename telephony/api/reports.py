"""``/v1/reports``: the contracts' KPIs and the statistics, from the stored rows.

Who: admins, auditors and supervisors (:data:`~telephony.api.deps.ReportReader`).
A supervisor's reports count what its areas own, as call records do
(:mod:`telephony.api.call_records`): calls of its areas' hotlines or answered
by its areas' agents (KPIs, hotlines), its areas' agents, its areas' skill
groups. 呼叫接入系统可用率 is the whole system's, the same for everyone.

Windows are local dates (``from``, ``to``, both included) in ``tz``
(default Asia/Shanghai); ``interval`` splits them (``15min``, ``hour``,
``day``, ``month``, or ``total``). The KPI definitions, with the contract
clause of each, are at ``/v1/reports/kpis/definitions``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, select

from telephony.api.call_records import area_scope as call_scope
from telephony.api.deps import ReportReader, ServicesDep
from telephony.api.errors import ERROR_RESPONSES, ApiError
from telephony.api.validation import Query32, Query64
from telephony.auth import Caller, Role
from telephony.reports import export, kpis, statistics
from telephony.reports.periods import DEFAULT_TIME_ZONE, Interval, Window
from telephony.store.models import Agent, Call, QueueEntry, SkillGroup, table_of

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)

_CALLS = table_of(Call)
_AGENTS = table_of(Agent)
_GROUPS = table_of(SkillGroup)
_QUEUE = table_of(QueueEntry)
#: The longest window one request may ask for (a year of 15-minute intervals is 35,040).
MAX_DAYS = 366

FromDate = Annotated[date, Query(alias="from", description="first local date (included)")]
ToDate = Annotated[date, Query(alias="to", description="last local date (included)")]
Zone = Annotated[str, Query(max_length=64, description="IANA time zone of the dates")]


class Fraction(BaseModel):
    """A KPI: ``numerator`` / ``denominator`` (``value`` the same as a float), or why not."""

    available: bool
    numerator: int | None = None
    denominator: int | None = None
    value: float | None = None
    reason: str | None = None


class KpiGroup(BaseModel):
    interval_start: datetime | None
    scope: str
    group: str | None
    answer_rate_30s: Fraction
    manual_connection_rate: Fraction
    call_loss_rate: Fraction
    missed_callback_rate: Fraction
    follow_up_coverage: Fraction
    keypress_satisfaction: Fraction
    system_completion_rate: Fraction
    availability: Fraction


class KpiReport(BaseModel):
    start: datetime
    end: datetime
    time_zone: str
    interval: str
    groups: list[KpiGroup]


class KpiDefinition(BaseModel):
    key: str
    name: str
    source: str
    clause: str
    meaning: str
    scopes: list[str]


class StatisticsRow(BaseModel):
    interval_start: datetime | None
    key: str
    values: dict[str, Any]


class StatisticsReport(BaseModel):
    start: datetime
    end: datetime
    time_zone: str
    interval: str
    rows: list[StatisticsRow]


def _window(first: date, last: date, zone: str) -> Window:
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, "invalid_request", f"to: at most {MAX_DAYS} days after from")
    try:
        return Window.of_dates(first, last, zone)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


def _fraction(value: kpis.KpiValue) -> Fraction:
    exact = value.fraction
    return Fraction(
        available=value.available,
        numerator=value.numerator,
        denominator=value.denominator,
        value=None if exact is None else float(exact),
        reason=value.reason,
    )


def _group(row: kpis.KpiRow) -> KpiGroup:
    values = {key: _fraction(value) for key, value in row.values.items()}
    return KpiGroup(
        interval_start=row.interval_start, scope=row.scope.value, group=row.group, **values
    )


def _statistics(
    window: Window, interval: Interval, rows: Sequence[statistics.StatRow]
) -> StatisticsReport:
    return StatisticsReport(
        start=window.start,
        end=window.end,
        time_zone=window.zone,
        interval=interval.value,
        rows=[
            StatisticsRow(interval_start=r.interval_start, key=r.key, values=r.values) for r in rows
        ],
    )


def _areas(caller: Caller) -> list[str] | None:
    """A supervisor's areas; None for a caller who sees every area."""
    return sorted(caller.areas) if caller.role is Role.SUPERVISOR else None


@router.get("/kpis/definitions", summary="Each KPI's definition and the contract clause")
async def kpi_definitions(caller: ReportReader) -> list[KpiDefinition]:
    return [
        KpiDefinition(
            key=d.key,
            name=d.name,
            source=d.source,
            clause=d.clause,
            meaning=d.meaning,
            scopes=sorted(s.value for s in d.scopes),
        )
        for d in kpis.DEFINITIONS
    ]


@router.get(
    "/kpis",
    summary="The contracts' KPIs, per group and interval, as fractions (JSON, CSV or XLSX)",
    response_model=KpiReport,
)
async def kpi_report(
    services: ServicesDep,
    caller: ReportReader,
    first: FromDate,
    last: ToDate,
    hotline: Annotated[Query32 | None, Query(description="only this hotline's calls")] = None,
    skill_group: Annotated[Query64 | None, Query(description="only this group's calls")] = None,
    agent: Annotated[Query64 | None, Query(description="only this agent's calls")] = None,
    group_by: Annotated[kpis.Scope, Query(description="one group per ...")] = kpis.Scope.ALL,
    interval: Annotated[Literal["day", "month", "total"], Query()] = "total",
    tz: Zone = DEFAULT_TIME_ZONE,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
) -> Any:
    window = _window(first, last, tz)
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (_CALLS.c.hotline, hotline),
        (_CALLS.c.skill_group_id, skill_group),
        (_CALLS.c.agent_id, agent),
    ):
        if value is not None:
            conditions.append(column == value)
    scope = call_scope(caller)
    if scope is not None:
        conditions.append(scope)
    async with services.database.connect() as connection:
        rows = await kpis.compute(
            connection,
            window,
            scope=group_by,
            interval=Interval(interval),
            conditions=conditions,
            now=datetime.fromtimestamp(services.clock(), UTC),
        )
    if format != "json":
        kind = export.Format(format)
        body = await asyncio.to_thread(export.render, rows, window.zone, kind)
        name = f"kpis-{first.isoformat()}-{last.isoformat()}.{kind.value}"
        return Response(
            body,
            media_type=export.MEDIA_TYPES[kind],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return KpiReport(
        start=window.start,
        end=window.end,
        time_zone=window.zone,
        interval=interval,
        groups=[_group(r) for r in rows],
    )


StatInterval = Annotated[Interval, Query(description="15min, hour, day, month or total")]


@router.get("/agents", summary="Statistics per agent and interval")
async def agent_report(
    services: ServicesDep,
    caller: ReportReader,
    first: FromDate,
    last: ToDate,
    agent: Annotated[Query64 | None, Query(description="only this agent")] = None,
    interval: StatInterval = Interval.DAY,
    tz: Zone = DEFAULT_TIME_ZONE,
) -> StatisticsReport:
    window = _window(first, last, tz)
    areas = _areas(caller)
    async with services.database.connect() as connection:
        agents: list[str] | None = None
        if areas is not None or agent is not None:
            query = select(_AGENTS.c.id)
            if areas is not None:
                query = query.where(_AGENTS.c.area.in_(areas))
            if agent is not None:
                query = query.where(_AGENTS.c.id == agent)
            agents = list((await connection.scalars(query)).all())
            if agent is not None and areas is None and not agents:
                agents = [agent]  # a deleted agent's history stays
        rows = await statistics.agent_statistics(
            connection,
            window,
            interval,
            now=datetime.fromtimestamp(services.clock(), UTC),
            agents=agents,
        )
    return _statistics(window, interval, rows)


@router.get("/skill-groups", summary="Statistics per skill group and interval")
async def skill_group_report(
    services: ServicesDep,
    caller: ReportReader,
    first: FromDate,
    last: ToDate,
    skill_group: Annotated[Query64 | None, Query(description="only this group")] = None,
    interval: StatInterval = Interval.DAY,
    tz: Zone = DEFAULT_TIME_ZONE,
) -> StatisticsReport:
    window = _window(first, last, tz)
    conditions: list[ColumnElement[bool]] = []
    areas = _areas(caller)
    if areas is not None:
        conditions.append(_GROUPS.c.area.in_(areas) if areas else false())
    if skill_group is not None:
        conditions.append(_QUEUE.c.skill_group_id == skill_group)
    async with services.database.connect() as connection:
        rows = await statistics.skill_group_statistics(
            connection,
            window,
            interval,
            now=datetime.fromtimestamp(services.clock(), UTC),
            conditions=conditions,
        )
    return _statistics(window, interval, rows)


@router.get("/hotlines", summary="Statistics per hotline and interval")
async def hotline_report(
    services: ServicesDep,
    caller: ReportReader,
    first: FromDate,
    last: ToDate,
    hotline: Annotated[Query32 | None, Query(description="only this hotline")] = None,
    interval: StatInterval = Interval.DAY,
    tz: Zone = DEFAULT_TIME_ZONE,
) -> StatisticsReport:
    window = _window(first, last, tz)
    conditions: list[ColumnElement[bool]] = []
    scope = call_scope(caller)
    if scope is not None:
        conditions.append(scope)
    if hotline is not None:
        conditions.append(_CALLS.c.hotline == hotline)
    async with services.database.connect() as connection:
        rows = await statistics.hotline_statistics(
            connection, window, interval, conditions=conditions
        )
    return _statistics(window, interval, rows)
