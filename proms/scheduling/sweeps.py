"""The scheduler's sweeps besides dispatch. Each takes `now`, is idempotent, and commits its
own work in short transactions (the scheduler process has no request to do it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.auth.models import PasswordToken
from proms.scheduling.models import (
    OPEN_STATUSES,
    Assessment,
    Notification,
    NotificationStatus,
)
from proms.scheduling.planning import match_plan, outbox_rows, plan_for, write_messages
from proms.scheduling.rules import Skip
from proms.scheduling.services import complete_finished_enrollments, expire_closed_assessments
from proms.surveys.models import AccessToken

# Enrollments reconciled per transaction: short enough not to hold up coordinators' saves.
RECONCILE_CHUNK = 200

# Reconcile looks at the windows open now or opening within this long: each is looked at a few
# hundred times before it opens, and a whole clinic's future is not re-planned every 15 minutes.
RECONCILE_AHEAD = dt.timedelta(days=3)


def close_windows(session: Session, now: dt.datetime) -> dict[str, int]:
    """Windows that ended unanswered become missed; their unsent messages are dropped (never
    sent late); courses with nothing left open are completed."""
    closed_ids = session.scalars(
        select(Assessment.id).where(
            Assessment.status.in_(OPEN_STATUSES), Assessment.closes_at <= now
        )
    ).all()
    missed = expire_closed_assessments(session, now)
    dropped = 0
    for chunk in _chunks(list(closed_ids), 500):
        dropped += session.execute(
            update(Notification)
            .where(
                Notification.assessment_id.in_(chunk),
                Notification.status == NotificationStatus.PENDING,
            )
            .values(status=NotificationStatus.CANCELLED, cancel_reason=Skip.WINDOW_CLOSED.value)
        ).rowcount
    completed = complete_finished_enrollments(session)
    session.commit()
    return {"missed": missed, "dropped": dropped, "completed": completed}


def reconcile(session: Session, now: dt.datetime) -> dict[str, int]:
    """Plan again every active course's windows open now or opening soon (RECONCILE_AHEAD) from
    their current state and fix the outbox where it differs: a schedule heals itself after an
    edit, an import or a restore, before any message of it is due.

    Returns how many courses were looked at and in how many windows the outbox changed.
    """
    ids = session.scalars(
        select(Enrollment.id)
        .where(
            Enrollment.status == EnrollmentStatus.ACTIVE,
            select(Assessment.id)
            .where(_soon(now), Assessment.enrollment_id == Enrollment.id)
            .exists(),
        )
        .order_by(Enrollment.id)
    ).all()
    session.commit()
    changed = 0
    for chunk in _chunks(list(ids), RECONCILE_CHUNK):
        changed += _reconcile_chunk(session, chunk, now)
        session.commit()
    return {"courses": len(ids), "changed": changed}


def _soon(now: dt.datetime) -> ColumnElement[bool]:
    """Windows not answered, not closed, and open or opening within RECONCILE_AHEAD."""
    return and_(
        Assessment.status.in_(OPEN_STATUSES),
        Assessment.closes_at > now,
        Assessment.opens_at <= now + RECONCILE_AHEAD,
    )


def _reconcile_chunk(session: Session, enrollment_ids: Sequence[int], now: dt.datetime) -> int:
    """One chunk in a few queries: its windows, their outbox rows (locked), the new rows."""
    assessments = session.scalars(
        select(Assessment)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Assessment.enrollment_id.in_(enrollment_ids),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            _soon(now),
        )
        .options(
            joinedload(Assessment.enrollment).joinedload(Enrollment.protocol),
            joinedload(Assessment.enrollment)
            .joinedload(Enrollment.patient)
            .joinedload(Patient.clinic),
            joinedload(Assessment.timepoint),
        )
        .order_by(Assessment.id)
    ).all()
    rows = outbox_rows(session, [a.id for a in assessments])
    changed = 0
    for assessment in assessments:
        own = rows.get(assessment.id, [])
        fresh, differs = match_plan(assessment, plan_for(assessment, now, own), own, now=now)
        write_messages(session, assessment, fresh)
        changed += differs
    session.flush()
    return changed


def purge_tokens(session: Session, now: dt.datetime, keep: dt.timedelta) -> dict[str, int]:
    """Delete patient links and staff password links that expired more than `keep` ago.

    Until then an old patient link still says "expired, ask for a new one".
    """
    links = session.execute(delete(AccessToken).where(AccessToken.expires_at < now - keep))
    passwords = session.execute(delete(PasswordToken).where(PasswordToken.expires_at < now - keep))
    session.commit()
    return {"links": links.rowcount, "password_links": passwords.rowcount}


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
