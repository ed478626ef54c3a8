"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.scheduling.models import OPEN_STATUSES, OVERDUE_WITHIN, Assessment, AssessmentStatus


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """What the patient list shows beside a name."""

    course_started_on: dt.date | None = None
    course_status: EnrollmentStatus | None = None
    open_assessments: int = 0


# The patient list's filters: key -> label. Keys go in URLs; they name no patient.
FILTERS = {
    "open": "Questionnaire open now",
    "overdue": "Overdue (closes within 2 days, not started)",
    "active": "Active course",
    "withdrawn": "Withdrawn",
}


def patient_list(
    visible: Select[tuple[Patient]],
    *,
    search: str = "",
    filter_key: str = "",
    now: dt.datetime | None = None,
) -> Select[tuple[Patient]]:
    """The staff patient list: visible patients by name, filtered by a search and a filter.

    A search is split into words (commas and spaces), and every word must begin a name or be
    part of the MRN: "Lopez, Alma", "alma lopez", "lop" and the MRN all find Alma Lopez.
    """
    query = visible
    for word in search.replace(",", " ").lower().split():
        prefix = f"{_escape_like(word)}%"
        inner = f"%{_escape_like(word)}%"
        query = query.where(
            func.lower(Patient.family_name).like(prefix, escape="\\")
            | func.lower(Patient.given_name).like(prefix, escape="\\")
            | func.lower(Patient.family_name).like(f"% {_escape_like(word)}%", escape="\\")
            | func.lower(Patient.mrn).like(inner, escape="\\")
        )
    if filter_key:
        query = query.where(_filter(filter_key, now or dt.datetime.now(dt.UTC)))
    return query.order_by(Patient.family_name, Patient.given_name, Patient.id)


def _filter(key: str, now: dt.datetime) -> ColumnElement[bool]:
    courses = select(Enrollment.id).where(Enrollment.patient_id == Patient.id)
    if key == "active":
        return courses.where(Enrollment.status == EnrollmentStatus.ACTIVE).exists()
    if key == "withdrawn":
        return courses.where(Enrollment.status == EnrollmentStatus.WITHDRAWN).exists()
    open_now = (
        select(Assessment.id)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Enrollment.patient_id == Patient.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.opens_at <= now,
            Assessment.closes_at > now,
        )
    )
    if key == "open":
        return open_now.exists()
    if key == "overdue":
        return open_now.where(
            Assessment.status == AssessmentStatus.SCHEDULED,
            Assessment.closes_at <= now + OVERDUE_WITHIN,
        ).exists()
    raise ValueError(f"unknown filter {key!r}")


def patient_summaries(
    session: Session, patient_ids: Collection[int], now: dt.datetime
) -> dict[int, PatientSummary]:
    """Latest course and number of assessments open right now, for a page of patients."""
    if not patient_ids:
        return {}
    open_counts = dict(
        session.execute(
            select(Enrollment.patient_id, func.count(Assessment.id))
            .join(Assessment, Assessment.enrollment_id == Enrollment.id)
            .where(
                Enrollment.patient_id.in_(patient_ids),
                Assessment.status.in_(OPEN_STATUSES),
                Assessment.opens_at <= now,
                Assessment.closes_at > now,
            )
            .group_by(Enrollment.patient_id)
        ).all()
    )
    latest = (
        select(Enrollment.patient_id, Enrollment.anchor_on, Enrollment.status)
        .where(Enrollment.patient_id.in_(patient_ids))
        .order_by(Enrollment.patient_id, Enrollment.anchor_on, Enrollment.id)
    )
    courses = {
        patient_id: (anchor, status) for patient_id, anchor, status in session.execute(latest)
    }
    return {
        patient_id: PatientSummary(
            course_started_on=courses.get(patient_id, (None, None))[0],
            course_status=courses.get(patient_id, (None, None))[1],
            open_assessments=open_counts.get(patient_id, 0),
        )
        for patient_id in patient_ids
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
