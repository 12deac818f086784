"""when each WhatsApp number last wrote: the 24-hour customer service window

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_windows",
        sa.Column("wa_id", sa.String(length=32), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("wa_id", name=op.f("pk_whatsapp_windows")),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_windows")
