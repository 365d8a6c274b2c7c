"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 11:05:32.449701
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_state_changes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_changes")),
    )
    op.create_index(
        op.f("ix_agent_state_changes_agent_id"), "agent_state_changes", ["agent_id"], unique=False
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("extension", sa.String(length=32), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=128), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("extension", name=op.f("uq_agents_extension")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "call_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_uuid", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
    )
    op.create_index("ix_call_events_call_uuid_at", "call_events", ["call_uuid", "at"], unique=False)
    op.create_table(
        "call_legs",
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("call_uuid", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hangup_cause", sa.String(length=64), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_call_legs")),
    )
    op.create_index(op.f("ix_call_legs_call_uuid"), "call_legs", ["call_uuid"], unique=False)
    op.create_table(
        "calls",
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("hotline", sa.String(length=32), nullable=True),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ivr_answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wait_seconds", sa.Double(), nullable=True),
        sa.Column("talk_seconds", sa.Double(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("skill_group_id", sa.String(length=64), nullable=True),
        sa.Column("hung_up_by", sa.String(length=16), nullable=True),
        sa.Column("hangup_cause", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("recording_id", sa.UUID(), nullable=True),
        sa.Column("survey_score", sa.Integer(), nullable=True),
        sa.Column("ivr_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_agent_id"), "calls", ["agent_id"], unique=False)
    op.create_index(op.f("ix_calls_arrived_at"), "calls", ["arrived_at"], unique=False)
    op.create_index(op.f("ix_calls_caller"), "calls", ["caller"], unique=False)
    op.create_index(op.f("ix_calls_hotline"), "calls", ["hotline"], unique=False)
    op.create_index(op.f("ix_calls_outcome"), "calls", ["outcome"], unique=False)
    op.create_table(
        "freeswitch_nodes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_freeswitch_nodes")),
    )
    op.create_table(
        "hotlines",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("flow", sa.String(length=128), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_hotlines")),
    )
    op.create_table(
        "principals",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("name", name=op.f("uq_principals_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_principals_token_sha256")),
    )
    op.create_table(
        "queue_entries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_uuid", sa.UUID(), nullable=False),
        sa.Column("skill_group_id", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_entries")),
    )
    op.create_index(
        op.f("ix_queue_entries_call_uuid"), "queue_entries", ["call_uuid"], unique=False
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_uuid", sa.UUID(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(op.f("ix_recordings_call_uuid"), "recordings", ["call_uuid"], unique=False)
    op.create_table(
        "skill_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("service_level_seconds", sa.Integer(), nullable=False),
        sa.Column("ring_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("overflow_group_id", sa.String(length=64), nullable=True),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["overflow_group_id"],
            ["skill_groups.id"],
            name=op.f("fk_skill_groups_overflow_group_id_skill_groups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_groups")),
    )
    op.create_table(
        "agent_skills",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_skills_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["skill_groups.id"],
            name=op.f("fk_agent_skills_group_id_skill_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "group_id", name=op.f("pk_agent_skills")),
    )
    # API.md: a group `general` exists from the first start; agents with no skills serve it.
    op.bulk_insert(
        sa.table(
            "skill_groups",
            sa.column("id", sa.String),
            sa.column("name", sa.String),
            sa.column("service_level_seconds", sa.Integer),
            sa.column("ring_timeout_seconds", sa.Integer),
            sa.column("settings", postgresql.JSONB),
        ),
        [
            {
                "id": "general",
                "name": "General",
                "service_level_seconds": 30,
                "ring_timeout_seconds": 15,
                "settings": {},
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("agent_skills")
    op.drop_table("skill_groups")
    op.drop_index(op.f("ix_recordings_call_uuid"), table_name="recordings")
    op.drop_table("recordings")
    op.drop_index(op.f("ix_queue_entries_call_uuid"), table_name="queue_entries")
    op.drop_table("queue_entries")
    op.drop_table("principals")
    op.drop_table("hotlines")
    op.drop_table("freeswitch_nodes")
    op.drop_index(op.f("ix_calls_outcome"), table_name="calls")
    op.drop_index(op.f("ix_calls_hotline"), table_name="calls")
    op.drop_index(op.f("ix_calls_caller"), table_name="calls")
    op.drop_index(op.f("ix_calls_arrived_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_agent_id"), table_name="calls")
    op.drop_table("calls")
    op.drop_index(op.f("ix_call_legs_call_uuid"), table_name="call_legs")
    op.drop_table("call_legs")
    op.drop_index("ix_call_events_call_uuid_at", table_name="call_events")
    op.drop_table("call_events")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("agents")
    op.drop_index(op.f("ix_agent_state_changes_agent_id"), table_name="agent_state_changes")
    op.drop_table("agent_state_changes")
