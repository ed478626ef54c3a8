"""Coordinators' decisions on messages: a failed or uncertain one marked as sent or sent again,
and an invitation sent now instead of at its planned time. Flush, never commit.

The scheduler never resends a message whose fate is unknown (docs/messages.md): the coordinator
calls the patient and decides here. Sending again queues a fresh "new link" row that the
dispatcher sends on its next sweep, with a link of its own.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proms.admin.errors import AdminError
from proms.admin.models import Channel, EnrollmentStatus
from proms.scheduling.models import (
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scheduling.planning import lock, quiet_hours_of

MARKED_SENT = "marked_sent"
RESENT = "resent"

# What Twilio's status callback reports for a text that never reached the phone.
UNDELIVERED = ("undelivered", "failed")

# The fields an action changes, for the audit event's before and after.
AUDIT_FIELDS = ("status", "sent_at", "resolution", "resolved_at", "send_after", "next_attempt_at")

UNKNOWN_REASON = "The scheduler stopped while sending; it may have arrived."


def needs_decision() -> ColumnElement[bool]:
    """Failed, uncertain or reported undelivered, and nobody has decided yet (a query clause)."""
    return and_(
        Notification.resolution.is_(None),
        or_(
            Notification.status.in_((NotificationStatus.FAILED, NotificationStatus.UNKNOWN)),
            and_(
                Notification.status == NotificationStatus.SENT,
                Notification.channel == Channel.SMS,
                Notification.delivery_status.in_(UNDELIVERED),
            ),
        ),
    )


def is_undecided(row: Notification) -> bool:
    """The same test as `needs_decision`, on a loaded row."""
    if row.resolution is not None:
        return False
    if row.status in (NotificationStatus.FAILED, NotificationStatus.UNKNOWN):
        return True
    return (
        row.status is NotificationStatus.SENT
        and row.channel is Channel.SMS
        and row.delivery_status in UNDELIVERED
    )


def problem(row: Notification) -> str:
    """What went wrong, in words a coordinator can say to a patient."""
    if row.status is NotificationStatus.UNKNOWN:
        if row.last_error and not row.last_error.startswith("the scheduler stopped"):
            return f"It may have arrived: the provider's answer was unclear ({row.last_error})."
        return UNKNOWN_REASON
    if row.status is NotificationStatus.SENT:
        return f"Sent, but the phone company reported it {row.delivery_status}."
    tries = "one try" if row.attempts == 1 else f"{row.attempts} tries"
    return f"Failed after {tries}: {row.last_error or 'no reason given'}"


def attempted_at(row: Notification) -> dt.datetime:
    """When the message went or was tried last (its planned time if it never was)."""
    return row.sent_at or row.handed_over_at or row.send_after


def mark_sent(session: Session, row: Notification, *, now: dt.datetime) -> None:
    """The patient confirmed the message arrived: nothing more to do about it."""
    lock(session, row)
    _check_undecided(row)
    if row.status is NotificationStatus.UNKNOWN:
        row.status = NotificationStatus.SENT
        row.sent_at = row.handed_over_at or now
    row.resolution = MARKED_SENT
    row.resolved_at = now
    session.flush()


def resend_refusal(row: Notification, now: dt.datetime) -> str | None:
    """Why the message cannot be sent again now, or None if it can."""
    assessment = row.assessment
    if assessment is None or assessment.enrollment.status is not EnrollmentStatus.ACTIVE:
        return "The course was withdrawn, so there is no questionnaire to send a link to."
    if not assessment.is_open(now):
        state = assessment.state_at(now)
        if state == "upcoming":
            return "The questionnaire is not open yet."
        if state == "completed":
            return "The patient has answered the questionnaire since."
        return "The questionnaire has closed, so a new link would not work."
    if row.patient.opted_out_at is not None:
        return "The patient opted out of messages."
    if resend_channel(row) is None:
        return "No email address or mobile number is on file; add one, or call with a link."
    return None


def resend_channel(row: Notification) -> Channel | None:
    """The original's channel if its contact is still on file, else the other one that is."""
    patient = row.patient
    on_file = {Channel.EMAIL: bool(patient.email), Channel.SMS: bool(patient.phone)}
    if on_file.get(row.channel):
        return row.channel
    return next((channel for channel, present in on_file.items() if present), None)


def resend_key(row: Notification) -> str:
    return f"notification:{row.id}:resend"


def send_again(session: Session, row: Notification, *, now: dt.datetime) -> Notification:
    """The patient confirmed the message did not arrive: queue a new link in its place.

    One per message: a second click finds the first decision (the row lock) or, past it, the
    unique key, and is refused.
    """
    lock(session, row)
    _check_undecided(row)
    refusal = resend_refusal(row, now)
    if refusal is not None:
        raise AdminError(refusal)
    channel = resend_channel(row)
    assert channel is not None  # resend_refusal checked
    fresh = Notification(
        idempotency_key=resend_key(row),
        patient_id=row.patient_id,
        assessment_id=row.assessment_id,
        kind=NotificationKind.NEW_LINK,
        channel=channel,
        send_after=now,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(fresh)
    except IntegrityError:
        raise AdminError("This message was already sent again.") from None
    row.resolution = RESENT
    row.resolved_at = now
    session.flush()
    return fresh


def _check_undecided(row: Notification) -> None:
    if row.resolution == MARKED_SENT:
        raise AdminError("This message was already marked as sent.")
    if row.resolution == RESENT:
        raise AdminError("This message was already sent again.")
    if not is_undecided(row):
        raise AdminError("This message did not fail: there is nothing to decide.")


def send_now_refusal(row: Notification, now: dt.datetime) -> str | None:
    """Why an invitation cannot be sent now instead of at its time, or None if it can."""
    if row.kind is not NotificationKind.INVITE:
        return "Only an invitation can be sent now."
    if row.status is not NotificationStatus.PENDING:
        return "This invitation is not waiting to be sent."
    assessment = row.assessment
    if assessment is None or assessment.enrollment.status is not EnrollmentStatus.ACTIVE:
        return "The course was withdrawn."
    if not assessment.is_open(now):
        return "The questionnaire is not open now: the invitation goes when it opens."
    held = row.next_attempt_at is not None and row.next_attempt_at > now
    if row.send_after <= now and not held:
        return "This invitation is due already: it goes within a minute."
    return None


def send_now(session: Session, row: Notification, *, now: dt.datetime) -> None:
    """Bring a pending invitation forward to now: the scheduler sends it on its next sweep."""
    lock(session, row)
    refusal = send_now_refusal(row, now)
    if refusal is not None:
        raise AdminError(refusal)
    row.send_after = now
    row.next_attempt_at = None
    session.flush()


def quiet_until(row: Notification, now: dt.datetime) -> dt.datetime | None:
    """When the clinic's quiet hours end, in the patient's time, if they hold a message now."""
    patient = row.patient
    local = now.astimezone(ZoneInfo(patient.time_zone))
    allowed = quiet_hours_of(patient.clinic).next_allowed(local)
    return allowed if allowed != local else None
