"""The scheduler's sweeps besides dispatch. Each takes `now`, is idempotent, and commits its
own work in short transactions (the scheduler process has no request to do it)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Clinic, Enrollment, EnrollmentStatus, Patient
from proms.auth.models import PasswordToken
from proms.notify.base import OutgoingMessage, Rejected, Sender, Uncertain
from proms.outcomes.models import Alert, AlertStatus, AlertTier
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

log = logging.getLogger("proms.scheduler")

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


# The care team's alert email: neutral words and a link, nothing about anyone (no name, score,
# questionnaire or health word), since email travels and is read where others may see it.
ALERT_EMAIL_SUBJECT = "proms: something new in your care team's inbox"
ALERT_EMAIL_TEXT = (
    "Hello,\n\n"
    "There is something new for your care team in proms. Sign in to see it:\n\n"
    "{url}\n\n"
    "This email names no one on purpose: everything is behind the sign-in.\n"
)


def email_alert_mailboxes(
    session: Session, sender: Sender, now: dt.datetime, base_url: str
) -> dict[str, int]:
    """Tell each clinic's care team mailbox (`Clinic.alert_email`) of new urgent alerts.

    One email per clinic and sweep however many alerts are new, carrying only a link to the
    inbox. Each alert is told at most once: its `notified_at` is claimed (compare-and-set,
    committed) before the email goes, so a second scheduler, a crash or a restart never tells it
    twice. An email the server refused is tried again at the next sweep (it never went); one
    whose fate is unknown, or refused for good, is not.
    """
    waiting = (
        select(Alert.id)
        .where(
            Alert.clinic_id == Clinic.id,
            Alert.tier == AlertTier.URGENT,
            Alert.notified_at.is_(None),
            Alert.status != AlertStatus.RESOLVED,
        )
        .exists()
    )
    mailboxes = session.execute(
        select(Clinic.id, Clinic.alert_email)
        .where(Clinic.alert_email.is_not(None), Clinic.alert_email != "", waiting)
        .order_by(Clinic.id)
    ).all()
    session.commit()
    counts = {"emails": 0, "alerts": 0, "retry": 0, "not_sent": 0}
    for clinic_id, address in mailboxes:
        claimed = (
            session.execute(
                update(Alert)
                .where(
                    Alert.clinic_id == clinic_id,
                    Alert.tier == AlertTier.URGENT,
                    Alert.notified_at.is_(None),
                    Alert.status != AlertStatus.RESOLVED,
                )
                .values(notified_at=now)
                .returning(Alert.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        session.commit()
        if not claimed:
            continue  # another scheduler told them
        message = OutgoingMessage(
            notification_id=0,
            idempotency_key=f"alerts:{clinic_id}:{min(claimed)}-{max(claimed)}",
            channel="email",
            to=address,
            subject=ALERT_EMAIL_SUBJECT,
            text=ALERT_EMAIL_TEXT.format(url=f"{base_url}/alerts"),
        )
        try:
            sender.send(message)
        except Rejected as refused:
            log.warning("alert email of clinic %s refused: %s", clinic_id, refused.reason)
            if refused.permanent:
                counts["not_sent"] += 1
                continue
            session.execute(
                update(Alert)
                .where(Alert.id.in_(claimed), Alert.notified_at == now)
                .values(notified_at=None)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            counts["retry"] += 1
            continue
        except Uncertain as unknown:
            log.warning("alert email of clinic %s may not have gone: %s", clinic_id, unknown.reason)
            counts["not_sent"] += 1
            continue
        counts["emails"] += 1
        counts["alerts"] += len(claimed)
    return counts


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
