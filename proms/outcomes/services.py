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
from proms.outcomes.alerts import (
    DueAlert,
    alert_row,
    file_alerts,
    severity_alerts,
    severity_facts,
    side_effect_alerts,
    worsening_alert,
    worsening_detail,
    worsening_key,
)
from proms.outcomes.models import Alert, Score
from proms.scheduling.models import Assessment
from proms.scoring import SCORING_VERSION, score
from proms.scoring.change import ChangeResult, Measurement, classify_change
from proms.scoring.types import Method, ScoreResult
from proms.surveys.models import ResponseStatus, SurveyResponse


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
    the alerts in another (side effects, severe levels and worsenings, each filed as itself,
    once per rule and time point).
    """
    enrollment: Enrollment = assessment.enrollment
    patient: Patient = enrollment.patient
    definitions: dict[int, InstrumentDefinition] = {}
    rows: list[dict[str, object]] = []
    due: list[DueAlert] = []
    for response in responses:
        # One definition per response for its scores, its thresholds and its alert rules: the
        # current release's rules for the version the patient answered, as for rescoring.
        definition = scoring_definition(registry, response.instrument)
        definitions[response.id] = definition
        rows.extend(
            score_values(response, assessment, definition, result)
            for result in scored(definition, response)
        )
        due.extend(side_effect_alerts(definition, response.answers))
    scores = _insert(session, Score, rows)
    # After the insert: when this is the baseline, its own scores are the baseline's, and
    # are not classified against themselves.
    baseline = _Baseline(_baseline_scores(session, enrollment))
    changes: list[dict[str, object]] = []
    for row in scores:
        definition = definitions[row.response_id]
        due.extend(severity_alerts(definition, row.scale, row.t_score, row.raw_score, row.id))
        change = _classify(definition, row, baseline)
        if change is None:
            continue
        changes.append({"id": row.id, **change_values(change.change)})
        worsening = worsening_alert(change.change, row.id)
        if worsening is not None:
            due.append(worsening)
    _store_changes(session, scores, changes)
    alerts = file_alerts(
        session,
        (
            alert_row(
                alert,
                patient_id=patient.id,
                clinic_id=patient.clinic_id,
                assessment_id=assessment.id,
                timepoint_key=assessment.timepoint.key,
            )
            for alert in due
        ),
    )
    return Outcome(tuple(scores), tuple(alerts))


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


AlertKey = tuple[int, str]  # (assessment id, rule key)


@dataclass(frozen=True, slots=True)
class AlertState:
    """What an enrollment's stored scores and answers call for now, by (assessment, rule).

    `due`: the alerts its rules raise today, with each one's time point key. `facts`: for every
    rule that could raise one (met or not), what it looks at now, so that an alert no longer
    met can say what changed.
    """

    due: dict[AlertKey, tuple[DueAlert, str]]
    facts: dict[AlertKey, dict[str, Any]]


def alert_state(session: Session, registry: Registry, enrollment: Enrollment) -> AlertState:
    """The alerts an enrollment's submitted answers and stored scores call for, by the current
    rules (for `rescore`, after scores and change classes were brought up to date)."""
    due: dict[AlertKey, tuple[DueAlert, str]] = {}
    facts: dict[AlertKey, dict[str, Any]] = {}
    scores = session.scalars(
        select(Score)
        .where(Score.enrollment_id == enrollment.id)
        .options(selectinload(Score.response).selectinload(SurveyResponse.instrument))
        .order_by(Score.id)
    ).all()
    baseline = _Baseline(_baseline_scores(session, enrollment))
    for row in scores:
        definition = scoring_definition(registry, row.response.instrument)
        severity = severity_facts(definition, row.scale, row.t_score, row.raw_score)
        for rule, values in severity.items():
            facts[(row.assessment_id, rule)] = values
        for alert in severity_alerts(definition, row.scale, row.t_score, row.raw_score, row.id):
            due[(row.assessment_id, alert.rule)] = (alert, row.timepoint_key)
        change = _classify(definition, row, baseline)
        if change is None:
            continue
        key = (row.assessment_id, worsening_key(row.instrument_code, row.scale))
        facts[key] = {
            **worsening_detail(change.change),
            "change": change.change.by_individual.value,
        }
        worsening = worsening_alert(change.change, row.id)
        if worsening is not None:
            due[key] = (worsening, row.timepoint_key)
    responses = session.scalars(
        select(SurveyResponse)
        .join(Assessment, Assessment.id == SurveyResponse.assessment_id)
        .where(
            Assessment.enrollment_id == enrollment.id,
            SurveyResponse.status == ResponseStatus.SUBMITTED,
        )
        .options(
            selectinload(SurveyResponse.instrument),
            selectinload(SurveyResponse.answer_rows),
            selectinload(SurveyResponse.assessment).selectinload(Assessment.timepoint),
        )
        .order_by(SurveyResponse.id)
    ).all()
    for response in responses:
        definition = scoring_definition(registry, response.instrument)
        found = {a.rule: a for a in side_effect_alerts(definition, response.answers)}
        for rule in definition.alerts:
            key = (response.assessment_id, f"{rule.key}:{definition.code}")
            alert = found.get(key[1])
            facts[key] = {
                "instrument": definition.code,
                "items": alert.detail["items"] if alert else [],
            }
            if alert is not None:
                due[key] = (alert, response.assessment.timepoint.key)
    return AlertState(due, facts)


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
