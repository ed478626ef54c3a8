"""The coordinator's worklist: who needs something done today. Read-only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.scheduling.models import (
    OPEN_STATUSES,
    OVERDUE_WITHIN,
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)

# Rows shown per section; the count says how many there are in all.
SECTION_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Entry:
    patient: Patient
    assessment: Assessment | None = None
    notification: Notification | None = None


@dataclass(slots=True)
class Section:
    key: str
    title: str
    explanation: str
    entries: list[Entry] = field(default_factory=list)
    total: int = 0


def worklist(session: Session, clinic_ids: Sequence[int], now: dt.datetime) -> list[Section]:
    """Overdue, due today, open and not started, new-link requests, message problems, opt-outs."""
    overdue = Section(
        "overdue",
        "Overdue",
        "Open, nothing answered, and the window closes within two days.",
    )
    due_today = Section("due_today", "Due today", "The questionnaire's due day is today.")
    not_started = Section(
        "not_started", "Open, not started", "Open now; the patient has not begun."
    )
    for assessment in _open_assessments(session, clinic_ids, now):
        patient = assessment.enrollment.patient
        entry = Entry(patient, assessment)
        today = now.astimezone(ZoneInfo(patient.time_zone)).date()
        due_on = assessment.due_at.astimezone(ZoneInfo(patient.time_zone)).date()
        not_begun = assessment.status is AssessmentStatus.SCHEDULED
        if not_begun and assessment.closes_at <= now + OVERDUE_WITHIN:
            _add(overdue, entry)
        elif due_on == today:
            _add(due_today, entry)
        elif not_begun:
            _add(not_started, entry)
    new_links = Section(
        "new_link",
        "Asked for a new link",
        "The patient's link had expired and they asked for a new one.",
    )
    for row in _notifications(
        session,
        clinic_ids,
        kinds=[NotificationKind.NEW_LINK],
        statuses=[NotificationStatus.PENDING],
    ):
        _add(new_links, Entry(row.patient, row.assessment, row))
    problems = Section(
        "messages",
        "Messages that failed or may not have arrived",
        "Failed after retries, or a crash left delivery uncertain: call the patient.",
    )
    for row in _notifications(
        session, clinic_ids, statuses=[NotificationStatus.FAILED, NotificationStatus.UNKNOWN]
    ):
        _add(problems, Entry(row.patient, row.assessment, row))
    opted_out = Section(
        "opted_out",
        "Opted out, course still running",
        "No messages reach these patients: they need a call or a link by hand.",
    )
    for patient in _opted_out(session, clinic_ids):
        _add(opted_out, Entry(patient))
    return [overdue, due_today, not_started, new_links, problems, opted_out]


def _add(section: Section, entry: Entry) -> None:
    section.total += 1
    if len(section.entries) < SECTION_LIMIT:
        section.entries.append(entry)


def _open_assessments(
    session: Session, clinic_ids: Sequence[int], now: dt.datetime
) -> Sequence[Assessment]:
    return session.scalars(
        select(Assessment)
        .join(Assessment.enrollment)
        .join(Enrollment.patient)
        .where(
            Patient.clinic_id.in_(clinic_ids),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.opens_at <= now,
            Assessment.closes_at > now,
        )
        .options(contains_eager(Assessment.enrollment).contains_eager(Enrollment.patient))
        .order_by(Assessment.closes_at, Patient.family_name, Patient.given_name, Assessment.id)
    ).all()


def _notifications(
    session: Session,
    clinic_ids: Sequence[int],
    *,
    statuses: Sequence[NotificationStatus],
    kinds: Sequence[NotificationKind] | None = None,
) -> Sequence[Notification]:
    query = (
        select(Notification)
        .join(Notification.patient)
        .where(Patient.clinic_id.in_(clinic_ids), Notification.status.in_(statuses))
        .options(contains_eager(Notification.patient))
        .order_by(Notification.created_at, Notification.id)
    )
    if kinds is not None:
        query = query.where(Notification.kind.in_(kinds))
    return session.scalars(query).all()


def _opted_out(session: Session, clinic_ids: Sequence[int]) -> Sequence[Patient]:
    active = (
        select(func.count(Enrollment.id))
        .where(Enrollment.patient_id == Patient.id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .scalar_subquery()
    )
    return session.scalars(
        select(Patient)
        .where(Patient.clinic_id.in_(clinic_ids), Patient.opted_out_at.is_not(None), active > 0)
        .order_by(Patient.family_name, Patient.given_name, Patient.id)
    ).all()
