"""staff accounts: a login, a password's argon2 hash, a court and roles; sessions carry one

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("login_key", sa.String(length=64), nullable=False),
        sa.Column("court_id", sa.Uuid(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("disabled_at", courtrooms.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["court_id"], ["courts.id"],
                                name=op.f("fk_staff_accounts_court_id_courts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("login_key", name=op.f("uq_staff_accounts_login_key")),
    )
    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_accounts_court_id"), ["court_id"],
                              unique=False)
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_staff_sessions_account_id"), ["account_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_staff_sessions_account_id_staff_accounts"),
                                    "staff_accounts", ["account_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_staff_sessions_account_id_staff_accounts"),
                                 type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_staff_sessions_account_id"))
        batch_op.drop_column("account_id")
    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_accounts_court_id"))
    op.drop_table("staff_accounts")
