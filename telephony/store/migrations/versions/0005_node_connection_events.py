"""node connection history

``node_connection_events``: one row each time a FreeSWITCH node's ESL
connection came up or went down (and when the control plane started or
stopped), so that 呼叫接入系统可用率 (1 - outage time / service time) is
computed from rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_connection_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_connection_events")),
    )
    op.create_index(
        "ix_node_connection_events_node_at", "node_connection_events", ["node", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_node_connection_events_node_at", table_name="node_connection_events")
    op.drop_table("node_connection_events")
