"""Assessments (one time point of one enrollment) and the notification outbox."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.admin.models import Channel
from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.admin.models import Enrollment, Patient, ProtocolTimepoint
    from proms.surveys.models import SurveyResponse


class AssessmentStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # window not closed, nothing submitted yet
    IN_PROGRESS = "in_progress"  # the patient has saved answers
    COMPLETED = "completed"
    EXPIRED = "expired"  # the window closed before completion
    CANCELLED = "cancelled"  # withdrawn or rescheduled away


# The statuses of an assessment the patient can still answer (inside its window).
OPEN_STATUSES = frozenset({AssessmentStatus.SCHEDULED, AssessmentStatus.IN_PROGRESS})

# An open window that closes this soon with nothing begun is overdue (worklist, patient list).
OVERDUE_WITHIN = dt.timedelta(days=2)


class NotificationKind(enum.StrEnum):
    INVITE = "invite"
    REMINDER = "reminder"
    NEW_LINK = "new_link"  # the patient asked for a fresh link


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a dispatcher
    SENT = "sent"
    FAILED = "failed"  # gave up after retries
    UNKNOWN = "unknown"  # a crash left delivery uncertain: never resent, a coordinator decides
    CANCELLED = "cancelled"


class Assessment(db.Model):
    __tablename__ = "assessment"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id", ondelete="CASCADE"))
    timepoint_id: Mapped[int] = mapped_column(
        ForeignKey("protocol_timepoint.id", ondelete="RESTRICT")
    )
    opens_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    closes_at: Mapped[dt.datetime]
    status: Mapped[AssessmentStatus] = mapped_column(
        enum_type(AssessmentStatus, "assessment_status"),
        default=AssessmentStatus.SCHEDULED,
        server_default=AssessmentStatus.SCHEDULED.value,
    )
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    enrollment: Mapped[Enrollment] = relationship(back_populates="assessments")
    timepoint: Mapped[ProtocolTimepoint] = relationship()
    responses: Mapped[list[SurveyResponse]] = relationship(
        back_populates="assessment", order_by="SurveyResponse.id"
    )

    __table_args__ = (
        UniqueConstraint("enrollment_id", "timepoint_id"),
        CheckConstraint("opens_at <= due_at AND due_at < closes_at", name="window_ordered"),
        CheckConstraint(
            "(status = 'completed') = (completed_at IS NOT NULL)", name="completed_has_timestamp"
        ),
        # Sweeps: open windows that are closing, by status.
        Index(None, "status", "closes_at"),
        Index(None, "enrollment_id", "due_at"),
        # The cohort report: which windows of its courses count (proms/care/cohort.py).
        Index(None, "enrollment_id", postgresql_include=["timepoint_id", "status", "closes_at"]),
    )

    def state_at(self, now: dt.datetime) -> str:
        """What staff should read, even before a sweep has caught up with the clock."""
        if self.status in OPEN_STATUSES:
            if now >= self.closes_at:
                return "missed"
            if now < self.opens_at:
                return "upcoming"
            return "in progress" if self.status is AssessmentStatus.IN_PROGRESS else "open now"
        return {AssessmentStatus.EXPIRED: "missed"}.get(self.status, self.status.value)

    def is_open(self, now: dt.datetime) -> bool:
        """True while the patient can answer."""
        return self.status in OPEN_STATUSES and self.opens_at <= now < self.closes_at


class Notification(db.Model):
    """One message to send (the outbox). Rows are created in the same transaction as their cause."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Deterministic per cause, e.g. "assessment:12:reminder:2": creating it twice is impossible.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessment.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[NotificationKind] = mapped_column(enum_type(NotificationKind, "notification_kind"))
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"))
    send_after: Mapped[dt.datetime]
    status: Mapped[NotificationStatus] = mapped_column(
        enum_type(NotificationStatus, "notification_status"),
        default=NotificationStatus.PENDING,
        server_default=NotificationStatus.PENDING.value,
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    # Set (and committed) just before the message is handed to the provider: a claim that ends
    # without an outcome after this may have been sent, and becomes UNKNOWN, never resent.
    handed_over_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # What the provider reported later (SMS status callbacks): "delivered", "undelivered", ...
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    delivered_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The hash of the email's unsubscribe link (the link works without an account).
    unsubscribe_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True, index=True)
    # A coordinator's decision on a failed or uncertain message: "marked_sent" or "resent".
    resolution: Mapped[str | None] = mapped_column(String(32))
    resolved_at: Mapped[dt.datetime | None]
    # Why a cancelled message is not sent: "opted_out", "no_contact", "completed", ...
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship()
    assessment: Mapped[Assessment | None] = relationship()

    __table_args__ = (
        CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)", name="sent_has_timestamp"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The dispatcher: due rows by status and time.
        Index(None, "status", "send_after"),
        # The per-patient cap: what was sent to a patient lately.
        Index(None, "patient_id", "sent_at"),
        # The cohort report's message funnel: the messages sent, by window and channel (those
        # alone: a third of the outbox is never sent), read index-only on PostgreSQL.
        Index(
            None,
            "assessment_id",
            "channel",
            postgresql_include=["delivery_status", "id"],
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
    )
