"""The coordinator's worklist: who needs something done today. Read-only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from proms.admin.messages import attempted_at, needs_decision, problem, resend_refusal
from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.scheduling.history import MessageLine, describe_message
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
class Decision:
    """A failed or uncertain message: what it was, what went wrong, whether it can go again."""

    message: MessageLine
    problem: str
    attempted_at: dt.datetime
    resend_refusal: str | None  # why "Send again" cannot be offered; None when it can


@dataclass(frozen=True, slots=True)
class Entry:
    patient: Patient
    assessment: Assessment | None = None
    notification: Notification | None = None
    decision: Decision | None = None


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
    asked = and_(
        Notification.kind == NotificationKind.NEW_LINK,
        Notification.status == NotificationStatus.PENDING,
        # A coordinator's "send again" is a new link too, but nobody needs to act on it.
        Notification.idempotency_key.not_like("notification:%"),
    )
    for row in _notifications(session, clinic_ids, asked):
        _add(new_links, Entry(row.patient, row.assessment, row))
    problems = Section(
        "messages",
        "Messages that failed or may not have arrived",
        "Call the patient. If the message arrived, mark it as sent; if not, send a new link"
        " (while the questionnaire is open).",
    )
    for row in _notifications(session, clinic_ids, needs_decision()):
        decision = Decision(
            describe_message(row, now), problem(row), attempted_at(row), resend_refusal(row, now)
        )
        _add(problems, Entry(row.patient, row.assessment, row, decision))
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
    session: Session, clinic_ids: Sequence[int], which: ColumnElement[bool]
) -> Sequence[Notification]:
    return session.scalars(
        select(Notification)
        .join(Notification.patient)
        .where(Patient.clinic_id.in_(clinic_ids), which)
        .options(
            contains_eager(Notification.patient),
            joinedload(Notification.assessment).joinedload(Assessment.timepoint),
            joinedload(Notification.assessment).joinedload(Assessment.enrollment),
        )
        .order_by(Notification.created_at, Notification.id)
    ).all()


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
