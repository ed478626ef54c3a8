"""instrument snapshots: source column, unique per definition hash

Revision ID: 347cf9f6c0bd
Revises: 8452db6d0615
Create Date: 2026-11-25 10:07:55.145162+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "347cf9f6c0bd"
down_revision: str | None = "8452db6d0615"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instrument", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source",
                sa.Enum(
                    "bundled",
                    "imported",
                    name="instrument_source",
                    native_enum=False,
                    create_constraint=True,
                ),
                server_default="bundled",
                nullable=False,
            )
        )
        batch_op.drop_constraint(batch_op.f("uq_instrument_code_version"), type_="unique")
        batch_op.create_index(
            batch_op.f("ix_instrument_code_version_created_at"),
            ["code", "version", "created_at"],
            unique=False,
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_instrument_code_version_definition_sha256"),
            ["code", "version", "definition_sha256"],
        )


def downgrade() -> None:
    # The old constraint allows one row per code and version: refuse rather than delete
    # snapshots that responses may point at.
    duplicate = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT code, version FROM instrument GROUP BY code, version HAVING count(*) > 1"
            )
        )
        .first()
    )
    if duplicate is not None:
        raise RuntimeError(
            f"cannot downgrade: instrument {duplicate[0]} {duplicate[1]} has several snapshots"
        )
    with op.batch_alter_table("instrument", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_instrument_code_version_definition_sha256"), type_="unique"
        )
        batch_op.drop_index(batch_op.f("ix_instrument_code_version_created_at"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_instrument_code_version"), ["code", "version"]
        )
        # Named explicitly: SQLite's batch copy would otherwise keep the CHECK on the dropped column.
        batch_op.drop_constraint(batch_op.f("ck_instrument_instrument_source"), type_="check")
        batch_op.drop_column("source")
