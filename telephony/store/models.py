"""The database schema: every row a KPI, an audit or a re-adoption needs.

Alembic owns the schema (``telephony/store/migrations``); these models are
its source. Ids that the control plane creates before a row is written
(call and leg uuids, event and queue-entry ids) are client-generated, so a
write retried after an outage inserts nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID as Uuid
from uuid import uuid4

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        Uuid: UUID(as_uuid=True),
    }


class FreeswitchNode(Base):
    """A FreeSWITCH node the control plane drives over ESL."""

    __tablename__ = "freeswitch_nodes"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))  # host:port, never the password
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_seen_at: Mapped[datetime | None]


class NodeConnectionEvent(Base):
    """A node's ESL connection came up or went down: the history 呼叫接入系统可用率 is read from."""

    __tablename__ = "node_connection_events"
    id: Mapped[Uuid] = mapped_column(primary_key=True, default=uuid4)
    node: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    connected: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (Index("ix_node_connection_events_node_at", "node", "at"),)


class Hotline(Base):
    """A number citizens dial (12345, 12315, ...) and the IVR flow that answers it."""

    __tablename__ = "hotlines"
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    flow: Mapped[str] = mapped_column(String(128))
    area: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class SkillGroup(Base):
    """A queue of calls served by agents with the group's skill (专席)."""

    __tablename__ = "skill_groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    area: Mapped[str | None] = mapped_column(String(64))
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=30)
    ring_timeout_seconds: Mapped[int] = mapped_column(Integer, default=15)
    overflow_group_id: Mapped[str | None] = mapped_column(ForeignKey("skill_groups.id"))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Agent(Base):
    """An agent seat (坐席): who answers, on which extension, in which area."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    extension: Mapped[str] = mapped_column(String(32), unique=True)
    area: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="logged_out")
    state_reason: Mapped[str | None] = mapped_column(String(128))
    state_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AgentSkill(Base):
    """An agent's level in a skill group (higher serves first)."""

    __tablename__ = "agent_skills"
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("skill_groups.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, default=1)


class AgentStateChange(Base):
    """One agent state transition (sign-in, busy, no answer, ...), for agent statistics."""

    __tablename__ = "agent_state_changes"
    id: Mapped[Uuid] = mapped_column(primary_key=True, default=uuid4)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(128))


class Call(Base):
    """The call detail record (CDR), keyed by the caller leg's uuid."""

    __tablename__ = "calls"
    uuid: Mapped[Uuid] = mapped_column(primary_key=True)
    node: Mapped[str | None] = mapped_column(String(64))
    hotline: Mapped[str | None] = mapped_column(String(32), index=True)
    caller: Mapped[str | None] = mapped_column(String(64), index=True)
    arrived_at: Mapped[datetime] = mapped_column(index=True)
    ivr_answered_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    agent_answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wait_seconds: Mapped[float | None]
    talk_seconds: Mapped[float | None]
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    skill_group_id: Mapped[str | None] = mapped_column(String(64))
    hung_up_by: Mapped[str | None] = mapped_column(String(16))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32), index=True)
    recording_id: Mapped[Uuid | None]
    # Why the call has no recording: the switch's reason ("-ERR Cannot record session!",
    # "no audio"); NULL when it was recorded or never meant to be (no agent answered).
    recording_failed: Mapped[str | None] = mapped_column(String(128))
    survey_score: Mapped[int | None] = mapped_column(Integer)
    ivr_path: Mapped[str | None] = mapped_column(Text)
    # The citizen's voice message: its file as the switch wrote it, or why there is none.
    voicemail_path: Mapped[str | None] = mapped_column(String(255))
    voicemail_failed: Mapped[str | None] = mapped_column(String(128))
    # Call control: the time the citizen was on hold (保持), and who called whom.
    hold_seconds: Mapped[float | None]
    direction: Mapped[str | None] = mapped_column(String(16))


class CallLeg(Base):
    """One FreeSWITCH channel of a call: the caller, an agent, a supervisor, an outside party."""

    __tablename__ = "call_legs"
    uuid: Mapped[Uuid] = mapped_column(primary_key=True)
    call_uuid: Mapped[Uuid] = mapped_column(index=True)
    role: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(32))


class CallEvent(Base):
    """The call's timeline: one row per thing that happened to it."""

    __tablename__ = "call_events"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    call_uuid: Mapped[Uuid]
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_call_events_call_uuid_at", "call_uuid", "at"),)


class QueueEntry(Base):
    """A call's stay in a skill group's queue, and how it left."""

    __tablename__ = "queue_entries"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    call_uuid: Mapped[Uuid] = mapped_column(index=True)
    skill_group_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    entered_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(64))


class Recording(Base):
    """A call recording file, its checksum, and whether it was deleted (and by whom, in audit)."""

    __tablename__ = "recordings"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    call_uuid: Mapped[Uuid] = mapped_column(index=True)
    path: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    seconds: Mapped[float | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None]
    delete_reason: Mapped[str | None] = mapped_column(String(256))
    # The off-site copy (话务语音异地灾备, telephony.recording.archive): ``pending`` until the
    # copy read back from the second store has the original's SHA-256 (``sha256``).
    copy_status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending"
    )
    copy_location: Mapped[str | None] = mapped_column(Text)
    copy_sha256: Mapped[str | None] = mapped_column(String(64))
    copy_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    copy_error: Mapped[str | None] = mapped_column(String(256))
    copy_next_at: Mapped[datetime | None]
    copy_verified_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_recordings_unsafe",
            "copy_next_at",
            postgresql_where=text("copy_status <> 'verified' AND deleted_at IS NULL"),
        ),
        Index("ix_recordings_started_at", "started_at"),
    )


class RecordingRetention(Base):
    """How many days a hotline's recordings are kept (others: ``recordings_retention_days``)."""

    __tablename__ = "recording_retention"
    hotline: Mapped[str] = mapped_column(String(32), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("days > 0", name="days_positive"),)


class Principal(Base):
    """Who may use the API: role, area scope, the agent it acts as; the token is stored hashed."""

    __tablename__ = "principals"
    id: Mapped[Uuid] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    area: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """A privileged action: who did what to which recording, call or setting, and when."""

    __tablename__ = "audit_log"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    principal: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class BlockedNumber(Base):
    """A number whose calls are refused (拦截恶意号码), who blocked it and why."""

    __tablename__ = "blocked_numbers"
    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(256))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OutboundRule(Base):
    """A hotline's callback rules (漏接回拨): which outcomes are missed calls, how repeats
    merge, quiet hours, retries by disposition; ``*`` holds the rules of every other hotline."""

    __tablename__ = "outbound_rules"
    hotline: Mapped[str] = mapped_column(String(32), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SurveyCampaign(Base):
    """A follow-up (回访) campaign: numbers with a reference, called from a hotline's number."""

    __tablename__ = "survey_campaigns"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    hotline: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(String(128))
    max_attempts: Mapped[int] = mapped_column(Integer)
    retry_seconds: Mapped[float] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]


class OutboundTask(Base):
    """A number to call: a callback of a citizen's missed calls, or a campaign's follow-up."""

    __tablename__ = "outbound_tasks"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # callback, survey
    hotline: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    skill_group: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[Uuid | None]
    reference: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_at: Mapped[datetime]
    missed_count: Mapped[int] = mapped_column(Integer, default=0)
    first_missed_at: Mapped[datetime | None]
    last_missed_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    reached_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_outbound_tasks_due", "next_at", postgresql_where=text("state = 'pending'")),
        Index("ix_outbound_tasks_number", "kind", "hotline", "number"),
        Index("ix_outbound_tasks_campaign_id", "campaign_id"),
    )


class OutboundAttempt(Base):
    """One call of a task: when, which agent, how it ended, talk time, recording, score."""

    __tablename__ = "outbound_attempts"
    id: Mapped[Uuid] = mapped_column(primary_key=True)
    task_id: Mapped[Uuid] = mapped_column(index=True)
    number: Mapped[str] = mapped_column(String(64))
    caller_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # dialing, ended, interrupted
    call_uuid: Mapped[Uuid]  # the citizen's leg (origination_uuid), chosen before dialling
    agent_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(32))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    talk_seconds: Mapped[float | None]
    recording_id: Mapped[Uuid | None]
    score: Mapped[int | None] = mapped_column(Integer)


class MissedCall(Base):
    """An inbound call that reached no agent (漏接), and the callback task it belongs to."""

    __tablename__ = "missed_calls"
    call_uuid: Mapped[Uuid] = mapped_column(primary_key=True)
    hotline: Mapped[str] = mapped_column(String(32))
    caller: Mapped[str] = mapped_column(String(64))
    arrived_at: Mapped[datetime] = mapped_column(index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[Uuid] = mapped_column(index=True)


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model (typed as ``Table``, which ``__table__`` is not)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
