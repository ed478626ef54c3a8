"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.scheduling.models import OPEN_STATUSES, Assessment


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """What the patient list shows beside a name."""

    course_started_on: dt.date | None = None
    course_status: EnrollmentStatus | None = None
    open_assessments: int = 0


def patient_list(visible: Select[tuple[Patient]], *, search: str = "") -> Select[tuple[Patient]]:
    """The staff patient list: visible patients by name, optionally filtered by name or MRN."""
    query = visible
    if search:
        pattern = f"%{_escape_like(search.strip().lower())}%"
        query = query.where(
            func.lower(Patient.family_name).like(pattern, escape="\\")
            | func.lower(Patient.given_name).like(pattern, escape="\\")
            | func.lower(Patient.mrn).like(pattern, escape="\\")
        )
    return query.order_by(Patient.family_name, Patient.given_name, Patient.id)


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
