"""Agent administration: the ``agents`` and ``agent_skills`` rows, kept in step with the roster.

Each change is one database transaction (with its audit row) and then the
same change on the roster. API handlers run on the engine's loop, so the
roster update is applied between two engine steps, never concurrently.
State-changing events (sign in, busy, ...) do not come here: they go through
:meth:`telephony.acd.roster.Roster.apply`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.acd.agent_state import Agent, AgentState
from telephony.api.deps import Auditor
from telephony.api.errors import ApiError
from telephony.api.schemas import AgentCreate, AgentUpdate
from telephony.services import Services
from telephony.store.models import Agent as AgentRow
from telephony.store.models import AgentSkill, SkillGroup, table_of

_AGENTS = table_of(AgentRow)
_SKILLS = table_of(AgentSkill)
_GROUPS = table_of(SkillGroup)


def _conflict(detail: str) -> ApiError:
    return ApiError(409, "conflict", detail)


async def _check_groups(connection: AsyncConnection, skills: Mapping[str, int]) -> None:
    if not skills:
        return
    known = set(
        (await connection.scalars(select(_GROUPS.c.id).where(_GROUPS.c.id.in_(skills)))).all()
    )
    missing = sorted(set(skills) - known)
    if missing:
        raise ApiError(422, "invalid_request", f"skills: no skill group {', '.join(missing)}")


async def _check_extension_free(connection: AsyncConnection, extension: str, agent_id: str) -> None:
    owner = await connection.scalar(
        select(_AGENTS.c.id).where(_AGENTS.c.extension == extension, _AGENTS.c.id != agent_id)
    )
    if owner is not None:
        raise _conflict(f"extension {extension} belongs to agent {owner!r}")


async def _write_skills(
    connection: AsyncConnection, agent_id: str, skills: Mapping[str, int]
) -> None:
    await connection.execute(delete(_SKILLS).where(_SKILLS.c.agent_id == agent_id))
    if skills:
        await connection.execute(
            insert(_SKILLS),
            [{"agent_id": agent_id, "group_id": g, "level": lvl} for g, lvl in skills.items()],
        )


async def create_agent(services: Services, auditor: Auditor, body: AgentCreate) -> Agent:
    """Insert the agent (signed out) and its skills, audit it, and add it to the roster."""
    if body.id in services.roster.agents:
        raise _conflict(f"agent {body.id!r} already exists")
    try:
        async with services.database.begin() as connection:
            if await connection.scalar(select(_AGENTS.c.id).where(_AGENTS.c.id == body.id)):
                raise _conflict(f"agent {body.id!r} already exists")
            await _check_extension_free(connection, body.extension, body.id)
            await _check_groups(connection, body.skills)
            await connection.execute(
                insert(_AGENTS).values(
                    id=body.id,
                    name=body.name,
                    extension=body.extension,
                    area=body.area,
                    state=AgentState.LOGGED_OUT.value,
                )
            )
            await _write_skills(connection, body.id, body.skills)
            await auditor.record_on(
                connection, "agent.create", "agent", body.id, **body.model_dump(exclude={"id"})
            )
    except IntegrityError as exc:  # a concurrent create took the id or extension
        raise _conflict("agent id or extension already taken") from exc
    agent = Agent(
        body.id,
        body.extension,
        name=body.name,
        area=body.area,
        skills=dict(body.skills),
        since=services.clock(),
    )
    services.roster.load([agent])
    return agent


async def update_agent(
    services: Services, auditor: Auditor, agent: Agent, body: AgentUpdate
) -> Agent:
    """Change the fields present in ``body`` (an extension only while signed out)."""
    changes = body.model_dump(exclude_unset=True)
    new_extension = changes.get("extension")
    if new_extension not in (None, agent.extension) and agent.state is not AgentState.LOGGED_OUT:
        raise _conflict("sign the agent out before changing its extension")
    for required in ("name", "extension"):
        if required in changes and changes[required] is None:
            raise ApiError(422, "invalid_request", f"{required}: may not be null")
    columns = {k: v for k, v in changes.items() if k in ("name", "extension", "area")}
    try:
        async with services.database.begin() as connection:
            if "extension" in columns:
                await _check_extension_free(connection, columns["extension"], agent.id)
            if columns:
                await connection.execute(
                    update(_AGENTS).where(_AGENTS.c.id == agent.id).values(**columns)
                )
            if body.skills is not None:
                await _check_groups(connection, body.skills)
                await _write_skills(connection, agent.id, body.skills)
            await auditor.record_on(connection, "agent.update", "agent", agent.id, **changes)
    except IntegrityError as exc:
        raise _conflict("extension already taken") from exc
    _apply_fields(agent, columns, body.skills)
    return agent


def _apply_fields(
    agent: Agent, columns: Mapping[str, str | None], skills: dict[str, int] | None
) -> None:
    if "name" in columns and columns["name"] is not None:
        agent.name = columns["name"]
    if "extension" in columns and columns["extension"] is not None:
        agent.extension = columns["extension"]
    if "area" in columns:
        agent.area = columns["area"]
    if skills is not None:
        agent.skills = dict(skills)


async def delete_agent(services: Services, auditor: Auditor, agent: Agent) -> None:
    """Remove a signed-out agent (its skills go with it; its history stays).

    The roster's buffered writes for the agent are flushed first, and the agent
    leaves the roster before its row is deleted, so that no late state write
    re-creates the row.
    """
    _require_signed_out(agent)
    await services.buffer.flushed()
    _require_signed_out(agent)  # it may have signed in while we waited
    roster = services.roster
    roster.agents.pop(agent.id, None)
    try:
        async with services.database.begin() as connection:
            await connection.execute(delete(_AGENTS).where(_AGENTS.c.id == agent.id))
            await auditor.record_on(connection, "agent.delete", "agent", agent.id)
    except BaseException:
        roster.load([agent])
        raise


def _require_signed_out(agent: Agent) -> None:
    if agent.state is not AgentState.LOGGED_OUT:
        raise _conflict(f"agent {agent.id!r} is {agent.state.value}; sign it out first")
