"""Outcomes of submitted responses: scores, change from baseline, alerts.

The patient side records a submission here; the care team reads changes from here. Both go
through the same classification, so a worsening the care team sees is the one that was alerted.
Services: flush, never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from proms.admin.models import Enrollment, Patient, ProtocolTimepoint
from proms.catalog.services import scoring_definition
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import Registry
from proms.outcomes.models import Alert, AlertKind, Score
from proms.scheduling.models import Assessment
from proms.scoring import SCORING_VERSION, score
from proms.scoring.change import (
    ChangeResult,
    Measurement,
    classify_change,
    is_meaningful_worsening,
)
from proms.scoring.types import Method, ScoreResult
from proms.surveys.models import SurveyResponse


def score_values(
    response: SurveyResponse,
    assessment: Assessment,
    definition: InstrumentDefinition,
    result: ScoreResult,
) -> dict[str, object]:
    """The columns of one score row of a submitted response (of `assessment`)."""
    assert response.submitted_at is not None
    enrollment = assessment.enrollment
    return {
        "response_id": response.id,
        "scale": result.scale,
        "patient_id": enrollment.patient_id,
        "enrollment_id": enrollment.id,
        "assessment_id": assessment.id,
        "timepoint_key": assessment.timepoint.key,
        "instrument_code": definition.code,
        "instrument_version": definition.version,
        "domain": definition.domain,
        "observed_at": response.submitted_at,
        "raw_score": result.raw_score,
        "t_score": result.t_score,
        "standard_error": result.standard_error,
        "n_answered": result.n_answered,
        "method": result.method.value,
        "scoring_version": SCORING_VERSION,
    }


def scored(definition: InstrumentDefinition, response: SurveyResponse) -> list[ScoreResult]:
    """The scales of a response that have a score (too few answers give none)."""
    return [
        result
        for result in score(definition.form(), response.answers)
        if result.method is not Method.NONE
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a submission recorded."""

    scores: tuple[Score, ...] = ()
    alerts: tuple[Alert, ...] = ()


def record_submission(
    session: Session,
    registry: Registry,
    assessment: Assessment,
    responses: Sequence[SurveyResponse],
) -> Outcome:
    """Score a just-submitted assessment, compare it with its baseline and raise alerts.

    The caller loads the assessment with its time point, enrollment and patient, and the
    responses with their instrument and answers; from there the number of statements does not
    depend on the number of questionnaires: the baseline in one query, the scores in one insert,
    the alerts in another.
    """
    enrollment: Enrollment = assessment.enrollment
    patient: Patient = enrollment.patient
    definitions: dict[int, InstrumentDefinition] = {}
    rows: list[dict[str, object]] = []
    alerts: list[dict[str, object]] = []
    for response in responses:
        # One definition per response for its scores, its thresholds and its alert rules: the
        # current release's rules for the version the patient answered, as for rescoring.
        definition = scoring_definition(registry, response.instrument)
        definitions[response.id] = definition
        rows.extend(
            score_values(response, assessment, definition, result)
            for result in scored(definition, response)
        )
        severe = definition.alert_items(response.answers)
        if severe:
            alerts.append(
                _alert(
                    patient,
                    assessment,
                    AlertKind.SIDE_EFFECT,
                    {"instrument": definition.code, "items": list(severe)},
                )
            )
    scores = _insert(session, Score, rows)
    # After the insert: when this is the baseline, its own scores are the baseline's, and
    # are not classified against themselves.
    baseline = _Baseline(_baseline_scores(session, enrollment))
    changes: list[dict[str, object]] = []
    for row in scores:
        change = _classify(definitions[row.response_id], row, baseline)
        if change is None:
            continue
        changes.append({"id": row.id, **change_values(change.change)})
        if is_meaningful_worsening(change.change):
            worsening = _alert(patient, assessment, AlertKind.WORSENING, _worsening_detail(change))
            worsening["score_id"] = row.id
            alerts.append(worsening)
    _store_changes(session, scores, changes)
    return Outcome(tuple(scores), tuple(_insert(session, Alert, alerts)))


CHANGE_COLUMNS = (
    "improvement",
    "percent_improvement",
    "reliable_change_index",
    "change_by_threshold",
    "change_by_individual",
    "change_reason",
)
NO_CHANGE_VALUES: dict[str, object] = dict.fromkeys(CHANGE_COLUMNS)


def change_values(change: ChangeResult) -> dict[str, object]:
    """The stored change columns of a score, from its classification."""
    return {
        "improvement": change.improvement,
        "percent_improvement": change.percent_improvement,
        "reliable_change_index": change.reliable_change_index,
        "change_by_threshold": change.by_threshold.value,
        "change_by_individual": change.by_individual.value,
        "change_reason": change.reason[:200] or None,
    }


def _store_changes(
    session: Session, scores: Sequence[Score], changes: list[dict[str, object]]
) -> None:
    """Write the change columns in one statement (an executemany by primary key)."""
    if not changes:
        return
    session.execute(update(Score), changes)
    by_id = {row.id: row for row in scores}
    for values in changes:  # the objects in hand say what the rows now hold
        row = by_id.get(values["id"])  # type: ignore[call-overload]
        if row is not None:
            for name in CHANGE_COLUMNS:
                set_committed_value(row, name, values[name])


def refresh_changes(session: Session, registry: Registry, enrollment: Enrollment) -> list[int]:
    """Classify every score of an enrollment again (after a rescore); ids of changed rows."""
    scores = session.scalars(
        select(Score)
        .where(Score.enrollment_id == enrollment.id)
        .options(selectinload(Score.response).selectinload(SurveyResponse.instrument))
        .order_by(Score.id)
    ).all()
    baseline = _Baseline(_baseline_scores(session, enrollment))
    changed: list[int] = []
    for row in scores:
        change = _classify(scoring_definition(registry, row.response.instrument), row, baseline)
        values = NO_CHANGE_VALUES if change is None else change_values(change.change)
        if any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            changed.append(row.id)
    session.flush()
    return changed


def _insert(session: Session, model: type[Any], rows: list[dict[str, object]]) -> list[Any]:
    """Insert rows in one statement; the new objects.

    `render_nulls` keeps rows with a NULL in different columns (a summed score has no T-score)
    in the same statement: the ORM would otherwise group the rows by their non-null columns.
    """
    if not rows:
        return []
    statement = insert(model).returning(model).execution_options(render_nulls=True)
    return list(session.scalars(statement, rows))


def _alert(
    patient: Patient, assessment: Assessment, kind: AlertKind, detail: dict[str, object]
) -> dict[str, object]:
    return {
        "patient_id": patient.id,
        "clinic_id": patient.clinic_id,
        "assessment_id": assessment.id,
        "score_id": None,
        "kind": kind,
        "detail": detail,
    }


def _worsening_detail(change: ScoreChange) -> dict[str, object]:
    result = change.change
    assert result.baseline is not None
    return {
        "instrument": result.current.instrument_code,
        "scale": result.current.scale,
        "baseline": result.baseline.value,
        "current": result.current.value,
        "improvement": result.improvement,
        "reliable_change_index": result.reliable_change_index,
        "threshold": result.threshold.value,
        "threshold_unit": result.threshold.unit,
        "threshold_source": result.threshold.source,
    }


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """A follow-up score and how it changed from the same enrollment's baseline."""

    score: Score
    baseline: Score | None
    change: ChangeResult


class _Baseline:
    """The baseline scores of an enrollment, found the way a follow-up is compared.

    The same instrument's baseline first; else the domain's (a different instrument there is
    then reported as "not comparable" rather than as a missing baseline).
    """

    def __init__(self, scores: Iterable[Score]) -> None:
        self.scores = list(scores)
        self._by_instrument = {(s.instrument_code, s.scale): s for s in self.scores}
        self._by_domain = {(s.domain, s.scale): s for s in self.scores}
        self._ids = {s.id for s in self.scores}

    def includes(self, score: Score) -> bool:
        return score.id in self._ids

    def of(self, score: Score) -> Score | None:
        return self._by_instrument.get((score.instrument_code, score.scale)) or self._by_domain.get(
            (score.domain, score.scale)
        )


def _baseline_scores(session: Session, enrollment: Enrollment) -> Sequence[Score]:
    """The scores of the enrollment's first time point (the protocol's baseline), one query.

    A returning patient's course may reuse the baseline of an earlier course
    (`baseline_from_id`): then that course's baseline scores are the ones compared with.
    """
    source_id = enrollment.baseline_from_id or enrollment.id
    source_protocol = (
        select(Enrollment.protocol_id).where(Enrollment.id == source_id).scalar_subquery()
    )
    first_key = (
        select(ProtocolTimepoint.key)
        .where(ProtocolTimepoint.protocol_id == source_protocol)
        .order_by(ProtocolTimepoint.position)
        .limit(1)
        .scalar_subquery()
    )
    return session.scalars(
        select(Score)
        .where(Score.enrollment_id == source_id, Score.timepoint_key == first_key)
        .order_by(Score.id)
    ).all()


def _classify(
    definition: InstrumentDefinition, score: Score, baseline: _Baseline
) -> ScoreChange | None:
    """The change of one follow-up score, by its instrument's primary threshold for the scale.

    None for a baseline score and for scales without a threshold (PASS-20 subscales). A
    different instrument or version at baseline is "not comparable", as is a missing baseline.
    """
    if baseline.includes(score):
        return None
    threshold = next(
        (t for t in definition.thresholds if t.primary and t.scale == score.scale), None
    )
    if threshold is None:
        return None
    before = baseline.of(score)
    change = classify_change(
        _measurement(before) if before else None,
        _measurement(score),
        direction=definition.direction,
        threshold=threshold.to_threshold(),
    )
    return ScoreChange(score, before, change)


def changes_from_baseline(
    session: Session, registry: Registry, enrollment: Enrollment
) -> list[ScoreChange]:
    """Every classified score after the baseline time point, oldest first."""
    scores = session.scalars(
        select(Score)
        .where(Score.enrollment_id == enrollment.id)
        .options(selectinload(Score.response).selectinload(SurveyResponse.instrument))
        .order_by(Score.observed_at, Score.id)
    ).all()
    baseline = _Baseline(_baseline_scores(session, enrollment))
    changes = (
        _classify(scoring_definition(registry, score.response.instrument), score, baseline)
        for score in scores
    )
    return [change for change in changes if change is not None]


def _measurement(score: Score) -> Measurement:
    value = score.t_score if score.t_score is not None else score.raw_score
    assert value is not None  # stored scores always have one of the two
    # float(): SQLite returns a whole REAL as an int (10.0 -> 10) from INSERT ... RETURNING.
    error = score.standard_error
    return Measurement(
        instrument_code=score.instrument_code,
        instrument_version=score.instrument_version,
        scale=score.scale,
        value=float(value),
        standard_error=None if error is None else float(error),
    )
