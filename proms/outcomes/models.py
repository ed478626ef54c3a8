"""Stored outcomes: the scores of submitted responses (denormalised for trends) and alerts."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.admin.models import Patient
    from proms.auth.models import StaffUser
    from proms.scheduling.models import Assessment
    from proms.surveys.models import SurveyResponse


class AlertKind(enum.StrEnum):
    WORSENING = "worsening"  # meaningful worsening from baseline (the individual criterion)
    SIDE_EFFECT = "side_effect"  # a severe side effect reported (an instrument's item rule)
    SEVERITY = "severity"  # a score at a severe level (an instrument's severity rule)


class AlertTier(enum.StrEnum):
    """How soon the care team should act. The inbox lists them in this order."""

    URGENT = "urgent"
    NEXT_VISIT = "next_visit"
    INFORMATION = "information"


TIER_ORDER = (AlertTier.URGENT, AlertTier.NEXT_VISIT, AlertTier.INFORMATION)
TIER_LABELS = {
    AlertTier.URGENT: "Urgent",
    AlertTier.NEXT_VISIT: "Next visit",
    AlertTier.INFORMATION: "Information",
}


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # someone has seen it and is on it
    RESOLVED = "resolved"  # dealt with; no longer in the list of open alerts


class Score(db.Model):
    """One scale of one submitted response (PASS-20 has a total and four subscales)."""

    __tablename__ = "score"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_response.id", ondelete="CASCADE"))
    scale: Mapped[str] = mapped_column(String(32), default="total", server_default="total")
    # Denormalised from response -> assessment -> enrollment -> patient for trend queries.
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"))
    timepoint_key: Mapped[str] = mapped_column(String(32))
    instrument_code: Mapped[str] = mapped_column(String(64))
    instrument_version: Mapped[str] = mapped_column(String(32))
    domain: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[dt.datetime]  # when the patient submitted
    raw_score: Mapped[float | None]
    t_score: Mapped[float | None]
    standard_error: Mapped[float | None]
    n_answered: Mapped[int]
    method: Mapped[str] = mapped_column(String(16))  # table, pattern, sum, mean, none
    scoring_version: Mapped[str] = mapped_column(String(32))
    scored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Change from the course's baseline by the instrument's primary threshold for the scale,
    # stored when scored (and again by `rescore`) so that lists, filters and cohort reports
    # aggregate in SQL. All NULL for a baseline score and for scales without a threshold;
    # `change_by_*` hold proms.scoring.change.Classification values.
    improvement: Mapped[float | None]  # in the instrument's direction: positive = better
    percent_improvement: Mapped[float | None]
    reliable_change_index: Mapped[float | None]  # raw direction: negative = lower score
    change_by_threshold: Mapped[str | None] = mapped_column(String(24))
    change_by_individual: Mapped[str | None] = mapped_column(String(24))
    change_reason: Mapped[str | None] = mapped_column(String(200))  # why "not comparable"

    patient: Mapped[Patient] = relationship()
    response: Mapped[SurveyResponse] = relationship()

    __table_args__ = (
        UniqueConstraint("response_id", "scale"),
        CheckConstraint("standard_error IS NULL OR standard_error > 0", name="se_positive"),
        CheckConstraint("n_answered >= 0", name="n_answered_not_negative"),
        # A patient's scores; the latest per scale and domain (the patient list and its
        # worsened/improved filters, index-only on PostgreSQL).
        Index(
            None,
            "patient_id",
            "scale",
            "domain",
            "observed_at",
            "id",
            postgresql_include=["change_by_individual", "change_by_threshold"],
        ),
        # Cohort reports: one domain at one time point.
        Index(None, "domain", "timepoint_key"),
        # The cohort report's aggregate (proms/care/cohort.py): its groups in order, and every
        # column it reads, so the scores are counted as they come, index-only on PostgreSQL.
        Index(
            "ix_score_report_groups",
            "scale",
            "timepoint_key",
            "instrument_code",
            "instrument_version",
            "change_by_threshold",
            "change_by_individual",
            postgresql_include=["enrollment_id", "improvement"],
        ),
    )


class Alert(db.Model):
    """Something in a patient's answers the care team should act on.

    One per patient, rule and time point: `rule` is a stable key ("worsening:<code>:<scale>",
    "side_effect:<code>", "severity:<code>:<scale>>=<value>") and the assessment is the time
    point of one course, so a repeated submit or a rescore never files the same alert twice.
    Status moves open -> acknowledged -> resolved (or open -> resolved), each step with who,
    when and a note; nothing is deleted.
    """

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"))
    assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessment.id", ondelete="CASCADE")
    )
    score_id: Mapped[int | None] = mapped_column(ForeignKey("score.id", ondelete="CASCADE"))
    kind: Mapped[AlertKind] = mapped_column(enum_type(AlertKind, "alert_kind"))
    tier: Mapped[AlertTier] = mapped_column(enum_type(AlertTier, "alert_tier"))
    rule: Mapped[str] = mapped_column(String(160))
    timepoint_key: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[AlertStatus] = mapped_column(
        enum_type(AlertStatus, "alert_status"),
        default=AlertStatus.OPEN,
        server_default=AlertStatus.OPEN.value,
    )
    # What raised it (scores, items, the rule's source); `rescore` adds what changed since.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    acknowledgement_note: Mapped[str | None] = mapped_column(String(1000))
    resolved_at: Mapped[dt.datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    resolution_note: Mapped[str | None] = mapped_column(String(1000))
    # When the care team's mailbox was told (the scheduler's alert email): at most once.
    notified_at: Mapped[dt.datetime | None]

    patient: Mapped[Patient] = relationship()
    assessment: Mapped[Assessment | None] = relationship()
    acknowledged_by: Mapped[StaffUser | None] = relationship(foreign_keys=[acknowledged_by_id])
    resolved_by: Mapped[StaffUser | None] = relationship(foreign_keys=[resolved_by_id])

    __table_args__ = (
        CheckConstraint(
            "status = 'resolved' OR (status = 'acknowledged') = (acknowledged_at IS NOT NULL)",
            name="acknowledged_has_timestamp",
        ),
        CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL)", name="resolved_has_timestamp"
        ),
        # One alert per time point (assessment) and rule: inserts skip one that exists.
        Index(None, "assessment_id", "rule", unique=True),
        # The alerts inbox: a clinic's alerts by status, oldest first.
        Index(None, "clinic_id", "status", "created_at"),
        Index(None, "patient_id", "created_at"),
        # Patients with an open alert (the patient list's filter and counts): the unresolved
        # few. Queries repeat the predicate as written (proms.care.services.alert_is_open).
        Index(
            "ix_alert_patient_id_open",
            "patient_id",
            postgresql_where=text("status <> 'resolved'"),
            sqlite_where=text("status <> 'resolved'"),
        ),
    )

    @property
    def is_open(self) -> bool:
        """Not yet resolved (open or acknowledged): what lists count as open alerts."""
        return self.status is not AlertStatus.RESOLVED

    @property
    def superseded(self) -> dict[str, Any] | None:
        """What `rescore` recorded when the rule stopped being met, or None."""
        value = self.detail.get("superseded_by_rescore") if self.detail else None
        return value if isinstance(value, dict) else None
