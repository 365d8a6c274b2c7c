"""``/v1/surveys``: follow-up (回访) campaigns, their progress, coverage and results per ticket.

``POST /v1/surveys`` takes JSON (``numbers``: ``[{"number", "reference"}]``) or
a CSV body (``content-type: text/csv``; ``number,reference`` lines, the
campaign's fields as query parameters). Each number is called from the
hotline's number and played the survey of ``flow`` (an IVR flow file with a
``survey`` section); a number is tried up to ``max_attempts`` times,
``retry_seconds`` apart. Admins and supervisors (their areas' hotlines)
create campaigns; readers as ``/v1/callbacks``.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import ColumnElement, select

from telephony.api.callbacks import (
    CoverageView,
    OutboundReader,
    TaskView,
    hotline_scope,
    task_view,
)
from telephony.api.deps import AuditLog, ServicesDep, require_role
from telephony.api.errors import ERROR_RESPONSES, ApiError, forbidden, not_found, responses
from telephony.api.validation import INT64_MAX, Name
from telephony.auth import Caller, Role
from telephony.outbound.campaigns import (
    MAX_NUMBERS,
    CampaignError,
    check_targets,
    coverage,
    create_campaign,
    parse_csv,
)
from telephony.outbound.store import CAMPAIGNS, TASKS, utc
from telephony.store.models import Hotline, table_of

router = APIRouter(prefix="/v1/surveys", tags=["surveys"], responses=ERROR_RESPONSES)
_HOTLINES = table_of(Hotline)
Organizer = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR))]
MAX_PAGE = 1000
HotlineNumber = Annotated[str, Field(pattern=r"^[0-9]{3,20}$")]
FlowName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]


class SurveyTarget(BaseModel):
    number: str = Field(max_length=32)
    reference: str = Field(default="", max_length=128, description="the ticket id")


class SurveyFields(BaseModel):
    name: Name
    hotline: HotlineNumber = Field(description="called from this number (its caller ID)")
    flow: FlowName = Field(description="the IVR flow whose survey is played")
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_seconds: float = Field(default=1800.0, gt=0, le=7 * 86400)


class SurveyCreate(SurveyFields):
    numbers: list[SurveyTarget] = Field(min_length=1, max_length=MAX_NUMBERS)


class CampaignView(BaseModel):
    id: str
    name: str
    hotline: str
    flow: str
    max_attempts: int
    retry_seconds: float
    created_by: str | None
    created_at: dt.datetime
    progress: CoverageView


class CampaignDetail(CampaignView):
    results: list[TaskView]
    limit: int
    offset: int


class CampaignList(BaseModel):
    surveys: list[CampaignView]


async def _view(connection: Any, row: Any) -> CampaignView:
    progress = await coverage(connection, TASKS.c.campaign_id == row.id)
    values = dict(row._mapping)
    values["id"] = str(values["id"])
    return CampaignView(**values, progress=CoverageView.model_validate(progress.view()))


def _scoped(caller: Caller) -> list[ColumnElement[bool]]:
    scope = hotline_scope(caller, CAMPAIGNS.c.hotline)
    return [] if scope is None else [scope]


@router.get("", summary="Follow-up campaigns with their progress and coverage")
async def list_surveys(
    services: ServicesDep,
    caller: OutboundReader,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CampaignList:
    async with services.database.connect() as connection:
        rows = (
            await connection.execute(
                select(CAMPAIGNS)
                .where(*_scoped(caller))
                .order_by(CAMPAIGNS.c.created_at.desc())
                .limit(limit)
            )
        ).all()
        return CampaignList(surveys=[await _view(connection, r) for r in rows])


@router.post(
    "",
    status_code=201,
    summary="Start a campaign: JSON, or a CSV body (number,reference) with the fields as query",
    responses=responses(413, 422),
)
async def create_survey(
    request: Request,
    services: ServicesDep,
    caller: Organizer,
    audit: AuditLog,
) -> CampaignView:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        if kind == "text/csv":
            fields = SurveyFields.model_validate(dict(request.query_params))
            targets = parse_csv(raw.decode("utf-8-sig"))
        else:
            body = SurveyCreate.model_validate_json(raw)
            fields = body
            targets = check_targets((t.number, t.reference) for t in body.numbers)
    except (ValidationError, CampaignError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid", str(exc)[:2000]) from exc
    if len(targets) > MAX_NUMBERS:
        raise ApiError(422, "invalid", f"a campaign holds at most {MAX_NUMBERS} numbers")
    async with services.database.begin() as connection:
        if caller.role is Role.SUPERVISOR:
            area = await connection.scalar(
                select(_HOTLINES.c.area).where(_HOTLINES.c.number == fields.hotline)
            )
            if not caller.covers_area(area):
                raise forbidden(f"hotline {fields.hotline} is not of your areas")
        try:
            campaign_id = await create_campaign(
                connection,
                name=fields.name,
                hotline=fields.hotline,
                flow=fields.flow,
                max_attempts=fields.max_attempts,
                retry_seconds=fields.retry_seconds,
                targets=targets,
                created_by=caller.name,
                now=utc(services.clock()),
            )
        except CampaignError as exc:
            raise ApiError(422, "invalid", str(exc)) from exc
        await audit.record_on(
            connection, "survey.create", "survey", str(campaign_id), numbers=len(targets)
        )
        row = (
            await connection.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id))
        ).one()
        view = await _view(connection, row)
    if services.outbound is not None:
        services.outbound.wake()
    return view


@router.get("/{survey_id}", summary="A campaign: progress, coverage and results per ticket")
async def get_survey(
    services: ServicesDep,
    caller: OutboundReader,
    survey_id: uuid_module.UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> CampaignDetail:
    async with services.database.connect() as connection:
        row = (
            await connection.execute(
                select(CAMPAIGNS).where(CAMPAIGNS.c.id == survey_id, *_scoped(caller))
            )
        ).one_or_none()
        if row is None:
            raise not_found("survey", str(survey_id))
        view = await _view(connection, row)
        tasks = (
            await connection.execute(
                select(TASKS)
                .where(TASKS.c.campaign_id == survey_id)
                .order_by(TASKS.c.reference, TASKS.c.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return CampaignDetail(
        **view.model_dump(), results=[task_view(t) for t in tasks], limit=limit, offset=offset
    )
