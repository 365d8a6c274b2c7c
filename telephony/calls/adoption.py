"""Re-adoption and reconciliation: after a (re)connect, make the engine agree with the switch.

FreeSWITCH replays nothing, so on every connect the engine does three things:

1. **Reconcile what it knows.** A call or agent leg whose HANGUP_COMPLETE was
   lost during the drop is a ghost: an agent in a call forever, a CDR never
   closed, a queued call offered to an agent. Every known leg is checked with
   ``uuid_exists`` (``show channels`` lags: it still lists channels destroyed
   a moment ago); a caller leg that is gone ends its call (``hung_up_by:
   unknown``, the outcome from where the call was), an agent leg that is gone
   ends the agent's call or its offer (never counted as a missed offer).
2. **Adopt what it does not know** (a restart), from ``show channels as json``
   and each channel's variables (``uuid_dump <uuid> json``): ``hotline`` says it
   is a hotline call, ``hotline_call`` marks our agent legs, and the ``tel_*``
   variables the engine set say how far the call had come:

   * none: parked while no controller ran: the normal intake (``uuid_park``
     first if it is still in the dialplan's park);
   * ``ivr``: the flow starts again (where the citizen was is lost with the
     process);
   * ``queued`` (or ``offering``, whose job result was lost): back in its queue
     with its priority, an orphan agent leg still ringing or parked is hung up;
   * ``connected``: the call and its agent leg are registered again, the agent
     is put back ``in_call``, and the CDR is completed when the call ends;
   * ``after_agent``: the agent had left; the survey plays, then the call ends.

   A channel the engine took meanwhile (its CHANNEL_PARK came during the
   dumps) is not adopted twice.
3. **Resume**: calls whose IVR the drop interrupted start it again, waiting
   calls get their music back, and agents the stored state shows ringing, in
   a call or in wrap-up whom no call on any node needs are released, once
   every node has been adopted (an agent talking on another node is not).
   Then the engine's connect hooks run (the recording probe), also when the
   reconciliation or the adoption could not read the node.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from telephony.acd.agent_state import AgentEvent, AgentState
from telephony.calls import values
from telephony.calls.core import EngineCore
from telephony.calls.leg import Leg, LegState
from telephony.calls.model import Call, CallState
from telephony.calls.values import clean, is_uuid
from telephony.esl.port import EslError

log = logging.getLogger(__name__)

#: How many ``uuid_exists`` / ``uuid_dump`` requests are in flight at once.
_CONCURRENCY = 32


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


async def _dump(core: EngineCore, uuid: str) -> dict[str, Any] | None:
    try:
        reply = await core.port.api("uuid_dump", uuid, "json", check=False)
    except EslError:
        return None
    if not reply.ok:
        return None
    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def _exists(core: EngineCore, uuid: str) -> bool | None:
    """Whether the switch still has the channel; None when it could not say."""
    try:
        reply = await core.port.api("uuid_exists", uuid, check=False)
    except EslError:
        return None
    return reply.body.strip() == "true"


async def _gather(work: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in work)))


async def on_connect(core: EngineCore) -> None:
    """Reconcile, adopt, resume, then the connect hooks: see the module docstring."""
    try:
        if await reconcile(core) and await adopt_node(core):
            core.adopted_once = True
            resume(core)
            release_stale_agents(core)
            for peer in core.peers():
                peer.route()
    except Exception:  # one odd channel must not stop the rest of the connect's work
        log.exception("re-adoption failed", extra={"node": core.port.node})
    for hook in core.connect_hooks:  # also when the node could not be read (the probe says why)
        try:
            await hook()
        except Exception:
            log.exception("connect hook failed", extra={"node": core.port.node})


async def reconcile(core: EngineCore) -> bool:
    """End the known calls and agent legs the switch no longer has; False if it cannot tell."""
    legs = [*core.calls, *core.agent_legs]
    if not legs:
        return True
    alive = await _gather([_exists(core, uuid) for uuid in legs])
    if any(a is None for a in alive):
        log.error("could not reconcile calls; will try at the next connect")
        return False
    gone = {uuid for uuid, here in zip(legs, alive, strict=True) if not here}
    for leg in [leg for leg in gone if leg in core.agent_legs]:
        log.warning("agent leg ended while disconnected", extra={"leg": leg})
        call = core.calls.get(core.agent_legs[leg])
        if call is not None and call.offer_leg == leg and call.offered_agent:
            # Its job result was lost with the connection: not the agent's miss.
            core.offer_failed(call, call.offered_agent, leg, "LOST", agent_missed=False)
        else:
            core.agent_leg_gone(leg, None, None)
    for uuid in [uuid for uuid in gone if uuid in core.calls]:
        call = core.calls[uuid]
        log.warning(
            "call ended while disconnected", extra={"call": uuid, "state": call.state.value}
        )
        if call.state is CallState.OFFERING and call.offered_agent and call.offer_leg:
            core.offer_failed(
                call, call.offered_agent, call.offer_leg, "CALLER_GONE", agent_missed=False
            )
        core.caller_gone(call, None, None, seen=False)
    return True


async def adopt_node(core: EngineCore) -> bool:
    """Re-adopt every hotline call of the node that the engine does not know."""
    try:
        listing = await core.port.api("show", "channels", "as", "json")
        rows = orjson.loads(listing.body).get("rows", []) or []
    except (EslError, orjson.JSONDecodeError, AttributeError) as exc:
        log.error("could not list channels for re-adoption", extra={"error": str(exc)})
        return False
    unknown = [
        row
        for row in rows
        if row.get("uuid") and row["uuid"] not in core.calls and row["uuid"] not in core.agent_legs
    ]
    dumps = await _gather([_dump(core, row["uuid"]) for row in unknown])
    agent_legs: dict[str, dict[str, Any]] = {}
    callers: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for row, dump in zip(unknown, dumps, strict=True):
        if dump is None or not (dump.get("variable_hotline") or dump.get("variable_hotline_call")):
            continue
        if dump.get("variable_hotline_call"):
            agent_legs[row["uuid"]] = dump
        elif dump.get("Call-Direction", row.get("direction")) == "inbound":
            callers.append((row, dump))
    adopted = 0
    for row, dump in callers:
        if dump.get("Unique-ID") in core.calls or not is_uuid(dump.get("Unique-ID", "")):
            continue  # its CHANNEL_PARK came during the dumps: the engine has it
        _adopt_caller(core, row, dump, agent_legs)
        adopted += 1
    for leg in agent_legs:  # agent legs whose call is not connected: orphans
        if leg not in core.agent_legs:
            log.info("hanging up orphan agent leg", extra={"leg": leg})
            core.spawn(core.kill(leg), f"kill {leg}")
    log.info("re-adoption done", extra={"node": core.port.node, "calls": adopted})
    return True


def _adopt_caller(
    core: EngineCore, row: dict[str, Any], dump: dict[str, Any], agent_legs: dict[str, Any]
) -> None:
    uuid = dump["Unique-ID"]
    state = dump.get("variable_tel_state")
    priority = dump.get("variable_tel_priority")
    call = Call(
        uuid=uuid,
        node=clean(core.port.node, values.NODE),
        hotline=clean(dump["variable_hotline"], values.HOTLINE),
        caller=clean(dump.get("Caller-Caller-ID-Number", ""), values.CALLER),
        arrived_at=_float(dump.get("variable_tel_arrived_at")) or core.clock(),
        skill_group=dump.get("variable_tel_group") or core.settings.default_group,
        priority=int(priority) if priority and priority.lstrip("-").isdigit() else 0,
        ivr_answered_at=_float(dump.get("variable_tel_ivr_answered_at")),
        queued_at=_float(dump.get("variable_tel_queued_at")),
        agent_answered_at=_float(dump.get("variable_tel_agent_answered_at")),
        ivr_keys=clean(dump.get("variable_tel_ivr_path"), values.KEYS),
        hold_music=dump.get("variable_hold_music"),
        controlled=(row.get("state") or dump.get("Channel-State")) != "CS_EXECUTE",
    )
    if state is None and call.ivr_answered_at is None:
        core.adopt(call)  # parked while no controller ran: take it in like a new call
        core.spawn(core.intake(call) if call.controlled else core.take(call), f"intake {uuid}")
        return
    call.controlled = True
    agent_id = dump.get("variable_tel_agent")
    leg = dump.get("variable_tel_agent_leg")
    if state == "connected" and agent_id and leg in agent_legs:
        call.state = CallState.CONNECTED
        call.agent_id, call.agent_leg = agent_id, leg
        answered = call.agent_answered_at
        for uuid_, role, where in ((uuid, "caller", call.hotline), (leg, "agent", None)):
            call.legs[uuid_] = Leg(
                uuid_, role, where, call.arrived_at, LegState.BRIDGED, answered_at=answered
            )
        recording = dump.get("variable_tel_recording")
        if recording:
            call.recording_id = recording
            call.recording_path = str(core.settings.recordings_dir / f"{uuid}.wav")
            call.recording_started_at = call.agent_answered_at
        core.adopt(call)
        core.agent_legs[leg] = uuid
        agent = core.roster.agents.get(agent_id)
        if agent is not None and agent.state is not AgentState.IN_CALL:
            core.roster.apply(agent_id, AgentEvent.RESUME_CALL)  # stored as in_call: stays
        return
    call.legs[uuid] = Leg(
        uuid,
        "caller",
        call.hotline,
        call.arrived_at,
        LegState.ANSWERED,
        answered_at=call.ivr_answered_at,
    )  # answered and not bridged: in the IVR, waiting, or left behind by its agent
    if state in ("after_agent", "connected"):
        call.state = CallState.CONNECTED  # the agent is gone: the survey, then the end
        call.agent_id = agent_id
        core.adopt(call)
        core.bridge_ended(call)
        return
    call.state = CallState.IVR
    core.adopt(call)
    if state == "ivr" or state is None:
        core.spawn(core.run_flow(call), f"ivr {uuid}")
        return
    queued_at = call.queued_at
    core.enqueue(call)
    if queued_at is not None:  # keep the original queue time for the CDR's wait
        call.queued_at = queued_at


def resume(core: EngineCore) -> None:
    """After a reconnect: interrupted IVRs start again, waiting calls get their music."""
    for call in list(core.calls.values()):
        if call.state is CallState.IVR and call.ivr_restarts:
            if call.ivr_restarts > core.settings.ivr_restarts:
                call.skill_group = core.settings.default_group
                core.enqueue(call)
            else:
                core.spawn(core.run_flow(call), f"ivr {call.uuid}")
        elif call.state is CallState.QUEUED:
            core.ensure_music(call)


def release_stale_agents(core: EngineCore) -> None:
    """Agents left ringing, talking or wrapping up with no live call on any node (the
    offer, the call or the wrap-up timer died with the previous process) go on; not
    before every node has been adopted once."""
    peers = list(core.peers())
    if not all(peer.adopted_once for peer in peers):
        return
    engaged = set().union(*(peer.engaged_agents() for peer in peers))
    wrapping = set().union(*(peer.wrapping_up() for peer in peers))
    for agent in list(core.roster.agents.values()):
        if agent.id in engaged:
            continue
        if agent.state is AgentState.RINGING:
            core.roster.apply(agent.id, AgentEvent.OFFER_CANCELLED)
        elif agent.state is AgentState.IN_CALL:
            core.end_agent_call(agent.id)
        elif agent.state is AgentState.WRAP_UP and agent.id not in wrapping:
            core.roster.apply(agent.id, AgentEvent.WRAP_UP_DONE)
