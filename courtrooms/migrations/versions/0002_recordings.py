"""recordings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:42:02.374980
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hearing_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["hearing_id"], ["hearings.id"], name=op.f("fk_recording_segments_hearing_id_hearings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_segments")),
    )
    with op.batch_alter_table("recording_segments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recording_segments_hearing_id"), ["hearing_id"], unique=False
        )

    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hearing_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("codecs", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.Double(), nullable=False),
        sa.Column("duration", sa.Double(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "recording",
                "complete",
                "interrupted",
                "recovered",
                name="recording_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", courtrooms.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["hearing_id"], ["hearings.id"], name=op.f("fk_recordings_hearing_id_hearings")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_recordings_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("path", name=op.f("uq_recordings_path")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_hearing_id"), ["hearing_id"], unique=False)

    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timeline_origin", sa.Double(), nullable=True))

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("may_review", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("may_review")

    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.drop_column("timeline_origin")

    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_hearing_id"))

    op.drop_table("recordings")
    with op.batch_alter_table("recording_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_segments_hearing_id"))

    op.drop_table("recording_segments")
