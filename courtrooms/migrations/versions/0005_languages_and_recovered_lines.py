"""a participant's own language; trial record lines recovered from the recording

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    with op.batch_alter_table("transcript_segments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recovered", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("transcript_segments", schema=None) as batch_op:
        batch_op.drop_column("recovered")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("language")
