"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from proms.admin.models import Enrollment, Patient
from proms.scheduling.models import Assessment, AssessmentStatus

OPEN_STATUSES = (AssessmentStatus.SCHEDULED, AssessmentStatus.IN_PROGRESS)


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


def open_assessment_counts(
    session: Session, patient_ids: Collection[int], now: dt.datetime
) -> dict[int, int]:
    """How many assessments each patient can answer right now."""
    if not patient_ids:
        return {}
    rows = session.execute(
        select(Enrollment.patient_id, func.count(Assessment.id))
        .join(Assessment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Enrollment.patient_id.in_(patient_ids),
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.opens_at <= now,
            Assessment.closes_at > now,
        )
        .group_by(Enrollment.patient_id)
    )
    return {patient_id: count for patient_id, count in rows}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
