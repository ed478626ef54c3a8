"""Scheduling services: turn an enrollment into assessments. Flush, never commit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proms.admin.models import Enrollment, EnrollmentStatus
from proms.scheduling.models import OPEN_STATUSES, Assessment, AssessmentStatus
from proms.scheduling.rules import TimepointRule, assessment_windows


def create_assessments(session: Session, enrollment: Enrollment) -> list[Assessment]:
    """Create one assessment per time point of the enrollment's protocol version."""
    timepoints = enrollment.protocol.timepoints
    rules = [
        TimepointRule(
            key=tp.key,
            offset_days=tp.offset_days,
            window_before_days=tp.window_before_days,
            window_after_days=tp.window_after_days,
            send_time_local=tp.send_time_local,
        )
        for tp in timepoints
    ]
    windows = assessment_windows(enrollment.anchor_on, rules, enrollment.patient.time_zone)
    assessments = [
        Assessment(
            enrollment=enrollment,
            timepoint=tp,
            opens_at=window.opens_at,
            due_at=window.due_at,
            closes_at=window.closes_at,
        )
        for tp, window in zip(timepoints, windows, strict=True)
    ]
    session.add_all(assessments)
    session.flush()
    return assessments


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
