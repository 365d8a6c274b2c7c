"""outbound: missed calls, callback and follow-up tasks, their attempts, campaigns, rules

``outbound_rules``: per hotline (``*`` for the rest) the callback rules as data.
``missed_calls``: inbound calls that reached no agent, each pointing at its
callback task (a citizen's repeated calls share one). ``outbound_tasks``: a
number to call (``callback`` or ``survey``) with its state, attempts and next
time. ``outbound_attempts``: every call made for a task, written before it is
dialled. ``survey_campaigns``: follow-up (回访) campaigns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UUID = postgresql.UUID(as_uuid=True)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbound_rules",
        sa.Column("hotline", sa.String(32), nullable=False),
        sa.Column("rules", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("hotline", name="pk_outbound_rules"),
    )
    op.create_table(
        "survey_campaigns",
        sa.Column("id", _UUID, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("hotline", sa.String(32), nullable=False),
        sa.Column("flow", sa.String(128), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_seconds", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_survey_campaigns"),
    )
    op.create_table(
        "outbound_tasks",
        sa.Column("id", _UUID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hotline", sa.String(32), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("skill_group", sa.String(64), nullable=True),
        sa.Column("campaign_id", _UUID, nullable=True),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _TS, nullable=False),
        sa.Column("missed_count", sa.Integer(), nullable=False),
        sa.Column("first_missed_at", _TS, nullable=True),
        sa.Column("last_missed_at", _TS, nullable=True),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("reached_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_tasks"),
    )
    op.create_index(
        "ix_outbound_tasks_due",
        "outbound_tasks",
        ["next_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_outbound_tasks_number", "outbound_tasks", ["kind", "hotline", "number"])
    op.create_index("ix_outbound_tasks_campaign_id", "outbound_tasks", ["campaign_id"])
    op.create_table(
        "outbound_attempts",
        sa.Column("id", _UUID, nullable=False),
        sa.Column("task_id", _UUID, nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("caller_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("call_uuid", _UUID, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("hangup_cause", sa.String(64), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("recording_id", _UUID, nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_attempts"),
    )
    op.create_index("ix_outbound_attempts_task_id", "outbound_attempts", ["task_id"])
    op.create_table(
        "missed_calls",
        sa.Column("call_uuid", _UUID, nullable=False),
        sa.Column("hotline", sa.String(32), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("arrived_at", _TS, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("task_id", _UUID, nullable=False),
        sa.PrimaryKeyConstraint("call_uuid", name="pk_missed_calls"),
    )
    op.create_index("ix_missed_calls_arrived_at", "missed_calls", ["arrived_at"])
    op.create_index("ix_missed_calls_task_id", "missed_calls", ["task_id"])


def downgrade() -> None:
    for table in (
        "missed_calls",
        "outbound_attempts",
        "outbound_tasks",
        "survey_campaigns",
        "outbound_rules",
    ):
        op.drop_table(table)
