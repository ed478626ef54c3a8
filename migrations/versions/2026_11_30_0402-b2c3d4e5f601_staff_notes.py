"""staff notes on patients

A new table for the notes the care team writes on a patient page: append-only (the application
never updates or deletes them), keeping their patient and author like audit events do.

Revision ID: b2c3d4e5f601
Revises: a1e4c0f00a11
Create Date: 2026-11-30 04:02:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2c3d4e5f601"
down_revision: str | None = "a1e4c0f00a11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.CheckConstraint("length(text) > 0", name=op.f("ck_staff_note_text_not_empty")),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["staff_user.id"],
            name=op.f("fk_staff_note_author_id_staff_user"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_staff_note_patient_id_patient"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_note")),
    )
    op.create_index(
        op.f("ix_staff_note_patient_id_created_at"),
        "staff_note",
        ["patient_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_note_patient_id_created_at"), table_name="staff_note")
    op.drop_table("staff_note")
