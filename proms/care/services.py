"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from proms.admin.instruments import stored_definition
from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.care.models import Score
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import Registry
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.scoring.change import ChangeResult, Measurement, classify_change
from proms.surveys.models import SurveyResponse

OPEN_STATUSES = (AssessmentStatus.SCHEDULED, AssessmentStatus.IN_PROGRESS)


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


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """A follow-up score and how it changed from the same enrollment's baseline."""

    score: Score
    baseline: Score | None
    change: ChangeResult


def changes_from_baseline(
    session: Session, registry: Registry, enrollment: Enrollment
) -> list[ScoreChange]:
    """Every score after the baseline time point, classified against the baseline score.

    The baseline is the score of the same domain and scale at the protocol's first time point.
    Each change uses the primary threshold of the follow-up's instrument for that scale (scales
    without one, such as PASS-20 subscales, are not classified). A different instrument or
    version at baseline is "not comparable", as is a missing baseline.
    """
    scores = session.scalars(
        select(Score)
        .where(Score.enrollment_id == enrollment.id)
        .order_by(Score.observed_at, Score.id)
    ).all()
    first_key = enrollment.protocol.timepoints[0].key if enrollment.protocol.timepoints else None
    at_baseline = [score for score in scores if score.timepoint_key == first_key]
    # The same instrument's baseline first; else the domain's (a different instrument there is
    # then reported as "not comparable" rather than as a missing baseline).
    by_instrument = {(score.instrument_code, score.scale): score for score in at_baseline}
    by_domain = {(score.domain, score.scale): score for score in at_baseline}
    results = []
    for score in scores:
        if score.timepoint_key == first_key:
            continue
        definition = _definition_of(session, registry, score)
        threshold = next(
            (t for t in definition.thresholds if t.primary and t.scale == score.scale), None
        )
        if threshold is None:
            continue
        baseline = by_instrument.get((score.instrument_code, score.scale)) or by_domain.get(
            (score.domain, score.scale)
        )
        change = classify_change(
            _measurement(baseline) if baseline else None,
            _measurement(score),
            direction=definition.direction,
            threshold=threshold.to_threshold(),
        )
        results.append(ScoreChange(score, baseline, change))
    return results


def _definition_of(session: Session, registry: Registry, score: Score) -> InstrumentDefinition:
    """The scored instrument version: from this release, else as stored with the response."""
    try:
        return registry.get(score.instrument_code, score.instrument_version)
    except KeyError:
        response = session.get(SurveyResponse, score.response_id)
        assert response is not None
        return stored_definition(response.instrument)


def _measurement(score: Score) -> Measurement:
    value = score.t_score if score.t_score is not None else score.raw_score
    assert value is not None  # stored scores always have one of the two
    return Measurement(
        instrument_code=score.instrument_code,
        instrument_version=score.instrument_version,
        scale=score.scale,
        value=value,
        standard_error=score.standard_error,
    )
