"""verification codes record whose Registry ID they were asked for, and when a wrong code was last typed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a digest of the registry and the Registry ID typed, so limits hold for the member in every chat
    # (and the same way whether or not the ID belongs to anyone)
    op.add_column("verification_codes", sa.Column("subject", sa.String(length=64), nullable=True))
    op.add_column("verification_codes", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_verification_codes_subject", "verification_codes", ["subject", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_verification_codes_subject", table_name="verification_codes")
    with op.batch_alter_table("verification_codes") as batch:
        batch.drop_column("failed_at")
        batch.drop_column("subject")
