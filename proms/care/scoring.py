"""Score stored responses with the pure scoring core, and rescore them after a scoring change.

Services: flush, never commit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from proms.admin.instruments import stored_definition
from proms.admin.models import Enrollment, Instrument
from proms.care.models import Score
from proms.db import utcnow
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import Registry
from proms.scheduling.models import Assessment
from proms.scoring import SCORING_VERSION, score
from proms.scoring.types import Method, ScoreResult
from proms.surveys.models import ResponseStatus, SurveyResponse

COMPARED = ("raw_score", "t_score", "standard_error", "n_answered", "method")


def definition_for(registry: Registry, instrument: Instrument) -> InstrumentDefinition:
    """The current scoring of the instrument version the patient answered.

    Scoring data (tables, calibrations) come from this release, so a corrected table reaches old
    responses through `proms rescore`; a version this release no longer ships is scored from the
    definition stored with the response.
    """
    try:
        return registry.get(instrument.code, instrument.version)
    except KeyError:
        return stored_definition(instrument)


def _score_row(
    response: SurveyResponse, definition: InstrumentDefinition, result: ScoreResult
) -> Score:
    assessment = response.assessment
    enrollment = assessment.enrollment
    assert response.submitted_at is not None
    return Score(
        response_id=response.id,
        scale=result.scale,
        patient_id=enrollment.patient_id,
        enrollment_id=enrollment.id,
        assessment_id=assessment.id,
        timepoint_key=assessment.timepoint.key,
        instrument_code=definition.code,
        instrument_version=definition.version,
        domain=definition.domain,
        observed_at=response.submitted_at,
        raw_score=result.raw_score,
        t_score=result.t_score,
        standard_error=result.standard_error,
        n_answered=result.n_answered,
        method=result.method.value,
        scoring_version=SCORING_VERSION,
    )


def score_response(session: Session, registry: Registry, response: SurveyResponse) -> list[Score]:
    """Create the score rows of a submitted response (scales without a score get no row)."""
    definition = definition_for(registry, response.instrument)
    scores = [
        _score_row(response, definition, result)
        for result in score(definition.form(), response.answers)
        if result.method is not Method.NONE
    ]
    session.add_all(scores)
    session.flush()
    return scores


@dataclass(frozen=True, slots=True)
class ScoreChange:
    response_id: int
    scale: str
    before: dict[str, object] | None  # None: a new score
    after: dict[str, object] | None  # None: the score was removed


@dataclass
class RescoreReport:
    responses: int = 0
    unchanged: int = 0
    changes: list[ScoreChange] = field(default_factory=list)


def _values(score: Score | ScoreResult) -> dict[str, object]:
    values = {name: getattr(score, name) for name in COMPARED}
    method = values["method"]
    values["method"] = method.value if isinstance(method, Method) else method
    return values


def _same(before: dict[str, object], after: dict[str, object]) -> bool:
    for name in COMPARED:
        old, new = before[name], after[name]
        if isinstance(old, float) and isinstance(new, float):
            if not math.isclose(old, new, rel_tol=0, abs_tol=1e-9):
                return False
        elif old != new:
            return False
    return True


def _submitted(session: Session) -> Iterator[SurveyResponse]:
    query = (
        select(SurveyResponse)
        .where(SurveyResponse.status == ResponseStatus.SUBMITTED)
        .options(
            selectinload(SurveyResponse.instrument),
            selectinload(SurveyResponse.assessment)
            .selectinload(Assessment.enrollment)
            .load_only(Enrollment.id, Enrollment.patient_id),
            selectinload(SurveyResponse.assessment).selectinload(Assessment.timepoint),
        )
        .order_by(SurveyResponse.id)
        .execution_options(yield_per=500)
    )
    yield from session.scalars(query)


def rescore(session: Session, registry: Registry, *, apply: bool = True) -> RescoreReport:
    """Recompute every submitted response's scores; update the rows that differ when `apply`."""
    report = RescoreReport()
    existing: dict[int, dict[str, Score]] = {}
    for row in session.scalars(select(Score)):
        existing.setdefault(row.response_id, {})[row.scale] = row
    for response in _submitted(session):
        report.responses += 1
        definition = definition_for(registry, response.instrument)
        stored = existing.get(response.id, {})
        fresh = {
            result.scale: result
            for result in score(definition.form(), response.answers)
            if result.method is not Method.NONE
        }
        for scale in sorted(stored.keys() | fresh.keys()):
            old, new = stored.get(scale), fresh.get(scale)
            before = _values(old) if old else None
            after = _values(new) if new else None
            if before is not None and after is not None and _same(before, after):
                report.unchanged += 1
                if apply and old is not None and old.scoring_version != SCORING_VERSION:
                    old.scoring_version = SCORING_VERSION
                continue
            report.changes.append(ScoreChange(response.id, scale, before, after))
            if not apply:
                continue
            if old is not None and new is not None:
                # Updated in place: the (response, scale) row keeps its id and its alerts.
                for name, value in _values(new).items():
                    setattr(old, name, value)
                old.scoring_version = SCORING_VERSION
                old.scored_at = utcnow()
            elif new is not None:
                session.add(_score_row(response, definition, new))
            elif old is not None:
                session.delete(old)
        session.flush()
    return report
