"""hearings name their court and, as accounts, their judge and clerk (scoped access)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("court_id", "courts"), ("judge_account_id", "staff_accounts"),
           ("clerk_account_id", "staff_accounts"))


def upgrade() -> None:
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        for column, table in COLUMNS:
            batch_op.add_column(sa.Column(column, sa.Uuid(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_hearings_{column}"), [column], unique=False)
            batch_op.create_foreign_key(batch_op.f(f"fk_hearings_{column}_{table}"), table,
                                        [column], ["id"])
    # A hearing scheduled before had its court only through its courtroom.
    op.execute("UPDATE hearings SET court_id = (SELECT courtrooms.court_id FROM courtrooms "
               "WHERE courtrooms.id = hearings.courtroom_id) WHERE courtroom_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        for column, table in reversed(COLUMNS):
            batch_op.drop_constraint(batch_op.f(f"fk_hearings_{column}_{table}"),
                                     type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_hearings_{column}"))
            batch_op.drop_column(column)
