"""deliveries keep the replies they got; counters for limits shared by every process

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a redelivered message (its first answer never reached the member) gets the same replies again
    op.add_column("processed_updates", sa.Column("replies", sa.Text(), nullable=True))
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("replies")
