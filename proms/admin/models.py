"""Clinics, patients, instruments, protocols, enrollments and treatment sessions."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.scheduling.models import Assessment


class Channel(enum.StrEnum):
    """How a patient prefers to get links."""

    EMAIL = "email"
    SMS = "sms"
    NONE = "none"  # staff reach the patient by phone and hand out links themselves


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class SessionStatus(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    MISSED = "missed"


# The standardized course: five infusions on consecutive days from the anchor date. Here, with
# the model, so that every part may read them (the care team's cohort report counts courses that
# completed all their days); proms.admin.courses records the days.
COURSE_DAYS = 5

# Side effects staff note after an infusion (the reference study's and the checklist's terms).
SIDE_EFFECTS = {
    "dissociation": "Dissociation or feeling unreal",
    "hallucinations": "Hallucinations or vivid dreams",
    "nausea": "Nausea or vomiting",
    "dizziness": "Dizziness",
    "headache": "Headache",
    "sedation": "Drowsiness or sedation",
    "blood_pressure": "Raised blood pressure",
    "anxiety": "Anxiety or agitation",
    "blurred_vision": "Blurred vision",
}


class Clinic(db.Model):
    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    # Whether patients see their own scores on the thank-you page.
    show_patient_scores: Mapped[bool] = mapped_column(default=False, server_default=false())
    # No message goes out between these local times (the patient's zone); may wrap midnight.
    quiet_hours_start: Mapped[dt.time] = mapped_column(
        Time, default=dt.time(21, 0), server_default="21:00:00"
    )
    quiet_hours_end: Mapped[dt.time] = mapped_column(
        Time, default=dt.time(8, 0), server_default="08:00:00"
    )
    # A returning patient's new course may reuse a baseline answered this many days before it.
    baseline_reuse_days: Mapped[int] = mapped_column(default=30, server_default="30")
    # The care team's mailbox: told (a link only) when an urgent alert is raised. None: no email.
    alert_email: Mapped[str | None] = mapped_column(String(254))
    # What happens next, on the thank-you page, per patient language; None: the default text.
    next_steps_en: Mapped[str | None] = mapped_column(String(1000))
    next_steps_es: Mapped[str | None] = mapped_column(String(1000))
    # Every staff member here signs in with a code as well as the password (proms.auth.mfa);
    # admins always do, whatever this says.
    requires_mfa: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<Clinic {self.slug}>"

    def next_steps(self, language: str) -> str | None:
        """The clinic's own thank-you text in `language`, if it wrote one."""
        return {"en": self.next_steps_en, "es": self.next_steps_es}.get(language)


class Patient(db.Model):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="RESTRICT"))
    mrn: Mapped[str] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_on: Mapped[dt.date | None] = mapped_column(Date)
    email: Mapped[str | None] = mapped_column(String(254))
    # E.164, e.g. +12165550100; indexed for replies to texts (STOP), which name only the number.
    phone: Mapped[str | None] = mapped_column(String(16), index=True)
    preferred_channel: Mapped[Channel] = mapped_column(
        enum_type(Channel, "channel"), default=Channel.EMAIL, server_default=Channel.EMAIL.value
    )
    time_zone: Mapped[str] = mapped_column(String(64))  # IANA name
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    opted_out_at: Mapped[dt.datetime | None]
    opted_out_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    opt_out_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship()
    enrollments: Mapped[list[Enrollment]] = relationship(
        back_populates="patient", order_by="Enrollment.anchor_on"
    )

    __table_args__ = (
        UniqueConstraint("clinic_id", "mrn"),
        CheckConstraint(
            "phone IS NULL OR (phone LIKE '+%' AND length(phone) BETWEEN 8 AND 16)",
            name="phone_e164",
        ),
        CheckConstraint("length(mrn) > 0", name="mrn_not_empty"),
        # The staff patient list: one clinic by name, then id (its pages' order), read from the
        # index alone.
        Index(None, "clinic_id", "family_name", "given_name", "id"),
    )

    @property
    def display_name(self) -> str:
        return f"{self.family_name}, {self.given_name}"

    def __repr__(self) -> str:
        return f"<Patient {self.id}>"


class Protocol(db.Model):
    """A follow-up schedule. Versions are immutable once used; an edit makes a new version."""

    __tablename__ = "protocol"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="RESTRICT"))
    slug: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # What day 0 is, in the coordinator's words.
    anchor_label: Mapped[str] = mapped_column(
        String(100), default="First infusion day", server_default="First infusion day"
    )
    # Message channels in order of preference, e.g. ["email", "sms"].
    channels: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["email", "sms"], server_default='["email", "sms"]'
    )
    # Every time point falls within this many days of the anchor (its window may run past it).
    horizon_days: Mapped[int] = mapped_column(default=180, server_default="180")
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Ask for the date of birth before the first question.
    requires_identity_check: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship()
    timepoints: Mapped[list[ProtocolTimepoint]] = relationship(
        back_populates="protocol",
        order_by="ProtocolTimepoint.position",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        UniqueConstraint("clinic_id", "slug", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class ProtocolTimepoint(db.Model):
    """One time point of a protocol, relative to the enrollment's anchor date."""

    __tablename__ = "protocol_timepoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocol.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))  # stable: "baseline", "month_3"
    label: Mapped[str] = mapped_column(String(100))
    position: Mapped[int]
    offset_days: Mapped[int]
    window_before_days: Mapped[int] = mapped_column(default=0, server_default="0")
    window_after_days: Mapped[int] = mapped_column(default=0, server_default="0")
    send_time_local: Mapped[dt.time] = mapped_column(Time)
    # Days after the invitation on which to remind, e.g. [2, 5].
    reminder_offsets_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Instrument codes in the order the patient answers them.
    instrument_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The version each code is pinned to ({"promis-pi-4a": "1.0"}); a code missing here (rows
    # from before pinning) is answered in the catalogue's current version.
    instrument_versions: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )

    protocol: Mapped[Protocol] = relationship(back_populates="timepoints")

    __table_args__ = (
        UniqueConstraint("protocol_id", "key"),
        UniqueConstraint("protocol_id", "position"),
        CheckConstraint(
            "window_before_days >= 0 AND window_after_days >= 0", name="window_not_negative"
        ),
    )


class Enrollment(db.Model):
    """A patient on one protocol version from an anchor date: one treatment course."""

    __tablename__ = "enrollment"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocol.id", ondelete="RESTRICT"))
    anchor_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[EnrollmentStatus] = mapped_column(
        enum_type(EnrollmentStatus, "enrollment_status"),
        default=EnrollmentStatus.ACTIVE,
        server_default=EnrollmentStatus.ACTIVE.value,
    )
    withdrawn_at: Mapped[dt.datetime | None]
    withdrawal_reason: Mapped[str | None] = mapped_column(String(500))
    withdrawn_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    # A returning patient's course that reuses the baseline of an earlier course.
    baseline_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="enrollments")
    protocol: Mapped[Protocol] = relationship()
    sessions: Mapped[list[TreatmentSession]] = relationship(
        back_populates="enrollment", order_by="TreatmentSession.day_number"
    )
    assessments: Mapped[list[Assessment]] = relationship(
        back_populates="enrollment", order_by="Assessment.due_at"
    )

    __table_args__ = (
        CheckConstraint(
            "(status = 'withdrawn') = (withdrawn_at IS NOT NULL)", name="withdrawn_has_timestamp"
        ),
        # The cohort report: a protocol's courses by first infusion day.
        Index(None, "protocol_id", "anchor_on", postgresql_include=["id", "patient_id"]),
    )


class TreatmentSession(db.Model):
    """One infusion day of a course."""

    __tablename__ = "treatment_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id", ondelete="CASCADE"))
    day_number: Mapped[int]
    scheduled_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[SessionStatus] = mapped_column(
        enum_type(SessionStatus, "session_status"),
        default=SessionStatus.PLANNED,
        server_default=SessionStatus.PLANNED.value,
    )
    performed_at: Mapped[dt.datetime | None]
    dose_mg_per_kg: Mapped[float | None]
    side_effects: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    missed_reason: Mapped[str | None] = mapped_column(String(200))
    recorded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    recorded_at: Mapped[dt.datetime | None]

    enrollment: Mapped[Enrollment] = relationship(back_populates="sessions")

    __table_args__ = (
        UniqueConstraint("enrollment_id", "day_number"),
        CheckConstraint("day_number >= 1", name="day_number_positive"),
        CheckConstraint(
            "(status = 'done') = (performed_at IS NOT NULL)", name="done_has_timestamp"
        ),
        # The cohort report: each course's days, given or missed, and the side effects noted,
        # read index-only on PostgreSQL.
        Index(None, "enrollment_id", postgresql_include=["status", "side_effects"]),
    )
