"""Call control: ``/v1/calls/{uuid}/hold|retrieve|hangup|transfer|three-way|monitor`` and
``/v1/agents/{id}/dial|ready|wrap-up``.

Each request is one command to the engine of the call's node (the single
writer of call state, :mod:`telephony.calls.control`); the engine refuses
what the call's state does not allow before anything reaches the switch.

Who may act: an agent on the calls it is on (and on itself, for dial and
ready); a supervisor on the calls of its areas (the hotline's area, or the
area of the agent on the call), and monitors them; an admin on every call;
auditors on none. Every action on someone else's call (or agent) is audited
before it is carried out.

Refusals: an unknown call or agent 404, a call in the wrong state or a
transfer to an agent who cannot take it 409, a number that is not a number 422.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, Protocol, runtime_checkable

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from telephony.acd.agent_state import Agent
from telephony.api.deps import AuditLog, CurrentCaller, ServicesDep
from telephony.api.errors import ERROR_RESPONSES, ApiError, forbidden, not_found, responses
from telephony.api.ports import LiveCall
from telephony.api.schemas import AgentId, GroupId
from telephony.api.validation import Extension
from telephony.auth import Caller, Role
from telephony.calls import control_model as cm
from telephony.services import Services
from telephony.store.models import SkillGroup, table_of

_GROUPS = table_of(SkillGroup)

router = APIRouter(prefix="/v1/calls", tags=["call control"], responses=ERROR_RESPONSES)
agents_router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=ERROR_RESPONSES)

CallPath = Path(description="the caller leg's uuid", max_length=64)
AgentPath = Path(
    description="the agent's id", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$"
)
REFUSALS = responses(404, 409, 422)

#: An outside number: digits, an optional leading +.
Number = Annotated[str, Field(pattern=r"^\+?[0-9]{2,32}$", description="digits, optional +")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    """Exactly one of ``agent``, ``skill_group``, ``number``."""

    agent: AgentId | None = None
    skill_group: GroupId | None = None
    number: Number | None = None

    @model_validator(mode="after")
    def _one(self) -> Target:
        given = [k for k in ("agent", "skill_group", "number") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of agent, skill_group, number")
        return self

    def party(self) -> cm.Party:
        if self.agent is not None:
            return cm.Party("agent", self.agent)
        if self.skill_group is not None:
            return cm.Party("skill_group", self.skill_group)
        assert self.number is not None
        return cm.Party("number", self.number)


class Empty(_Strict):
    """No fields."""


class TransferRequest(_Strict):
    to: Target
    mode: Literal["blind", "attended"] = "blind"


class ThreeWayRequest(_Strict):
    to: Target


class MonitorRequest(_Strict):
    mode: Literal["listen", "whisper", "barge"] = "listen"
    extension: Extension | None = Field(
        default=None, description="the supervisor's phone (default: its own agent's extension)"
    )


class MonitorChange(_Strict):
    mode: Literal["listen", "whisper", "barge"]


class DialRequest(_Strict):
    number: Number


class WrapUpRequest(_Strict):
    extend_seconds: float = Field(gt=0, le=3600, description="restart wrap-up for this long")


class ControlReply(BaseModel):
    """The command was accepted: where the call (or agent) stands now."""

    uuid: str
    state: str
    detail: str


@runtime_checkable
class CallCommands(Protocol):
    async def command(self, command: cm.Command) -> cm.Done: ...


_STATUS = {
    "unknown_call": (404, "not_found"),
    "wrong_state": (409, "conflict"),
    "unavailable": (409, "conflict"),
    "invalid": (422, "invalid"),
    "no_engine": (503, "unavailable"),
}


async def _run(services: Services, command: cm.Command) -> ControlReply:
    engines = services.calls
    if not isinstance(engines, CallCommands):
        raise ApiError(503, "unavailable", "no call engine is running")
    try:
        done = await engines.command(command)
    except cm.Refused as refused:
        status, code = _STATUS[refused.kind]
        raise ApiError(status, code, refused.detail) from None
    return ControlReply(uuid=done.subject, state=done.state, detail=done.detail)


def _call_for(services: Services, caller: Caller, uuid: str, *, monitor: bool = False) -> LiveCall:
    """The live call, if the caller may act on it: 404 if there is none, 403 if not theirs."""
    call = services.calls.live_call(uuid)
    if caller.role is Role.AUDITOR:
        raise forbidden("auditors read; they do not act on calls")
    if monitor and caller.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise forbidden("only supervisors and admins monitor calls")
    if call is None:
        raise not_found("live call", uuid)
    if caller.role is Role.AGENT:
        if call.agent_id is None or call.agent_id != caller.agent_id:
            raise forbidden("an agent acts on its own calls only")
        return call
    if caller.covers_area(call.area):
        return call
    agent = services.roster.agents.get(call.agent_id) if call.agent_id else None
    if agent is not None and caller.covers_area(agent.area):
        return call
    raise forbidden(f"call {uuid} is not in your areas")


async def _audit(
    audit: AuditLog, caller: Caller, call: LiveCall, action: str, **detail: str
) -> None:
    if caller.agent_id is None or caller.agent_id != call.agent_id:
        await audit.record(f"call.{action}", "call", call.uuid, agent=call.agent_id or "", **detail)


async def _check_target(services: Services, target: Target) -> None:
    if target.agent is not None and target.agent not in services.roster.agents:
        raise not_found("agent", target.agent)
    if target.skill_group is not None:
        async with services.database.connect() as connection:
            found = await connection.scalar(
                select(_GROUPS.c.id).where(_GROUPS.c.id == target.skill_group)
            )
        if found is None:
            raise not_found("skill group", target.skill_group)


def _plain_command(
    path: str, action: str, summary: str, command: Callable[[str], cm.Command]
) -> None:
    """A ``POST /v1/calls/{uuid}/<path>`` taking ``{}``: one command on the caller's call."""

    async def endpoint(
        services: ServicesDep,
        caller: CurrentCaller,
        audit: AuditLog,
        body: Empty | None = None,
        uuid: str = CallPath,
    ) -> ControlReply:
        call = _call_for(services, caller, uuid)
        await _audit(audit, caller, call, action)
        return await _run(services, command(uuid))

    endpoint.__name__ = action
    router.post(path, summary=summary, responses=REFUSALS, name=action)(endpoint)


_plain_command("/{uuid}/hold", "hold", "保持: the citizen hears music on hold", cm.Hold)
_plain_command("/{uuid}/retrieve", "retrieve", "拾回: back from hold", cm.Retrieve)
_plain_command(
    "/{uuid}/hangup",
    "hangup",
    "挂机: the agent's side ends (the citizen hears the survey); a call with no agent ends",
    cm.Hangup,
)
_plain_command(
    "/{uuid}/transfer/complete",
    "transfer_complete",
    "Complete an attended transfer: the citizen to the consulted party",
    cm.CompleteTransfer,
)
_plain_command(
    "/{uuid}/transfer/cancel",
    "transfer_cancel",
    "Cancel an attended transfer: the citizen back to the agent",
    cm.CancelTransfer,
)


@router.post(
    "/{uuid}/transfer",
    summary="转接: to an agent, a skill group or an outside number; blind or attended",
    responses=REFUSALS,
)
async def transfer(
    body: TransferRequest,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    uuid: str = CallPath,
) -> ControlReply:
    call = _call_for(services, caller, uuid)
    await _check_target(services, body.to)
    party = body.to.party()
    await _audit(audit, caller, call, "transfer", mode=body.mode, to=party.kind, target=party.id)
    return await _run(services, cm.Transfer(uuid, party, attended=body.mode == "attended"))


@router.post(
    "/{uuid}/three-way", summary="三方通话 with an agent or an outside number", responses=REFUSALS
)
async def three_way(
    body: ThreeWayRequest,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    uuid: str = CallPath,
) -> ControlReply:
    call = _call_for(services, caller, uuid)
    await _check_target(services, body.to)
    party = body.to.party()
    await _audit(audit, caller, call, "three_way", to=party.kind, target=party.id)
    return await _run(services, cm.ThreeWay(uuid, party))


@router.delete(
    "/{uuid}/three-way",
    summary="End the three-way call (the third party leaves)",
    responses=REFUSALS,
)
async def leave_three_way(
    services: ServicesDep, caller: CurrentCaller, audit: AuditLog, uuid: str = CallPath
) -> ControlReply:
    call = _call_for(services, caller, uuid)
    await _audit(audit, caller, call, "three_way_end")
    return await _run(services, cm.LeaveThreeWay(uuid))


def _supervisor_extension(services: Services, caller: Caller, given: str | None) -> str:
    if given:
        return given
    agent: Agent | None = services.roster.agents.get(caller.agent_id) if caller.agent_id else None
    if agent is None:
        raise ApiError(422, "invalid", "send the supervisor's extension (no agent seat for it)")
    return agent.extension


@router.post(
    "/{uuid}/monitor",
    summary="监听/插话: listen, whisper to the agent, or barge, from the supervisor's phone",
    responses=REFUSALS,
)
async def monitor(
    body: MonitorRequest,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    uuid: str = CallPath,
) -> ControlReply:
    call = _call_for(services, caller, uuid, monitor=True)
    extension = _supervisor_extension(services, caller, body.extension)
    await audit.record(
        "call.monitor", "call", uuid, mode=body.mode, extension=extension, agent=call.agent_id or ""
    )
    command = cm.Monitor(uuid, cm.MonitorMode(body.mode), extension, caller.name)
    return await _run(services, command)


@router.patch("/{uuid}/monitor", summary="Change the monitor mode", responses=REFUSALS)
async def change_monitor(
    body: MonitorChange,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    uuid: str = CallPath,
) -> ControlReply:
    call = _call_for(services, caller, uuid, monitor=True)
    await audit.record("call.monitor_mode", "call", uuid, mode=body.mode, agent=call.agent_id or "")
    return await _run(services, cm.ChangeMonitor(uuid, cm.MonitorMode(body.mode)))


@router.delete("/{uuid}/monitor", summary="Stop monitoring", responses=REFUSALS)
async def stop_monitor(
    services: ServicesDep, caller: CurrentCaller, audit: AuditLog, uuid: str = CallPath
) -> ControlReply:
    call = _call_for(services, caller, uuid, monitor=True)
    await audit.record("call.monitor_stop", "call", uuid, agent=call.agent_id or "")
    return await _run(services, cm.StopMonitor(uuid))


# -- the agent's own ---------------------------------------------------------------------


async def _agent_for(
    services: Services, caller: Caller, audit: AuditLog, agent_id: str, action: str, **detail: str
) -> None:
    if caller.role is Role.AGENT and caller.agent_id != agent_id:
        raise forbidden("an agent token acts on its own agent only")
    agent = services.roster.agents.get(agent_id)
    if agent is None:
        raise not_found("agent", agent_id)
    if not caller.may_act_on_agent(agent.id, agent.area):
        raise forbidden(f"agent {agent_id!r} is not in your areas")
    if caller.agent_id != agent.id:
        await audit.record(f"agent.{action}", "agent", agent.id, **detail)


@agents_router.post(
    "/{agent_id}/dial",
    summary="外线拨打: the agent's phone rings, then the number, from the hotline's caller ID",
    responses=REFUSALS,
)
async def dial(
    body: DialRequest,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    agent_id: str = AgentPath,
) -> ControlReply:
    await _agent_for(services, caller, audit, agent_id, "dial", number=body.number)
    return await _run(services, cm.Dial(agent_id, body.number))


@agents_router.post(
    "/{agent_id}/ready", summary="End wrap-up now (话后处理结束)", responses=REFUSALS
)
async def ready(
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    body: Empty | None = None,
    agent_id: str = AgentPath,
) -> ControlReply:
    await _agent_for(services, caller, audit, agent_id, "ready")
    return await _run(services, cm.Ready(agent_id))


@agents_router.post(
    "/{agent_id}/wrap-up",
    summary="Extend wrap-up (restart it for extend_seconds)",
    responses=REFUSALS,
)
async def extend_wrap_up(
    body: WrapUpRequest,
    services: ServicesDep,
    caller: CurrentCaller,
    audit: AuditLog,
    agent_id: str = AgentPath,
) -> ControlReply:
    await _agent_for(services, caller, audit, agent_id, "wrap_up_extend")
    return await _run(services, cm.Ready(agent_id, extend_s=body.extend_seconds))
