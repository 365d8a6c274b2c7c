"""Skill groups (queues) in the ``skill_groups`` table; every change audited in its transaction.

Rules kept here: the ``general`` group cannot be deleted (agents with no
skills serve it); an overflow target must exist and must not lead back to
the group (no overflow cycle); a group that is another's overflow target
cannot be deleted. After each committed change, ``services.skill_groups_changed``
is called with the group's id so that the engine can reload it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.acd.queue import GENERAL
from telephony.api.deps import Auditor
from telephony.api.errors import ApiError, not_found
from telephony.api.schemas import SkillGroupCreate, SkillGroupUpdate, SkillGroupView
from telephony.services import Services
from telephony.store.models import SkillGroup, table_of

_GROUPS = table_of(SkillGroup)


def _view(row: Any) -> SkillGroupView:
    return SkillGroupView.model_validate(dict(row._mapping))


async def list_groups(services: Services) -> list[SkillGroupView]:
    """Every group, by id."""
    async with services.database.connect() as connection:
        rows = (await connection.execute(select(_GROUPS).order_by(_GROUPS.c.id))).all()
    return [_view(r) for r in rows]


async def _get(connection: AsyncConnection, group_id: str) -> SkillGroupView:
    row = (await connection.execute(select(_GROUPS).where(_GROUPS.c.id == group_id))).one_or_none()
    if row is None:
        raise not_found("skill group", group_id)
    return _view(row)


async def get_group(services: Services, group_id: str) -> SkillGroupView:
    """One group (404 if none)."""
    async with services.database.connect() as connection:
        return await _get(connection, group_id)


async def _check_overflow(connection: AsyncConnection, group_id: str, target: str | None) -> None:
    """The overflow target exists and its chain does not come back to ``group_id``."""
    seen = {group_id}
    while target is not None:
        if target in seen:
            raise ApiError(
                422, "invalid_request", f"overflow_group_id: {target!r} would make an overflow loop"
            )
        seen.add(target)
        row = (
            await connection.execute(
                select(_GROUPS.c.overflow_group_id).where(_GROUPS.c.id == target)
            )
        ).one_or_none()
        if row is None:
            raise ApiError(422, "invalid_request", f"overflow_group_id: no skill group {target!r}")
        target = row.overflow_group_id


async def create_group(
    services: Services, auditor: Auditor, body: SkillGroupCreate
) -> SkillGroupView:
    """Insert a group (409 if the id is taken)."""
    try:
        async with services.database.begin() as connection:
            if await connection.scalar(select(_GROUPS.c.id).where(_GROUPS.c.id == body.id)):
                raise ApiError(409, "conflict", f"skill group {body.id!r} already exists")
            await _check_overflow(connection, body.id, body.overflow_group_id)
            await connection.execute(insert(_GROUPS).values(**body.model_dump()))
            await auditor.record_on(
                connection, "skill_group.create", "skill_group", body.id, **body.model_dump()
            )
            view = await _get(connection, body.id)
    except IntegrityError as exc:
        raise ApiError(409, "conflict", f"skill group {body.id!r} already exists") from exc
    services.skill_groups_changed(body.id)
    return view


async def update_group(
    services: Services, auditor: Auditor, group_id: str, body: SkillGroupUpdate
) -> SkillGroupView:
    """Change the fields present in ``body``."""
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "service_level_seconds", "ring_timeout_seconds", "settings"):
        if required in changes and changes[required] is None:
            raise ApiError(422, "invalid_request", f"{required}: may not be null")
    async with services.database.begin() as connection:
        await _get(connection, group_id)
        if "overflow_group_id" in changes:
            await _check_overflow(connection, group_id, changes["overflow_group_id"])
        if changes:
            await connection.execute(
                update(_GROUPS).where(_GROUPS.c.id == group_id).values(**changes)
            )
        await auditor.record_on(
            connection, "skill_group.update", "skill_group", group_id, **changes
        )
        view = await _get(connection, group_id)
    services.skill_groups_changed(group_id)
    return view


async def delete_group(services: Services, auditor: Auditor, group_id: str) -> None:
    """Delete a group that is not ``general`` and not another group's overflow."""
    if group_id == GENERAL:
        raise ApiError(409, "conflict", "the general group always exists")
    async with services.database.begin() as connection:
        await _get(connection, group_id)
        users = (
            await connection.scalars(
                select(_GROUPS.c.id).where(_GROUPS.c.overflow_group_id == group_id)
            )
        ).all()
        if users:
            raise ApiError(
                409, "conflict", f"skill group {group_id!r} is the overflow of {', '.join(users)}"
            )
        await connection.execute(delete(_GROUPS).where(_GROUPS.c.id == group_id))
        await auditor.record_on(connection, "skill_group.delete", "skill_group", group_id)
    for agent in services.roster.agents.values():
        agent.skills.pop(group_id, None)  # agent_skills rows went with the group (cascade)
    services.skill_groups_changed(group_id)
