"""``/v1/skill-groups``: queues, their service-level threshold, ring timeout and overflow.

Admins create, change and delete (audited). Admins, auditors and
supervisors read; a supervisor sees the groups of its areas and the groups
with no area (``general``, shared ones).
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from telephony.api import skill_group_records as records
from telephony.api.deps import AdminCaller, AuditLog, ReportReader, ServicesDep
from telephony.api.errors import ERROR_RESPONSES, not_found, responses
from telephony.api.schemas import (
    SkillGroupCreate,
    SkillGroupList,
    SkillGroupUpdate,
    SkillGroupView,
)
from telephony.auth import Caller, Role

router = APIRouter(prefix="/v1/skill-groups", tags=["skill groups"], responses=ERROR_RESPONSES)

GroupPath = Path(
    description="the skill group's id (letters, digits, _ . -)",
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_.\-]+$",
)
CONFLICT = responses(409)


def _visible(caller: Caller, group: SkillGroupView) -> bool:
    return caller.role is not Role.SUPERVISOR or group.area is None or group.area in caller.areas


@router.get("", summary="List skill groups")
async def list_groups(services: ServicesDep, caller: ReportReader) -> SkillGroupList:
    groups = [g for g in await records.list_groups(services) if _visible(caller, g)]
    return SkillGroupList(groups=groups)


@router.post("", status_code=201, summary="Create a skill group (admin)", responses=CONFLICT)
async def create_group(
    body: SkillGroupCreate, services: ServicesDep, caller: AdminCaller, audit: AuditLog
) -> SkillGroupView:
    return await records.create_group(services, audit, body)


@router.get("/{group_id}", summary="One skill group")
async def get_group(
    services: ServicesDep, caller: ReportReader, group_id: str = GroupPath
) -> SkillGroupView:
    group = await records.get_group(services, group_id)
    if not _visible(caller, group):
        raise not_found("skill group", group_id)
    return group


@router.patch("/{group_id}", summary="Change a skill group (admin)", responses=CONFLICT)
async def update_group(
    body: SkillGroupUpdate,
    services: ServicesDep,
    caller: AdminCaller,
    audit: AuditLog,
    group_id: str = GroupPath,
) -> SkillGroupView:
    return await records.update_group(services, audit, group_id, body)


@router.delete(
    "/{group_id}", status_code=204, summary="Delete a skill group (admin)", responses=CONFLICT
)
async def delete_group(
    services: ServicesDep, caller: AdminCaller, audit: AuditLog, group_id: str = GroupPath
) -> Response:
    await records.delete_group(services, audit, group_id)
    return Response(status_code=204)
