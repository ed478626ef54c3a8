"""Rescore every submitted response after a scoring change (a corrected table, a new method).

Services: flush, never commit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from proms.admin.models import Enrollment
from proms.catalog.services import scoring_definition
from proms.db import utcnow
from proms.instruments.registry import Registry
from proms.outcomes.models import Score
from proms.outcomes.services import refresh_changes, score_values, scored
from proms.scheduling.models import Assessment
from proms.scoring import SCORING_VERSION
from proms.scoring.types import Method, ScoreResult
from proms.surveys.models import ResponseStatus, SurveyResponse

COMPARED = ("raw_score", "t_score", "standard_error", "n_answered", "method")


@dataclass(frozen=True, slots=True)
class Rescored:
    response_id: int
    scale: str
    before: dict[str, object] | None  # None: a new score
    after: dict[str, object] | None  # None: the score was removed


@dataclass
class RescoreReport:
    responses: int = 0
    unchanged: int = 0
    changes: list[Rescored] = field(default_factory=list)
    reclassified: list[int] = field(default_factory=list)  # scores whose change class moved


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
            selectinload(SurveyResponse.answer_rows),
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
        definition = scoring_definition(registry, response.instrument)
        stored = existing.get(response.id, {})
        fresh = {result.scale: result for result in scored(definition, response)}
        for scale in sorted(stored.keys() | fresh.keys()):
            old, new = stored.get(scale), fresh.get(scale)
            before = _values(old) if old else None
            after = _values(new) if new else None
            if before is not None and after is not None and _same(before, after):
                report.unchanged += 1
                if apply and old is not None and old.scoring_version != SCORING_VERSION:
                    old.scoring_version = SCORING_VERSION
                continue
            report.changes.append(Rescored(response.id, scale, before, after))
            if not apply:
                continue
            if old is not None and new is not None:
                # Updated in place: the (response, scale) row keeps its id and its alerts.
                for name, value in _values(new).items():
                    setattr(old, name, value)
                old.scoring_version = SCORING_VERSION
                old.scored_at = utcnow()
            elif new is not None:
                session.add(Score(**score_values(response, response.assessment, definition, new)))
            elif old is not None:
                session.delete(old)
        session.flush()
    if apply:
        # A changed baseline changes every follow-up compared with it, and a changed threshold
        # every score: classify them all again.
        courses = session.scalars(
            select(Enrollment).where(Enrollment.id.in_(select(Score.enrollment_id).distinct()))
        )
        for enrollment in courses:
            report.reclassified.extend(refresh_changes(session, registry, enrollment))
    return report
