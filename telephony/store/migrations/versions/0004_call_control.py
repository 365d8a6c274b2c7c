"""call control on the CDR

``calls.hold_seconds``: the time the citizen was on hold (保持, uuid_hold of the
agent's leg, and a consult's wait). ``calls.direction``: ``inbound`` (a citizen
called the hotline) or ``outbound`` (an agent's 外线拨打).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("hold_seconds", sa.Float(), nullable=True))
    op.add_column("calls", sa.Column("direction", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("calls", "direction")
    op.drop_column("calls", "hold_seconds")
