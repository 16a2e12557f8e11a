"""a hearing interrupted by a process that died; a repaired recording's file as captured

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("interrupted_at", courtrooms.models.UTCDateTime(timezone=True),
                      nullable=True)
        )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("captured_path", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("captured_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("captured_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("captured_sha256")
        batch_op.drop_column("captured_size")
        batch_op.drop_column("captured_path")
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.drop_column("interrupted_at")
