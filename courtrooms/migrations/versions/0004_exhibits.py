"""exhibits and the judge's seal of the trial record

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:24:46.244648
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exhibits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hearing_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("created_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hearing_id"], ["hearings.id"], name=op.f("fk_exhibits_hearing_id_hearings")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_exhibits_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exhibits")),
    )
    with op.batch_alter_table("exhibits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exhibits_hearing_id"), ["hearing_id"], unique=False)

    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("record_sealed_at", courtrooms.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("record_sealed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("record_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.drop_column("record_sha256")
        batch_op.drop_column("record_sealed_by")
        batch_op.drop_column("record_sealed_at")

    with op.batch_alter_table("exhibits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exhibits_hearing_id"))

    op.drop_table("exhibits")
