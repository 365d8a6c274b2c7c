"""recording failures and voice messages on the CDR

``calls.recording_failed``: why a call that should have been recorded was not
(the switch's reply to ``uuid_record``, or "no audio" at RECORD_STOP).
``calls.voicemail_path`` / ``calls.voicemail_failed``: the citizen's voice
message file, or why it could not be recorded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("recording_failed", sa.String(length=128), nullable=True))
    op.add_column("calls", sa.Column("voicemail_path", sa.String(length=255), nullable=True))
    op.add_column("calls", sa.Column("voicemail_failed", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("calls", "voicemail_failed")
    op.drop_column("calls", "voicemail_path")
    op.drop_column("calls", "recording_failed")
