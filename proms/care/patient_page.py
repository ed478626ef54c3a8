"""What the patient page and the visit summary show: courses, trends, answers, alerts, notes.

`patient_record` reads everything in a fixed number of queries (courses with their infusion
days and questionnaires, scores, responses with their answers, alerts, notes), however many
questionnaires the patient has answered; the rest is arranged in Python. Read-only.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import Row, select
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from proms.admin.models import Enrollment, Patient, SessionStatus, TreatmentSession
from proms.auth.models import StaffUser
from proms.care import charts
from proms.care.alerts import patient_alerts
from proms.care.models import StaffNote
from proms.care.services import (
    OPEN_ALERT_STATUSES,
    TREND_SCALE,
    arrow,
    domain_label,
    domain_order,
    shown_change,
)
from proms.catalog.services import scoring_definition
from proms.instruments.model import ChangeThreshold, InstrumentDefinition, Item, ScoringMethod
from proms.instruments.registry import Registry
from proms.outcomes.models import TIER_ORDER, Alert, Score
from proms.scheduling.models import Assessment
from proms.scoring.change import RELIABLE_CHANGE_Z
from proms.scoring.types import Direction
from proms.surveys.models import ResponseStatus, SurveyAnswer, SurveyResponse

# A stored score as the page reads it: a row of the score table, its columns by name (the page
# never changes one, so it skips building ORM objects for them).
StoredScore = Row[Any]

# How each scoring method reads on the page.
METHOD_LABELS = {
    "table": "table",
    "pattern": "pattern",
    "sum": "sum",
    "mean": "mean",
}
SOURCE_LABELS = {"paper": "paper form", "phone": "read out on the phone"}


def local_day(moment: dt.datetime, zone: str) -> dt.date:
    return moment.astimezone(ZoneInfo(zone)).date()


# Courses --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A questionnaire of a course, or its infusion days, on the patient's calendar."""

    day: int  # days since the course start
    on: dt.date
    kind: str  # "infusions" or "questionnaire"
    title: str
    status: str  # a questionnaire's Assessment.state_at; "" for the infusion days
    detail: str = ""
    sessions: tuple[TreatmentSession, ...] = ()


@dataclass(frozen=True, slots=True)
class Course:
    enrollment: Enrollment
    events: tuple[TimelineEvent, ...]
    today: int  # today, in days since the course start
    given: int
    missed: int

    @property
    def label(self) -> str:
        return f"{self.enrollment.protocol.name} from {self.enrollment.anchor_on.isoformat()}"

    @property
    def missed_sessions(self) -> list[TreatmentSession]:
        return [s for s in self.enrollment.sessions if s.status is SessionStatus.MISSED]


def _course(enrollment: Enrollment, zone: str, now: dt.datetime) -> Course:
    """The course's questionnaires (answered ones on the day they were answered, the others
    on their due day) and its infusion days as one event, in date order."""
    start = enrollment.anchor_on
    events: list[TimelineEvent] = []
    sessions = tuple(enrollment.sessions)
    if sessions:
        first = min(s.scheduled_on for s in sessions)
        last = max(s.scheduled_on for s in sessions)
        span = f"{(first - start).days}" + (
            f"\N{EN DASH}{(last - start).days}" if last != first else ""
        )
        events.append(
            TimelineEvent(
                day=(first - start).days,
                on=first,
                kind="infusions",
                title=f"Infusion days (day {span})",
                status="",
                sessions=sessions,
            )
        )
    for assessment in enrollment.assessments:
        state = assessment.state_at(now)
        due = local_day(assessment.due_at, zone)
        on, detail = due, ""
        if assessment.completed_at is not None:
            on = local_day(assessment.completed_at, zone)
            detail = f"due day {(due - start).days}"
        elif state in ("open now", "in progress"):
            detail = f"until {local_day(assessment.closes_at - dt.timedelta(microseconds=1), zone)}"
        events.append(
            TimelineEvent(
                day=(on - start).days,
                on=on,
                kind="questionnaire",
                title=f"{assessment.timepoint.label} questionnaire",
                status=state,
                detail=detail,
            )
        )
    events.sort(key=lambda e: (e.on, e.kind != "infusions", e.title))
    statuses = [s.status for s in sessions]
    return Course(
        enrollment=enrollment,
        events=tuple(events),
        today=(local_day(now, zone) - start).days,
        given=statuses.count(SessionStatus.DONE),
        missed=statuses.count(SessionStatus.MISSED),
    )


# Trends ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One score of a trend, with everything its table row says."""

    score: StoredScore
    day: int
    on: dt.date
    timepoint: str
    value: float
    is_baseline: bool
    change: str | None
    criterion: str
    unit: str = ""  # the trend's: "T" or "" (raw scores)
    threshold: ChangeThreshold | None = None  # the trend's

    @property
    def arrow(self) -> str:
        return arrow(self.score.improvement)

    @property
    def method(self) -> str:
        return METHOD_LABELS.get(self.score.method, self.score.method)

    @property
    def value_text(self) -> str:
        return score_text(self.value, self.unit)

    @property
    def measure(self) -> str:
        """How the score was made: "SE 3.1, table, raw 12"."""
        s = self.score
        se = f"SE {s.standard_error:.1f}, " if s.standard_error else ""
        raw = f", raw {charts.format_value(s.raw_score)}" if s.t_score is not None else ""
        return f"{se}{self.method}{raw}"

    @property
    def amount(self) -> str:
        """How far from baseline and what the threshold needs: "4.1 T worse; needs 3 T"."""
        amount = change_amount(self.score, self.unit, self.threshold)
        if amount and self.threshold is not None:
            return f"{amount}; needs {threshold_text(self.threshold, self.unit)}"
        return amount

    @property
    def individually(self) -> str:
        """What the individual criterion rests on: the reliable change index, or why none."""
        s = self.score
        if s.reliable_change_index is not None:
            rci = signed(s.reliable_change_index, digits=2)
            return f"RCI {rci}; needs \N{PLUS-MINUS SIGN}{RELIABLE_CHANGE_Z:.2f}"
        if s.change_by_threshold != "not comparable":
            return "no standard error: the threshold decides"
        return s.change_reason or ""


@dataclass
class Trend:
    """One domain of one course: its scores, baseline, threshold and chart."""

    key: str  # unique on the page, for element ids
    course: Course
    domain: str
    definition: InstrumentDefinition
    rows: list[ScoreRow]
    baseline: ScoreRow | None
    threshold: ChangeThreshold | None
    chart: charts.TrendChart
    instruments: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The domain, with the instrument for raw scores ("Pain (PEG)"): their units differ."""
        if self.unit:
            return domain_label(self.domain)
        return f"{domain_label(self.domain)} ({self.latest.score.instrument_code.upper()})"

    @property
    def unit(self) -> str:
        return self.chart.unit

    @property
    def latest(self) -> ScoreRow:
        return self.rows[-1]

    @property
    def higher_is_better(self) -> bool:
        return self.definition.direction is Direction.HIGHER_IS_BETTER

    @property
    def severity_source(self) -> str:
        """Where the severity bands come from, its first clause ("HealthMeasures, PROMIS Score
        Cut Points, adult profile domains")."""
        source = str(getattr(self.definition, "severity_source", "") or "")
        return source.split(" (")[0].split(": ")[0]

    def svg(self, compact: bool = False) -> Markup:
        suffix = "-small" if compact else ""
        return charts.render(self.chart, chart_id=f"chart-{self.key}{suffix}", compact=compact)


def score_range(definition: InstrumentDefinition, scale: str = TREND_SCALE) -> tuple[float, float]:
    """The lowest and highest score the instrument can give on a scale (T for PROMIS tables)."""
    scoring = definition.scoring
    if scoring.method is ScoringMethod.PROMIS_TABLE and scoring.table:
        values = [row.t_score for row in scoring.table]
        return min(values), max(values)
    item_ids = next((s.item_ids for s in scoring.scales if s.key == scale), definition.item_ids)
    items = [definition.item(item_id) for item_id in item_ids if item_id in definition.item_ids]
    lows = [min(item.values) for item in items if item.values]
    highs = [max(item.values) for item in items if item.values]
    if not lows:
        return 0.0, 1.0
    if scoring.method is ScoringMethod.MEAN:
        return float(min(lows)), float(max(highs))
    return float(sum(lows)), float(sum(highs))


def _value(score: StoredScore) -> float:
    value = score.t_score if score.t_score is not None else score.raw_score
    assert value is not None  # a stored score has one of the two
    return float(value)


def _chart_label(domain: str, latest: StoredScore) -> str:
    if latest.t_score is not None:
        return domain_label(domain)
    return f"{domain_label(domain)} ({latest.instrument_code.upper()})"


def _first_timepoint_key(enrollment: Enrollment) -> str | None:
    if not enrollment.assessments:
        return None
    return min(enrollment.assessments, key=lambda a: a.timepoint.position).timepoint.key


def _bands(definition: InstrumentDefinition) -> tuple[charts.Band, ...]:
    """The definition's published severity bands (`severity_bands`, where it has them)."""
    found = []
    for band in getattr(definition, "severity_bands", ()) or ():
        lower, upper = getattr(band, "lower", None), getattr(band, "upper", None)
        found.append(
            charts.Band(
                label=str(getattr(band, "label", "")),
                lower=None if lower is None else float(lower),
                upper=None if upper is None else float(upper),
            )
        )
    return tuple(found)


def _trends_of_course(
    course: Course,
    scores: Sequence[StoredScore],
    baseline_scores: Sequence[StoredScore],
    definitions: dict[int, InstrumentDefinition],
    timepoint_labels: dict[int, str],
    zone: str,
    index: int,
) -> list[Trend]:
    enrollment = course.enrollment
    start = enrollment.anchor_on
    by_domain: dict[str, list[StoredScore]] = {}
    baseline_ids = {s.id for s in baseline_scores}
    for score in [*baseline_scores, *scores]:
        if score.scale == TREND_SCALE:
            by_domain.setdefault(score.domain, []).append(score)
    planned_days = [(local_day(a.due_at, zone) - start).days for a in enrollment.assessments]
    infusions = tuple(
        charts.Infusion(day=(s.scheduled_on - start).days, status=s.status.value)
        for s in enrollment.sessions
    )
    trends = []
    for domain in sorted(by_domain, key=domain_order):
        domain_scores = sorted(
            {s.id: s for s in by_domain[domain]}.values(), key=lambda s: (s.observed_at, s.id)
        )
        latest = domain_scores[-1]
        definition = definitions[latest.response_id]
        baseline = next(
            (
                s
                for s in domain_scores
                if s.id in baseline_ids and s.instrument_code == latest.instrument_code
            ),
            next((s for s in domain_scores if s.id in baseline_ids), None),
        )
        threshold = next(
            (t for t in definition.thresholds if t.primary and t.scale == TREND_SCALE), None
        )
        unit = "T" if latest.t_score is not None else ""
        rows = []
        for score in domain_scores:
            on = local_day(score.observed_at, zone)
            is_baseline = score.id in baseline_ids
            change, criterion = shown_change(score.change_by_individual, score.change_by_threshold)
            rows.append(
                ScoreRow(
                    score=score,
                    day=(on - start).days,
                    on=on,
                    timepoint=timepoint_labels.get(score.assessment_id, score.timepoint_key),
                    value=_value(score),
                    is_baseline=is_baseline,
                    change=None if is_baseline else change,
                    criterion="" if is_baseline else criterion,
                    unit=unit,
                    threshold=threshold,
                )
            )
        baseline_row = next((r for r in rows if baseline and r.score.id == baseline.id), None)
        band = None
        if baseline_row is not None and threshold is not None:
            band = charts.change_band(baseline_row.value, threshold.value, threshold.unit)
        low, high = score_range(definition)
        values = [r.value for r in rows] + (list(band) if band else [])
        severity = _bands(definition)
        y_range = charts.nice_range(min(low, *values), max(high, *values))
        chart = charts.TrendChart(
            title=(
                f"{_chart_label(domain, latest)}, course from {start.isoformat()}"
                f" \N{EM DASH} {enrollment.patient.display_name}"
            ),
            unit=unit,
            points=tuple(
                charts.Point(
                    day=r.day,
                    value=r.value,
                    label=r.timepoint,
                    change="baseline" if r.is_baseline else (r.change or ""),
                )
                for r in rows
            ),
            y_range=y_range,
            x_range=charts.day_range([*planned_days, *(r.day for r in rows)]),
            higher_is_better=definition.direction is Direction.HIGHER_IS_BETTER,
            baseline=None if baseline_row is None else baseline_row.value,
            change_band=band,
            severity_bands=severity,
            infusions=infusions,
        )
        instruments = []
        for row in rows:
            title = definitions[row.score.response_id].title
            if title not in instruments:
                instruments.append(title)
        trends.append(
            Trend(
                key=f"{index}-{domain}",
                course=course,
                domain=domain,
                definition=definition,
                rows=rows,
                baseline=baseline_row,
                threshold=threshold,
                chart=chart,
                instruments=instruments,
            )
        )
    return trends


# Answers --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    item_id: str
    text: str
    value: int | None
    label: str  # the chosen option's label; "skipped" or "not reached"


@dataclass(frozen=True, slots=True)
class ResponseView:
    response: SurveyResponse
    title: str
    entered_by: str  # "the patient" or "staff: <name> (paper form)"
    scores: tuple[StoredScore, ...]
    rows: Markup  # the answers as table rows (<tr>), escaped
    definition: InstrumentDefinition
    given: dict[str, int | None]  # item id -> value (None: skipped); absent: not reached

    @property
    def answers(self) -> tuple[Answer, ...]:
        return _answers(self.definition, self.given)

    @property
    def is_submitted(self) -> bool:
        return self.response.status is ResponseStatus.SUBMITTED

    @property
    def score_text(self) -> str:
        """The response's scores in a line: "T 61.2", "total 34, avoidance 9"."""
        return ", ".join(
            ("" if s.scale == TREND_SCALE else s.scale.replace("_", " ") + " ")
            + (
                f"T {charts.format_value(s.t_score, 'T')}"
                if s.t_score is not None
                else charts.format_value(_value(s))
            )
            for s in self.scores
        )


@dataclass(frozen=True, slots=True)
class AnsweredAssessment:
    """One questionnaire of a course and the responses to it."""

    assessment: Assessment
    course: Course
    responses: tuple[ResponseView, ...]

    @property
    def entered_by(self) -> str | None:
        """Who entered every response, when one person did (else each response says)."""
        names = {view.entered_by for view in self.responses}
        return names.pop() if len(names) == 1 else None

    @property
    def sent_at(self) -> dt.datetime | None:
        moments = [v.response.submitted_at for v in self.responses if v.response.submitted_at]
        return max(moments) if moments else None


def _answers(definition: InstrumentDefinition, given: dict[str, int | None]) -> tuple[Answer, ...]:
    """Every item of the definition with its answer, then answers to items it no longer has
    (kept, never hidden)."""
    found = [_item_answer(item, given) for item in definition.items]
    known = {item.id for item in definition.items}
    for item_id, value in given.items():
        if item_id not in known:
            found.append(Answer(item_id, item_id, value, "" if value is None else str(value)))
    return tuple(found)


def _item_answer(item: Item, given: dict[str, int | None]) -> Answer:
    value = given.get(item.id)
    if item.id not in given:
        label = "not reached"
    elif value is None:
        label = "skipped"
    else:
        label = next((o.label for o in item.options if o.value == value), str(value))
    return Answer(item.id, item.text, value, label)


def _answer_row(answer: Answer) -> str:
    value = "" if answer.value is None else f' <span class="hint">({escape(answer.value)})</span>'
    return f"<tr><td>{escape(answer.text)}</td><td>{escape(answer.label)}{value}</td></tr>"


NOT_REACHED = object()


class AnswerRows:
    """Answers as table rows (question, answer), each row escaped and written once per page: a
    patient's responses repeat the same questions and answers many times over."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str, object], str] = {}

    def rows(self, definition: InstrumentDefinition, given: dict[str, int | None]) -> Markup:
        memo = self._rows
        parts = []
        matched = 0
        for item in definition.items:
            value = given.get(item.id, NOT_REACHED)
            matched += value is not NOT_REACHED
            # The definition lives as long as the page: its id names it on this page.
            key = (id(definition), item.id, value)
            row = memo.get(key)
            if row is None:
                row = memo[key] = _answer_row(_item_answer(item, given))
            parts.append(row)
        if matched < len(given):  # answers to items the definition no longer has
            parts.extend(map(_answer_row, _answers(definition, given)[len(parts) :]))
        return Markup("".join(parts))  # noqa: S704 - every text escaped by _answer_row


def _entered_by(response: SurveyResponse, staff: dict[int, str]) -> str:
    if response.entered_by_id is None:
        return "the patient"
    name = staff.get(response.entered_by_id, "a former member of staff")
    source = SOURCE_LABELS.get(response.entry_source or "", response.entry_source or "")
    return f"staff: {name}" + (f" ({source})" if source else "")


# The record -----------------------------------------------------------------------------------


@dataclass
class PatientRecord:
    patient: Patient
    courses: list[Course]  # newest first
    trends: list[Trend]  # newest course first, domains in reading order
    answered: list[AnsweredAssessment]  # newest first
    alerts: list[Alert]  # newest first
    notes: list[StaffNote]  # newest first

    @cached_property
    def current_course(self) -> Course | None:
        """The newest course with scores, else the newest course."""
        for course in self.courses:
            if any(t.course is course for t in self.trends):
                return course
        return self.courses[0] if self.courses else None

    @property
    def current_trends(self) -> list[Trend]:
        return [t for t in self.trends if t.course is self.current_course]

    @property
    def earlier_trends(self) -> list[Trend]:
        return [t for t in self.trends if t.course is not self.current_course]

    @property
    def open_alerts(self) -> list[Alert]:
        """Alerts not yet resolved: urgent first, then next visit, then information; newest
        first within a tier."""
        found = [a for a in self.alerts if a.status in OPEN_ALERT_STATUSES]
        return sorted(found, key=lambda a: TIER_ORDER.index(a.tier))


def patient_record(
    session: Session, registry: Registry, patient: Patient, now: dt.datetime
) -> PatientRecord:
    """Everything the patient page shows but its messages, in a fixed number of queries."""
    zone = patient.time_zone
    enrollments = (
        session.scalars(
            select(Enrollment)
            .where(Enrollment.patient_id == patient.id)
            .options(
                joinedload(Enrollment.protocol),
                joinedload(Enrollment.sessions),  # five a course: joined, not a statement more
                selectinload(Enrollment.assessments).joinedload(Assessment.timepoint),
            )
            .order_by(Enrollment.anchor_on.desc(), Enrollment.id.desc())
        )
        .unique()
        .all()
    )
    # The patient's courses as their relationship orders them, so that the page's other readers
    # of patient.enrollments (the open questionnaire) need no statement of their own.
    set_committed_value(
        patient, "enrollments", sorted(enrollments, key=lambda e: (e.anchor_on, e.id))
    )
    courses = [_course(e, zone, now) for e in enrollments]
    assessments = {a.id: a for e in enrollments for a in e.assessments}
    # Scores and responses belong to a course's questionnaires: none without them.
    scores: Sequence[StoredScore] = []
    responses: Sequence[SurveyResponse] = []
    if assessments:
        scores = session.execute(
            select(*Score.__table__.c)
            .where(Score.patient_id == patient.id)
            .order_by(Score.observed_at, Score.id)
        ).all()
        responses = session.scalars(
            select(SurveyResponse)
            .where(SurveyResponse.assessment_id.in_(list(assessments)))
            .options(joinedload(SurveyResponse.instrument))
            .order_by(SurveyResponse.id)
        ).all()
    given: dict[int, dict[str, int | None]] = {r.id: {} for r in responses}
    if responses:
        for response_id, item_id, value in session.execute(
            select(SurveyAnswer.response_id, SurveyAnswer.item_id, SurveyAnswer.value)
            .where(SurveyAnswer.response_id.in_(list(given)))
            .order_by(SurveyAnswer.response_id, SurveyAnswer.id)
        ):
            given[response_id][item_id] = value
    staff_ids = {r.entered_by_id for r in responses if r.entered_by_id is not None}
    staff = (
        dict(
            session.execute(
                select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(staff_ids))
            ).all()
        )
        if staff_ids
        else {}
    )
    alerts = patient_alerts(session, patient)
    notes = session.scalars(
        select(StaffNote)
        .where(StaffNote.patient_id == patient.id)
        .options(joinedload(StaffNote.author))
        .order_by(StaffNote.created_at.desc(), StaffNote.id.desc())
    ).all()

    definitions = {r.id: scoring_definition(registry, r.instrument) for r in responses}
    labels = {a_id: a.timepoint.label for a_id, a in assessments.items()}
    by_enrollment: dict[int, list[StoredScore]] = {}
    for score in scores:
        by_enrollment.setdefault(score.enrollment_id, []).append(score)
    by_id = {e.id: e for e in enrollments}
    trends: list[Trend] = []
    for index, course in enumerate(courses):
        enrollment = course.enrollment
        source = by_id.get(enrollment.baseline_from_id or enrollment.id, enrollment)
        first_key = _first_timepoint_key(source)
        baseline_scores = [
            s for s in by_enrollment.get(source.id, []) if s.timepoint_key == first_key
        ]
        trends.extend(
            _trends_of_course(
                course,
                by_enrollment.get(enrollment.id, []),
                baseline_scores,
                definitions,
                labels,
                zone,
                index,
            )
        )

    course_of = {c.enrollment.id: c for c in courses}
    scores_of: dict[int, list[StoredScore]] = {}
    for score in scores:
        scores_of.setdefault(score.response_id, []).append(score)
    grouped: dict[int, list[ResponseView]] = {}
    table = AnswerRows()
    for response in responses:
        definition = definitions[response.id]
        grouped.setdefault(response.assessment_id, []).append(
            ResponseView(
                response=response,
                title=definition.title,
                entered_by=_entered_by(response, staff),
                scores=tuple(scores_of.get(response.id, ())),
                rows=table.rows(definition, given[response.id]),
                definition=definition,
                given=given[response.id],
            )
        )
    answered = [
        AnsweredAssessment(
            assessment=assessments[assessment_id],
            course=course_of[assessments[assessment_id].enrollment_id],
            responses=tuple(views),
        )
        for assessment_id, views in grouped.items()
        if assessment_id in assessments
    ]
    answered.sort(key=lambda a: _answered_at(a.responses), reverse=True)
    return PatientRecord(
        patient=patient,
        courses=courses,
        trends=trends,
        answered=answered,
        alerts=list(alerts),
        notes=list(notes),
    )


def _answered_at(views: Iterable[ResponseView]) -> dt.datetime:
    moments = [v.response.submitted_at or v.response.updated_at for v in views]
    return max(moments)


def add_note(session: Session, patient: Patient, author: StaffUser, text: str) -> StaffNote:
    """Append a note to a patient's record (notes are never edited or deleted)."""
    note = StaffNote(patient_id=patient.id, author_id=author.id, text=text)
    session.add(note)
    session.flush()
    return note


def threshold_text(threshold: ChangeThreshold, unit: str) -> str:
    """ "3 T", "30% of baseline", "10 points"."""
    value = f"{threshold.value:g}"
    if threshold.unit == "percent":
        return f"{value}% of baseline"
    if threshold.unit == "T":
        return f"{value} T"
    return f"{value} point{'s' if threshold.value != 1 else ''}"


def band_text(threshold: ChangeThreshold) -> str:
    """The band of no meaningful change, in words: "within 3 T of baseline"."""
    if threshold.unit == "percent":
        return f"within {threshold.value:g}% of the baseline score"
    return f"within {threshold_text(threshold, threshold.unit)} of baseline"


def signed(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A signed number with a real minus sign and the unit ("+4.1 T"); an em dash for none."""
    if value is None or math.isnan(value):
        return "\N{EM DASH}"
    text = f"{abs(value):.{digits}f}"
    sign = "+" if value > 0 else ("\N{MINUS SIGN}" if value < 0 else "\N{PLUS-MINUS SIGN}")
    return f"{sign}{text}" + (f" {unit}" if unit else "")


def change_amount(score: StoredScore, unit: str, threshold: ChangeThreshold | None) -> str:
    """How far from baseline, in words that carry the direction: "4.1 T worse",
    "35% better (2.3 points)"; "" without a comparison."""
    improvement = score.improvement
    if improvement is None:
        return ""
    if improvement == 0:
        return "no change"
    word = "better" if improvement > 0 else "worse"
    amount = f"{abs(improvement):.1f} {'T' if unit == 'T' else 'points'}"
    if threshold is not None and threshold.unit == "percent" and score.percent_improvement:
        amount = f"{abs(score.percent_improvement):.0f}% ({amount})"
    return f"{amount} {word}"


ARROWS = {"up": "\N{BLACK UP-POINTING TRIANGLE}", "down": "\N{BLACK DOWN-POINTING TRIANGLE}"}


@functools.lru_cache(maxsize=64)  # a few classes, arrows and criteria
def _change_html(value: str, direction: str, criterion: str) -> Markup:
    shown = ""
    if direction:
        shown = (
            f'<span class="arrow arrow-{direction}" aria-hidden="true">{ARROWS[direction]}</span> '
        )
    named = f' <span class="criterion">({escape(criterion)})</span>' if criterion else ""
    kind = escape(value.replace(" ", "-"))
    return Markup(  # noqa: S704 - every text escaped
        f'<span class="change change-{kind}">{shown}{escape(value)}</span>{named}'
    )


NO_CHANGE_HTML = Markup('<span class="hint">\N{EM DASH}</span>')


def change_html(value: str | None, improvement: float | None = None, criterion: str = "") -> Markup:
    """A change class with its arrow (up is always better) and the criterion that gave it;
    a dash for none. The patient list shows hundreds: written once per kind."""
    if not value:
        return NO_CHANGE_HTML
    return _change_html(value, arrow(improvement), criterion or "")


def score_text(value: float, unit: str) -> str:
    """A score with its unit: "T 61.2", "7"."""
    return f"{unit} {charts.format_value(value, unit)}" if unit else charts.format_value(value)


def template_helpers() -> dict[str, Any]:
    """Functions the patient page templates call."""
    return {
        "band_text": band_text,
        "change_amount": change_amount,
        "change_html": change_html,
        "threshold_text": threshold_text,
        "score_text": score_text,
        "signed": signed,
        "format_value": charts.format_value,
        "domain_label": domain_label,
    }
