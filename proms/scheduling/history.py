"""Outbox rows in words: what became of each message, as staff read it.

The patient page (care) and the coordinator's course page and worklist (admin) show the same
lines, so every page says a message's fate the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin.models import Patient
from proms.scheduling.models import (
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scheduling.rules import SKIP_LABELS

# Why a message was not sent: planning's reasons (rules.SKIP_LABELS) and the dispatcher's.
NOT_SENT_REASONS = {
    **{skip.value: label for skip, label in SKIP_LABELS.items()},
    "completed": "the questionnaire was answered",
    "withdrawn": "the course was withdrawn",
    "rescheduled": "the window moved",
    "superseded": "a later reminder went instead",
    "patient_cap": "the patient's daily limit of messages lasted until the window closed",
}

CHANNEL_WORDS = {"email": "email", "sms": "text message", "none": "no channel"}
DELIVERED = ("delivered", "read")
UNDELIVERED = ("undelivered", "failed")
RESOLUTION_WORDS = {
    "marked_sent": "staff marked it as sent",
    "resent": "staff sent a new link in its place",
}

# A message due this long ago and still waiting suggests the scheduler is not running (it
# sends every 30 seconds).
SCHEDULER_LATE = dt.timedelta(minutes=15)

UNKNOWN_WORDS = "the scheduler stopped while sending; it may have arrived"

# Statuses of a message that went, or was tried.
TRIED = (
    NotificationStatus.SENDING,
    NotificationStatus.SENT,
    NotificationStatus.FAILED,
    NotificationStatus.UNKNOWN,
)

# Rows the patient page shows; the course pages show them all.
HISTORY_LIMIT = 20


@dataclass(frozen=True, slots=True)
class MessageLine:
    """One outbox row as staff read it."""

    row: Notification
    label: str  # "Invitation", "Reminder 2", "New link (sent again)"
    timepoint: str | None
    channel: str
    status: str  # planned, sending, sent, delivered, failed, may not have arrived, not sent
    reason: str | None  # why, when the status needs one
    resolution: str | None

    @property
    def is_problem(self) -> bool:
        return self.status in ("failed", "may not have arrived", "not delivered")


def describe_message(row: Notification, now: dt.datetime) -> MessageLine:
    """The words for one outbox row at `now`."""
    status, reason = _message_status(row, now)
    return MessageLine(
        row=row,
        label=message_label(row),
        timepoint=row.assessment.timepoint.label if row.assessment else None,
        channel=CHANNEL_WORDS.get(row.channel.value, row.channel.value),
        status=status,
        reason=reason,
        resolution=RESOLUTION_WORDS.get(row.resolution or "", row.resolution),
    )


def message_label(row: Notification) -> str:
    """Invitation, Reminder N (its number from the planned row's key), or New link."""
    if row.kind is NotificationKind.NEW_LINK:
        if row.idempotency_key.endswith(":resend"):
            return "New link (sent again)"
        return "New link (the patient asked)"
    if row.kind is NotificationKind.INVITE:
        return "Invitation"
    # assessment:<id>:<opening day>:reminder:<number>:<channel> (scheduling.planning.message_key)
    parts = row.idempotency_key.split(":")
    if len(parts) == 6 and parts[3] == "reminder" and parts[4].isdigit():
        return f"Reminder {parts[4]}"
    return "Reminder"


def _message_status(row: Notification, now: dt.datetime) -> tuple[str, str | None]:
    match row.status:
        case NotificationStatus.PENDING:
            if row.attempts:
                tries = "once" if row.attempts == 1 else f"{row.attempts} times"
                return "planned", f"tried {tries}, trying again: {row.last_error or 'no reason'}"
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return "planned", "held by quiet hours or the patient's daily limit"
            if row.send_after <= now - SCHEDULER_LATE:
                return (
                    "planned",
                    "its time has passed and it has not gone: is the scheduler running?",
                )
            if row.send_after <= now:
                return "planned", "due: it goes within a minute"
            return "planned", None
        case NotificationStatus.SENDING:
            return "sending", None
        case NotificationStatus.SENT:
            if row.delivery_status in DELIVERED:
                return "delivered", None
            if row.delivery_status in UNDELIVERED:
                return "not delivered", f"the phone company reported it {row.delivery_status}"
            return "sent", None
        case NotificationStatus.FAILED:
            return "failed", row.last_error or "no reason given"
        case NotificationStatus.UNKNOWN:
            return "may not have arrived", UNKNOWN_WORDS
        case NotificationStatus.CANCELLED:
            reason = row.cancel_reason or ""
            return "not sent", NOT_SENT_REASONS.get(reason, reason.replace("_", " ") or None)
    return row.status.value, None


@dataclass(frozen=True, slots=True)
class RecentMessages:
    """The patient page's history: the latest messages, how many older, what comes next."""

    lines: list[MessageLine]
    older: int
    upcoming: int
    next_planned: MessageLine | None


def recent_messages(
    session: Session, patient: Patient, now: dt.datetime, limit: int = HISTORY_LIMIT
) -> RecentMessages:
    """Messages whose time has come or that were tried, most recent first; then the plan.

    A message cancelled ahead of its time (a withdrawal, an opt-out) is part of the plan the
    course page shows, not of what happened.

    One statement reads the patient's whole outbox by its index (a few dozen rows a course),
    whatever the size of the table: counting the patient's waiting messages from the
    (status, send_after) index instead would read every clinic's waiting messages. Their
    questionnaires are the patient page's, already loaded: no statement per row.
    """
    rows = session.scalars(select(Notification).where(Notification.patient_id == patient.id)).all()
    happened = sorted(
        (r for r in rows if r.send_after <= now or r.status in TRIED),
        key=lambda r: (r.send_after, r.id),
        reverse=True,
    )
    waiting = sorted(
        (r for r in rows if r.status is NotificationStatus.PENDING and r.send_after > now),
        key=lambda r: (r.send_after, r.id),
    )
    return RecentMessages(
        lines=[describe_message(row, now) for row in happened[:limit]],
        older=max(0, len(happened) - limit),
        upcoming=len(waiting),
        next_planned=describe_message(waiting[0], now) if waiting else None,
    )
