"""a participant's ID number digits, as a salted hash, with wrong tries and their lockout

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_digits_hash", sa.String(length=160), nullable=True))
        batch_op.add_column(
            sa.Column("id_digits_failures", sa.Integer(), server_default=sa.text("0"),
                      nullable=False)
        )
        batch_op.add_column(
            sa.Column("id_digits_locked_until", courtrooms.models.UTCDateTime(timezone=True),
                      nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("id_digits_locked_until")
        batch_op.drop_column("id_digits_failures")
        batch_op.drop_column("id_digits_hash")
