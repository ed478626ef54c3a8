"""cohort report speed indexes

The cohort report (proms/care/cohort.py) counted afresh reads each large table once, in an order
that suits its aggregate, from an index that holds every column it reads (INCLUDE, PostgreSQL):

- score: the groups of the outcome table in order (scale, time point, instrument, version, both
  change classes), so the scores are counted as they arrive, in parallel; it replaces
  (scale, enrollment_id), which only the report read;
- notification: only the messages sent, by window and channel (a partial index: a third of the
  outbox is never sent); it replaces (assessment_id, status, channel);
- survey_response: the responses to one questionnaire with their window, which replaces
  (instrument_id, status); survey_answer: the answers by item, so that the side-effect
  checklist's answers lie side by side, not spread among every questionnaire's;
- treatment_session: each course's days with their status and the side effects noted.

Revision ID: e5f607182934
Revises: d4e5f6071823
Create Date: 2026-11-30 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5f607182934"
down_revision: str | None = "d4e5f6071823"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENT = "status = 'sent'"


def upgrade() -> None:
    op.drop_index(op.f("ix_score_scale_enrollment_id"), table_name="score")
    op.create_index(
        "ix_score_report_groups",
        "score",
        [
            "scale",
            "timepoint_key",
            "instrument_code",
            "instrument_version",
            "change_by_threshold",
            "change_by_individual",
        ],
        postgresql_include=["enrollment_id", "improvement"],
    )
    op.drop_index(op.f("ix_notification_assessment_id_status_channel"), table_name="notification")
    op.create_index(
        op.f("ix_notification_assessment_id_channel"),
        "notification",
        ["assessment_id", "channel"],
        postgresql_include=["delivery_status", "id"],
        postgresql_where=sa.text(SENT),
        sqlite_where=sa.text(SENT),
    )
    op.drop_index(op.f("ix_survey_response_instrument_id_status"), table_name="survey_response")
    op.create_index(
        op.f("ix_survey_response_instrument_id_status_assessment_id"),
        "survey_response",
        ["instrument_id", "status", "assessment_id"],
        postgresql_include=["id"],
    )
    op.create_index(
        op.f("ix_survey_answer_item_id_response_id"),
        "survey_answer",
        ["item_id", "response_id"],
        postgresql_include=["value"],
    )
    op.create_index(
        op.f("ix_treatment_session_enrollment_id"),
        "treatment_session",
        ["enrollment_id"],
        postgresql_include=["status", "side_effects"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_treatment_session_enrollment_id"), table_name="treatment_session")
    op.drop_index(op.f("ix_survey_answer_item_id_response_id"), table_name="survey_answer")
    op.drop_index(
        op.f("ix_survey_response_instrument_id_status_assessment_id"), table_name="survey_response"
    )
    op.create_index(
        op.f("ix_survey_response_instrument_id_status"),
        "survey_response",
        ["instrument_id", "status"],
    )
    op.drop_index(op.f("ix_notification_assessment_id_channel"), table_name="notification")
    op.create_index(
        op.f("ix_notification_assessment_id_status_channel"),
        "notification",
        ["assessment_id", "status", "channel"],
        postgresql_include=["delivery_status", "id"],
    )
    op.drop_index("ix_score_report_groups", table_name="score")
    op.create_index(
        op.f("ix_score_scale_enrollment_id"),
        "score",
        ["scale", "enrollment_id"],
        postgresql_include=[
            "timepoint_key",
            "instrument_code",
            "instrument_version",
            "change_by_threshold",
            "change_by_individual",
            "improvement",
        ],
    )
