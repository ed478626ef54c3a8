"""survey links: identity check lock, link creator; clinic shows scores

Revision ID: 2d351ddd4368
Revises: 347cf9f6c0bd
Create Date: 2026-11-25 10:26:25.214049+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2d351ddd4368"
down_revision: str | None = "347cf9f6c0bd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_identity_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("identity_locked_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("created_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_access_token_created_by_id_staff_user"),
            "staff_user",
            ["created_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_access_token_failed_identity_count_not_negative"),
            "failed_identity_count >= 0",
        )

    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "show_patient_scores", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("show_patient_scores")

    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_access_token_failed_identity_count_not_negative"), type_="check"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_access_token_created_by_id_staff_user"), type_="foreignkey"
        )
        batch_op.drop_column("created_by_id")
        batch_op.drop_column("identity_locked_until")
        batch_op.drop_column("failed_identity_count")
