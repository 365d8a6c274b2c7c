"""``/v1/calls``: live calls, read from the engine's :class:`~telephony.api.ports.CallDirectory`.

Scope: an admin or auditor sees every call; a supervisor the calls of its
areas (the dialled hotline's area, or the area of the agent on the call);
an agent only the calls it is on.
"""

from __future__ import annotations

from fastapi import APIRouter, Path

from telephony.api.deps import CurrentCaller, ServicesDep
from telephony.api.errors import ERROR_RESPONSES, not_found
from telephony.api.ports import LiveCall
from telephony.api.schemas import LiveCallList, LiveCallView
from telephony.auth import Caller, Role
from telephony.services import Services

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=ERROR_RESPONSES)


def _visible(services: Services, caller: Caller, call: LiveCall) -> bool:
    if caller.role is Role.AGENT:
        return call.agent_id is not None and call.agent_id == caller.agent_id
    if caller.covers_area(call.area):
        return True
    agent = services.roster.agents.get(call.agent_id) if call.agent_id else None
    return agent is not None and caller.covers_area(agent.area)


def _view(call: LiveCall) -> LiveCallView:
    return LiveCallView(
        uuid=call.uuid,
        node=call.node,
        caller=call.caller,
        hotline=call.hotline,
        state=call.state,
        area=call.area,
        skill_group_id=call.skill_group_id,
        agent_id=call.agent_id,
        arrived_at=call.arrived_at,
        answered_at=call.answered_at,
    )


@router.get("", summary="Calls in progress visible to the caller")
async def list_calls(services: ServicesDep, caller: CurrentCaller) -> LiveCallList:
    calls = [_view(c) for c in services.calls.live_calls() if _visible(services, caller, c)]
    return LiveCallList(calls=calls)


@router.get("/{uuid}", summary="One call in progress")
async def get_call(
    services: ServicesDep,
    caller: CurrentCaller,
    uuid: str = Path(description="the caller leg's uuid", max_length=64),
) -> LiveCallView:
    call = services.calls.live_call(uuid)
    if call is None or not _visible(services, caller, call):
        raise not_found("live call", uuid)
    return _view(call)
