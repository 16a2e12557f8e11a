"""a judge's or clerk's participant is their staff account's seat: participants.account_id

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_participants_account_id_staff_accounts"), "staff_accounts",
            ["account_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_participants_account_id"), ["account_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_account_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_participants_account_id_staff_accounts"), type_="foreignkey")
        batch_op.drop_column("account_id")
