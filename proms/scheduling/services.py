"""Scheduling services: sweeps over assessments. Flush, never commit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proms.admin.models import Enrollment, EnrollmentStatus
from proms.scheduling.models import OPEN_STATUSES, Assessment, AssessmentStatus


def expire_closed_assessments(session: Session, now: dt.datetime) -> int:
    """Mark assessments whose window has closed without completion as expired; returns how many."""
    result = session.execute(
        update(Assessment)
        .where(
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.closes_at <= now,
        )
        .values(status=AssessmentStatus.EXPIRED)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


def complete_finished_enrollments(session: Session) -> int:
    """Mark active enrollments whose every assessment is over (done, expired or cancelled)."""
    still_open = (
        select(Assessment.id)
        .where(
            Assessment.enrollment_id == Enrollment.id,
            Assessment.status.in_(OPEN_STATUSES),
        )
        .exists()
    )
    result = session.execute(
        update(Enrollment)
        .where(Enrollment.status == EnrollmentStatus.ACTIVE, ~still_open)
        .values(status=EnrollmentStatus.COMPLETED)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount
