"""``/v1/agents``: agent seats (admin) and their sign-in / sign-out / busy / idle.

Scope: an agent token sees and acts on its own agent only; a supervisor on
the agents of its areas; an admin on all; auditors have no access here.
State changes go through the roster (the single writer of agent state) and
are stored in ``agent_state_changes`` by it. A supervisor's or admin's
action on an agent is audited before it is applied (an agent's action on
itself is not privileged and is recorded by its state change alone).
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from telephony.acd.agent_state import AGENT_MACHINE, Agent, AgentEvent
from telephony.api import agent_records
from telephony.api.deps import AdminCaller, AuditLog, ServicesDep, StaffCaller
from telephony.api.errors import ERROR_RESPONSES, forbidden, responses
from telephony.api.schemas import (
    AgentCreate,
    AgentList,
    AgentUpdate,
    AgentView,
    BusyRequest,
    StateChangeReply,
)
from telephony.auth import Caller, Role
from telephony.fsm import IllegalTransition
from telephony.services import Services

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=ERROR_RESPONSES)

AgentPath = Path(
    description="the agent's id (letters, digits, _ . -)",
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_.\-]+$",
)
CONFLICT = responses(409)


def _visible_agent(services: Services, caller: Caller, agent_id: str) -> Agent:
    """The agent, if the caller may see it: 403 if not theirs, 404 if there is none."""
    if caller.role is Role.AGENT and caller.agent_id != agent_id:
        raise forbidden("an agent token acts on its own agent only")
    agent = services.roster.get(agent_id)  # UnknownAgent -> 404
    if not caller.may_act_on_agent(agent.id, agent.area):
        raise forbidden(f"agent {agent_id!r} is not in your areas")
    return agent


@router.get("", summary="List the agents visible to the caller")
async def list_agents(services: ServicesDep, caller: StaffCaller) -> AgentList:
    agents = [
        AgentView.of(a)
        for a in sorted(services.roster.agents.values(), key=lambda a: a.id)
        if caller.may_act_on_agent(a.id, a.area)
    ]
    return AgentList(agents=agents)


@router.post("", status_code=201, summary="Create an agent (admin)", responses=CONFLICT)
async def create_agent(
    body: AgentCreate, services: ServicesDep, caller: AdminCaller, audit: AuditLog
) -> AgentView:
    return AgentView.of(await agent_records.create_agent(services, audit, body))


@router.get("/{agent_id}", summary="One agent and its live state")
async def get_agent(
    services: ServicesDep, caller: StaffCaller, agent_id: str = AgentPath
) -> AgentView:
    return AgentView.of(_visible_agent(services, caller, agent_id))


@router.patch(
    "/{agent_id}",
    summary="Change an agent's name, extension, area or skills (admin)",
    responses=CONFLICT,
)
async def update_agent(
    body: AgentUpdate,
    services: ServicesDep,
    caller: AdminCaller,
    audit: AuditLog,
    agent_id: str = AgentPath,
) -> AgentView:
    agent = services.roster.get(agent_id)
    return AgentView.of(await agent_records.update_agent(services, audit, agent, body))


@router.delete(
    "/{agent_id}", status_code=204, summary="Delete a signed-out agent (admin)", responses=CONFLICT
)
async def delete_agent(
    services: ServicesDep, caller: AdminCaller, audit: AuditLog, agent_id: str = AgentPath
) -> Response:
    await agent_records.delete_agent(services, audit, services.roster.get(agent_id))
    return Response(status_code=204)


async def _change(
    services: Services,
    caller: Caller,
    audit: AuditLog,
    agent_id: str,
    event: AgentEvent,
    reason: str | None = None,
) -> StateChangeReply:
    agent = _visible_agent(services, caller, agent_id)
    if not AGENT_MACHINE.allows(agent.state, event):
        raise IllegalTransition(AGENT_MACHINE.name, agent.id, agent.state, event)  # -> 409
    if caller.agent_id != agent.id:
        await audit.record(f"agent.{event.value}", "agent", agent.id, reason=reason)
    changes = services.roster.apply(agent.id, event, reason)  # IllegalTransition -> 409
    deferred = changes[0].deferred
    detail = (
        f"{event.value} deferred until the current call and wrap-up end"
        if deferred
        else f"agent is {agent.state.value}"
    )
    return StateChangeReply(agent=AgentView.of(agent), deferred=deferred, detail=detail)


@router.post("/{agent_id}/sign-in", summary="签入: start taking calls", responses=CONFLICT)
async def sign_in(
    services: ServicesDep, caller: StaffCaller, audit: AuditLog, agent_id: str = AgentPath
) -> StateChangeReply:
    return await _change(services, caller, audit, agent_id, AgentEvent.SIGN_IN)


@router.post(
    "/{agent_id}/sign-out",
    summary="签出: stop taking calls (deferred until the current call and wrap-up end)",
    responses=CONFLICT,
)
async def sign_out(
    services: ServicesDep, caller: StaffCaller, audit: AuditLog, agent_id: str = AgentPath
) -> StateChangeReply:
    return await _change(services, caller, audit, agent_id, AgentEvent.SIGN_OUT)


@router.post(
    "/{agent_id}/busy",
    summary="置忙 with a reason (deferred until the current call and wrap-up end)",
    responses=CONFLICT,
)
async def set_busy(
    body: BusyRequest,
    services: ServicesDep,
    caller: StaffCaller,
    audit: AuditLog,
    agent_id: str = AgentPath,
) -> StateChangeReply:
    return await _change(services, caller, audit, agent_id, AgentEvent.SET_BUSY, body.reason)


@router.post(
    "/{agent_id}/idle",
    summary="置闲: available for calls (cancels a deferred busy)",
    responses=CONFLICT,
)
async def set_idle(
    services: ServicesDep, caller: StaffCaller, audit: AuditLog, agent_id: str = AgentPath
) -> StateChangeReply:
    return await _change(services, caller, audit, agent_id, AgentEvent.SET_IDLE)
