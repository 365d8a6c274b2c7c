"""What the engine stores about calls: CDR, legs, timeline, queue entries, recordings.

Every function returns :class:`Write` objects for the write buffer; row keys
are made here from the call's uuids, so a write retried after an outage is
stored once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from telephony.calls.leg import Leg
from telephony.calls.model import Call
from telephony.store.buffer import Write
from telephony.store.models import Call as CallRow
from telephony.store.models import CallEvent, CallLeg, QueueEntry, Recording, table_of

_CALLS = table_of(CallRow)
_LEGS = table_of(CallLeg)
_EVENTS = table_of(CallEvent)
_QUEUE = table_of(QueueEntry)
_RECORDINGS = table_of(Recording)

# A fixed namespace: the same call and step always give the same timeline row id.
_NAMESPACE = uuid.UUID("5b0f3f8e-2c1a-4d7e-9a35-12345a0c0de5")


def at(seconds: float | None) -> datetime | None:
    """Engine seconds since the epoch as an aware UTC datetime (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def cdr(call: Call) -> Write:
    """The call's CDR as it stands (inserted at arrival, overwritten as the call goes on)."""
    row: dict[str, Any] = {
        "uuid": uuid.UUID(call.uuid),
        "node": call.node,
        "hotline": call.hotline,
        "caller": call.caller,
        "arrived_at": at(call.arrived_at),
        "ivr_answered_at": at(call.ivr_answered_at),
        "queued_at": at(call.queued_at),
        "agent_answered_at": at(call.agent_answered_at),
        "ended_at": at(call.ended_at),
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
        "agent_id": call.agent_id,
        "skill_group_id": call.skill_group,
        "hung_up_by": call.hung_up_by if call.ended_at is not None else None,
        "hangup_cause": call.hangup_cause,
        "outcome": call.outcome.value if call.ended_at is not None else None,
        "recording_id": (
            uuid.UUID(call.recording_id) if call.recording_id and call.recording_claimed else None
        ),
        "survey_score": call.survey_score,
        "ivr_path": call.ivr_keys or None,
        "recording_failed": call.recording_failed,
        "voicemail_path": call.voicemail_path,
        "voicemail_failed": call.voicemail_failed,
        "hold_seconds": round(call.hold_total(call.ended_at or call.arrived_at), 3)
        if call.hold_seconds or call.held_since
        else None,
        "direction": call.direction,
    }
    return Write(_CALLS, row, update=tuple(k for k in row if k != "uuid"))


def timeline(call: Call, kind: str, when: float, **detail: Any) -> Write:
    """One step of the call's timeline; the same step written twice is stored once."""
    step_id = uuid.uuid5(_NAMESPACE, f"{call.uuid}/{kind}/{when:.6f}")
    return Write(
        _EVENTS,
        {
            "id": step_id,
            "call_uuid": uuid.UUID(call.uuid),
            "at": at(when),
            "kind": kind,
            "detail": detail,
        },
    )


def leg(call: Call, leg: Leg) -> Write:
    """A leg's row as it stands (inserted when it starts, overwritten as it goes on)."""
    row: dict[str, Any] = {
        "uuid": uuid.UUID(leg.uuid),
        "call_uuid": uuid.UUID(call.uuid),
        "role": leg.role,
        "destination": leg.destination,
        "created_at": at(leg.created_at),
        "answered_at": at(leg.answered_at),
        "ended_at": at(leg.ended_at),
        "hangup_cause": leg.hangup_cause,
        "disposition": leg.disposition,
    }
    return Write(_LEGS, row, update=("answered_at", "ended_at", "hangup_cause", "disposition"))


def queue_entry(call: Call, *, left_at: float | None = None, result: str | None = None) -> Write:
    """The call's stay in its skill group (one per call and group)."""
    entry_id = uuid.uuid5(_NAMESPACE, f"{call.uuid}/queue/{call.skill_group}")
    row: dict[str, Any] = {
        "id": entry_id,
        "call_uuid": uuid.UUID(call.uuid),
        "skill_group_id": call.skill_group,
        "priority": call.priority,
        "entered_at": at(call.queued_at),
        "left_at": at(left_at),
        "result": result,
        "agent_id": call.agent_id,
    }
    return Write(_QUEUE, row, update=("left_at", "result", "agent_id") if result else ())


def recording(
    call: Call,
    *,
    started_at: float,
    ended_at: float | None = None,
    seconds: float | None = None,
    size_bytes: int | None = None,
) -> Write:
    assert call.recording_id and call.recording_path
    row: dict[str, Any] = {
        "id": uuid.UUID(call.recording_id),
        "call_uuid": uuid.UUID(call.uuid),
        "path": call.recording_path,
        "started_at": at(started_at),
        "ended_at": at(ended_at),
        "seconds": seconds,
        "size_bytes": size_bytes,
    }
    return Write(_RECORDINGS, row, update=("ended_at", "seconds", "size_bytes") if ended_at else ())
