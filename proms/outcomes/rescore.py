"""Rescore every submitted response after a scoring change (a corrected table, a new method).

Services: flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from proms.admin.models import Enrollment
from proms.catalog.services import scoring_definition
from proms.db import utcnow
from proms.instruments.registry import Registry
from proms.outcomes.alerts import DueAlert, alert_row, file_alerts
from proms.outcomes.models import Alert, Score
from proms.outcomes.services import alert_state, refresh_changes, score_values, scored
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


@dataclass(frozen=True, slots=True)
class AlertRevision:
    """What a rescore did to one alert: raised it, found it no longer met (or met again), or
    updated the facts it records. `before` and `after` are what its rule looked at."""

    alert_id: int
    rule: str
    timepoint_key: str | None
    change: str  # RAISED, NO_LONGER_MET, MET_AGAIN or UPDATED
    before: dict[str, Any] | None
    after: dict[str, Any] | None


RAISED = "raised"
NO_LONGER_MET = "no longer met"
MET_AGAIN = "met again"
UPDATED = "updated"

# What rescore writes into an alert's detail; the rest is what raised it.
REVISION_KEYS = (
    "raised_by_rescore",
    "superseded_by_rescore",
    "reinstated_by_rescore",
    "updated_by_rescore",
)


@dataclass
class RescoreReport:
    responses: int = 0
    unchanged: int = 0
    changes: list[Rescored] = field(default_factory=list)
    reclassified: list[int] = field(default_factory=list)  # scores whose change class moved
    alerts: list[AlertRevision] = field(default_factory=list)


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


def rescore(
    session: Session, registry: Registry, *, apply: bool = True, now: dt.datetime | None = None
) -> RescoreReport:
    """Recompute every submitted response's scores; update the rows that differ when `apply`.

    When applied, every course's change classes are classified again and its alerts revisited:
    alerts now due are raised, and alerts whose rule is no longer met are marked so (with what
    changed), never deleted: a clinician may already have acted on them.
    """
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
        answered = session.scalars(
            select(Enrollment)
            .where(
                Enrollment.id.in_(
                    select(Assessment.enrollment_id)
                    .join(SurveyResponse, SurveyResponse.assessment_id == Assessment.id)
                    .where(SurveyResponse.status == ResponseStatus.SUBMITTED)
                )
            )
            .options(selectinload(Enrollment.patient))
            .order_by(Enrollment.id)
        )
        for enrollment in answered:
            report.alerts.extend(revisit_alerts(session, registry, enrollment, now or utcnow()))
    return report


def revisit_alerts(
    session: Session, registry: Registry, enrollment: Enrollment, now: dt.datetime
) -> list[AlertRevision]:
    """Bring a course's alerts in line with its scores and the current rules."""
    state = alert_state(session, registry, enrollment)
    existing = session.scalars(
        select(Alert)
        .where(
            Alert.assessment_id.in_(
                select(Assessment.id).where(Assessment.enrollment_id == enrollment.id)
            )
        )
        .order_by(Alert.id)
    ).all()
    filed = {(alert.assessment_id, alert.rule): alert for alert in existing}
    stamp = {"at": now.isoformat(), "scoring_version": SCORING_VERSION}
    revisions: list[AlertRevision] = []
    for alert in existing:
        assert alert.assessment_id is not None  # found through its assessment
        key = (alert.assessment_id, alert.rule)
        revision = _revise(alert, state.due.get(key), state.facts.get(key), stamp)
        if revision is not None:
            revisions.append(revision)
    patient = enrollment.patient
    raised = file_alerts(
        session,
        [
            alert_row(
                due,
                patient_id=patient.id,
                clinic_id=patient.clinic_id,
                assessment_id=assessment_id,
                timepoint_key=timepoint_key,
                detail={**due.detail, "raised_by_rescore": stamp},
            )
            for (assessment_id, rule), (due, timepoint_key) in state.due.items()
            if (assessment_id, rule) not in filed
        ],
    )
    revisions.extend(
        AlertRevision(alert.id, alert.rule, alert.timepoint_key, RAISED, None, _core(alert.detail))
        for alert in raised
    )
    session.flush()
    return revisions


def _revise(
    alert: Alert,
    due: tuple[DueAlert, str] | None,
    facts: dict[str, Any] | None,
    stamp: dict[str, str],
) -> AlertRevision | None:
    """Mark an alert no longer met, met again, or with its facts updated; None if unchanged."""
    before = _core(alert.detail)
    superseded = alert.superseded
    if due is None:
        if superseded is not None:
            return None  # already marked by an earlier rescore
        alert.detail = {
            **alert.detail,
            "superseded_by_rescore": {**stamp, "before": before, "after": facts},
        }
        return AlertRevision(
            alert.id, alert.rule, alert.timepoint_key, NO_LONGER_MET, before, facts
        )
    after = due[0].detail
    if due[0].score_id is not None:
        alert.score_id = due[0].score_id  # a score removed and computed again has a new id
    if superseded is not None:
        alert.detail = {
            **after,
            "reinstated_by_rescore": {**stamp, "superseded": superseded},
        }
        return AlertRevision(alert.id, alert.rule, alert.timepoint_key, MET_AGAIN, before, after)
    if before == after:
        return None
    alert.detail = {**after, "updated_by_rescore": {**stamp, "before": before}}
    return AlertRevision(alert.id, alert.rule, alert.timepoint_key, UPDATED, before, after)


def _core(detail: dict[str, Any]) -> dict[str, Any]:
    """What raised an alert: its detail without what rescores added."""
    return {name: value for name, value in detail.items() if name not in REVISION_KEYS}
