"""message dispatch: hand-over, delivery, unsubscribe, resolution

New nullable columns and indexes on the outbox, and an index of patients' mobile numbers (a
reply to a text names only the number), each added in place (no copy of the table on
SQLite, whose copy would trip the foreign keys that point at it).

Revision ID: ae00a4bb4c6e
Revises: c7e78b9524c9
Create Date: 2026-11-30 00:18:30.564911+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ae00a4bb4c6e"
down_revision: str | None = "c7e78b9524c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column]:
    return [
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_status", sa.String(length=20), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribe_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    ]


# (table, name, columns, unique)
INDEXES = [
    ("notification", "ix_notification_patient_id_sent_at", ["patient_id", "sent_at"], False),
    ("notification", "ix_notification_provider_message_id", ["provider_message_id"], False),
    ("notification", "ix_notification_unsubscribe_hash", ["unsubscribe_hash"], True),
    ("patient", "ix_patient_phone", ["phone"], False),
]


def upgrade() -> None:
    for column in _columns():
        op.add_column("notification", column)
    for table, name, columns, unique in INDEXES:
        op.create_index(name, table, columns, unique=unique)


def downgrade() -> None:
    for table, name, _columns_of, _unique in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("notification", recreate="never") as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
