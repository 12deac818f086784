"""where each audit request's and appeal's card was posted in Slack

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("audit_requests", "appeals")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("slack_channel", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("slack_ts", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("slack_ts")
            batch.drop_column("slack_channel")
