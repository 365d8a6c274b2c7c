"""recordings: off-site copy state, deletion reason, retention per hotline

``recordings.copy_*``: the off-site copy (话务语音异地灾备) of each recording:
``copy_status`` (``pending`` until the copy's SHA-256 matched the original's,
then ``verified``), where it is (``copy_location``), its SHA-256 as read back
from the second store, how many attempts it took, the last error and when the
next attempt is due. ``recordings.sha256`` (already there) is the original's,
taken at its first copy. ``recordings.delete_reason``: why it was removed (an
API delete's reason, or the retention policy). ``recording_retention``: how
many days each hotline's recordings are kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "recordings",
        sa.Column("copy_status", sa.String(length=16), server_default="pending", nullable=False),
    )
    op.add_column("recordings", sa.Column("copy_location", sa.Text(), nullable=True))
    op.add_column("recordings", sa.Column("copy_sha256", sa.String(length=64), nullable=True))
    op.add_column(
        "recordings",
        sa.Column("copy_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("recordings", sa.Column("copy_error", sa.String(length=256), nullable=True))
    op.add_column(
        "recordings", sa.Column("copy_next_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "recordings", sa.Column("copy_verified_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("recordings", sa.Column("delete_reason", sa.String(length=256), nullable=True))
    op.create_index(
        "ix_recordings_unsafe",
        "recordings",
        ["copy_next_at"],
        postgresql_where=sa.text("copy_status <> 'verified' AND deleted_at IS NULL"),
    )
    op.create_index("ix_recordings_started_at", "recordings", ["started_at"])
    op.create_table(
        "recording_retention",
        sa.Column("hotline", sa.String(length=32), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("days > 0", name=op.f("ck_recording_retention_days_positive")),
        sa.PrimaryKeyConstraint("hotline", name=op.f("pk_recording_retention")),
    )


def downgrade() -> None:
    op.drop_table("recording_retention")
    op.drop_index("ix_recordings_started_at", table_name="recordings")
    op.drop_index("ix_recordings_unsafe", table_name="recordings")
    for column in (
        "delete_reason",
        "copy_verified_at",
        "copy_next_at",
        "copy_error",
        "copy_attempts",
        "copy_sha256",
        "copy_location",
        "copy_status",
    ):
        op.drop_column("recordings", column)
