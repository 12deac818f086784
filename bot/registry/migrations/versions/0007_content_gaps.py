"""answer feedback per article and language, content-gap groups, and staff labels to train on

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gap_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'labelled', 'new_article', 'ignored')", name=op.f("ck_gap_groups_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gap_groups")),
    )
    with op.batch_alter_table("gap_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_groups_registry"), ["registry"], unique=False)
    op.create_table(
        "training_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("gap_group_id", sa.Integer(), nullable=True),
        sa.Column("labelled_by", sa.String(length=100), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_by", sa.String(length=100), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["gap_group_id"], ["gap_groups.id"], name=op.f("fk_training_labels_gap_group_id_gap_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_labels")),
    )
    with op.batch_alter_table("training_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_labels_registry"), ["registry"], unique=False)
        batch_op.create_index(batch_op.f("ix_training_labels_gap_group_id"), ["gap_group_id"], unique=False)
    with op.batch_alter_table("unanswered_questions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="unknown"))
        batch_op.add_column(sa.Column("topic", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("gap_group_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_unanswered_questions_gap_group_id_gap_groups"),
            "gap_groups",
            ["gap_group_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_unanswered_questions_gap_group_id"), ["gap_group_id"], unique=False
        )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registry", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("question", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("question")
        batch_op.drop_column("language")
        batch_op.drop_column("registry")
    with op.batch_alter_table("unanswered_questions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unanswered_questions_gap_group_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_unanswered_questions_gap_group_id_gap_groups"), type_="foreignkey"
        )
        batch_op.drop_column("gap_group_id")
        batch_op.drop_column("topic")
        batch_op.drop_column("kind")
    with op.batch_alter_table("training_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_labels_gap_group_id"))
        batch_op.drop_index(batch_op.f("ix_training_labels_registry"))
    op.drop_table("training_labels")
    with op.batch_alter_table("gap_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gap_groups_registry"))
    op.drop_table("gap_groups")
