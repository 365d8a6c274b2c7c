"""Re-adoption: after a (re)connect, take back the calls FreeSWITCH kept while we were away.

FreeSWITCH replays nothing, so on every connect the engine lists the node's
channels (``show channels as json``) and reads each unknown caller channel's
variables (``uuid_dump <uuid> json``): ``hotline`` says it is a hotline call,
``hotline_call`` marks our agent legs, and the ``tel_*`` variables the engine
set say how far the call had come and when. Then:

* no ``tel_state``: parked while no controller ran: the normal intake;
* ``queued`` (or ``offering``, whose job result was lost): back in the queue,
  an orphan agent leg still ringing or parked is hung up;
* ``connected``: the call and its agent leg are registered again, the agent
  is put back ``in_call``, and the CDR is completed when the call ends;
* ``after_agent``: the agent had left; the call is ended.

Agents the stored state shows ringing, in a call or in wrap-up, but whom no
re-adopted call needs, are released (their offer, call or wrap-up timer died
with the previous process). With several nodes, an agent's call on a node
not yet re-adopted is not known here: one node per control plane for now.

``show channels`` lags (it still lists channels destroyed a moment ago), so a
channel whose dump fails is skipped.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from telephony.acd.agent_state import AgentEvent
from telephony.calls.leg import Leg, LegState
from telephony.calls.model import Call, CallState
from telephony.esl.port import EslError

if TYPE_CHECKING:
    from telephony.calls.engine import CallEngine

log = logging.getLogger(__name__)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


async def _dump(engine: CallEngine, uuid: str) -> dict[str, Any] | None:
    try:
        reply = await engine.port.api("uuid_dump", uuid, "json", check=False)
    except EslError:
        return None
    if not reply.ok:
        return None
    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def adopt_node(engine: CallEngine) -> None:
    """Re-adopt every hotline call of the engine's node that the engine does not know."""
    try:
        listing = await engine.port.api("show", "channels", "as", "json")
        rows = orjson.loads(listing.body).get("rows", [])
    except (EslError, orjson.JSONDecodeError, AttributeError) as exc:
        log.error("could not list channels for re-adoption", extra={"error": str(exc)})
        return
    agent_legs: dict[str, dict[str, Any]] = {}
    callers: list[dict[str, Any]] = []
    for row in rows:
        uuid = row.get("uuid")
        if not uuid or uuid in engine.calls or uuid in engine.agent_legs:
            continue
        dump = await _dump(engine, uuid)
        if dump is None or not (dump.get("variable_hotline") or dump.get("variable_hotline_call")):
            continue
        if dump.get("variable_hotline_call"):
            agent_legs[uuid] = dump
        elif dump.get("Call-Direction", row.get("direction")) == "inbound":
            callers.append(dump)
    adopted = 0
    for dump in callers:
        _adopt_caller(engine, dump, agent_legs)
        adopted += 1
    for leg in agent_legs:  # agent legs whose call is not connected: orphans
        if leg not in engine.agent_legs:
            log.info("hanging up orphan agent leg", extra={"leg": leg})
            with contextlib.suppress(EslError):
                await engine.port.api("uuid_kill", leg)
    log.info("re-adoption done", extra={"node": engine.port.node, "calls": adopted})
    engine.release_stale_agents()
    engine.route()


def _adopt_caller(engine: CallEngine, dump: dict[str, Any], agent_legs: dict[str, Any]) -> None:
    uuid = dump["Unique-ID"]
    state = dump.get("variable_tel_state")
    call = Call(
        uuid=uuid,
        node=engine.port.node,
        hotline=dump["variable_hotline"],
        caller=dump.get("Caller-Caller-ID-Number", ""),
        arrived_at=_float(dump.get("variable_tel_arrived_at")) or engine.clock(),
        skill_group=dump.get("variable_tel_group") or engine.settings.default_group,
        ivr_answered_at=_float(dump.get("variable_tel_ivr_answered_at")),
        queued_at=_float(dump.get("variable_tel_queued_at")),
        agent_answered_at=_float(dump.get("variable_tel_agent_answered_at")),
    )
    if state is None and call.ivr_answered_at is None:
        engine.adopt(call)  # parked while no controller ran: take it in like a new call
        engine._spawn(engine._intake(call, dump.get("variable_hold_music")), f"intake {uuid}")
        return
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
            call.recording_path = str(engine.settings.recordings_dir / f"{uuid}.wav")
        engine.adopt(call)
        engine.agent_legs[leg] = uuid
        if agent_id in engine.roster.agents:
            engine.roster.apply(agent_id, AgentEvent.RESUME_CALL)
        return
    call.legs[uuid] = Leg(
        uuid,
        "caller",
        call.hotline,
        call.arrived_at,
        LegState.ANSWERED,
        answered_at=call.ivr_answered_at,
    )  # answered and not bridged: waiting, or left behind by its agent
    if state == "after_agent" or state == "connected":
        call.state = CallState.AFTER_AGENT  # the agent is gone: end the call
        call.agent_id = agent_id
        engine.adopt(call)
        engine._spawn(engine._hang_up(call), f"hangup {uuid}")
        return
    call.state = CallState.IVR
    engine.adopt(call)
    queued_at = call.queued_at
    engine.enqueue(call, dump.get("variable_hold_music"))
    if queued_at is not None:  # keep the original queue time for the CDR's wait
        call.queued_at = queued_at
