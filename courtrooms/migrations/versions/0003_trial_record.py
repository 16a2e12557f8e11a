"""trial record

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:42:56.315061
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcript_segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hearing_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=False),
        sa.Column("text", sa.String(length=4000), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hearing_id"], ["hearings.id"], name=op.f("fk_transcript_segments_hearing_id_hearings")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_transcript_segments_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_segments")),
    )
    with op.batch_alter_table("transcript_segments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transcript_segments_hearing_id"), ["hearing_id"], unique=False
        )

    op.create_table(
        "segment_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("before", sa.String(length=4000), nullable=False),
        sa.Column("after", sa.String(length=4000), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["transcript_segments.id"],
            name=op.f("fk_segment_revisions_segment_id_transcript_segments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_revisions")),
    )
    with op.batch_alter_table("segment_revisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_segment_revisions_segment_id"), ["segment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_revisions_segment_id"))

    op.drop_table("segment_revisions")
    with op.batch_alter_table("transcript_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcript_segments_hearing_id"))

    op.drop_table("transcript_segments")
