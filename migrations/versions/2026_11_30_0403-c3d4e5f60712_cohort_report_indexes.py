"""cohort report: indexes for its aggregates, and its snapshots

The cohort report (proms/care/cohort.py) counts a protocol's courses in a few aggregate queries.
Each reads through an index: the courses by protocol and first infusion day, their windows, the
scores of scales with a meaningful-change threshold, the messages sent per window, the links used
to start, and the responses to one questionnaire. On PostgreSQL the indexes carry the columns the
aggregates read (INCLUDE), so the large tables are read index-only. `cohort_snapshot` keeps a
computed report for a few minutes (proms/care/snapshots.py): counts and shares, no patient.

Revision ID: c3d4e5f60712
Revises: b2c3d4e5f601
Create Date: 2026-11-30 04:03:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d4e5f60712"
down_revision: str | None = "b2c3d4e5f601"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, key columns, PostgreSQL INCLUDE columns)
INDEXES = [
    (
        "ix_enrollment_protocol_id_anchor_on",
        "enrollment",
        ["protocol_id", "anchor_on"],
        ["id", "patient_id"],
    ),
    (
        "ix_assessment_enrollment_id",
        "assessment",
        ["enrollment_id"],
        ["timepoint_id", "status", "closes_at"],
    ),
    (
        "ix_score_scale_enrollment_id",
        "score",
        ["scale", "enrollment_id"],
        [
            "timepoint_key",
            "instrument_code",
            "instrument_version",
            "change_by_threshold",
            "change_by_individual",
            "improvement",
        ],
    ),
    (
        "ix_notification_assessment_id_status_channel",
        "notification",
        ["assessment_id", "status", "channel"],
        ["delivery_status", "id"],
    ),
    (
        "ix_access_token_last_used_at_notification_id",
        "access_token",
        ["last_used_at", "notification_id"],
        [],
    ),
    ("ix_survey_response_instrument_id_status", "survey_response", ["instrument_id", "status"], []),
]


def upgrade() -> None:
    for name, table, columns, include in INDEXES:
        op.create_index(name, table, columns, unique=False, postgresql_include=include)
    op.create_table(
        "cohort_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_snapshot")),
        sa.UniqueConstraint("key", name=op.f("uq_cohort_snapshot_key")),
    )


def downgrade() -> None:
    op.drop_table("cohort_snapshot")
    for name, table, _columns, _include in reversed(INDEXES):
        op.drop_index(name, table_name=table)
