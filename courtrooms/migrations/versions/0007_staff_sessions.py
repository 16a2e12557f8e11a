"""staff sessions: a signed-in browser's cookie, held server-side

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import courtrooms.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", courtrooms.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", courtrooms.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
    )


def downgrade() -> None:
    op.drop_table("staff_sessions")
