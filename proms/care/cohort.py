"""The cohort report: the study's table for one protocol and a range of course start dates.

Per domain (one instrument and scale per row) and time point: the courses eligible, how many
responded, the share meaningfully improved and worsened by both criteria with Wilson intervals,
and the mean change with its t interval; then the share of courses that completed every infusion
day, the share of patients who came back for another course, side effects by severity, and the
message funnel by channel and language. docs/reports.md defines every figure.

Everything is counted in the database: a fixed number of aggregate queries (GROUP BY), whatever
the number of patients, courses or scores (`cohort_report` runs eleven: the protocol with its
time points and clinics, the unscored questionnaires' snapshots, then seven aggregates). Each
large table is read once, from an index in the order its aggregate needs and with the columns it
reads; when every course in the database is the report's, no row is checked against the courses
(`_Scope.whole`), else the rows are found from the report's courses. The pure statistics are in
proms.scoring.cohort. Reads only: nothing is flushed.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import (
    ColumnElement,
    Engine,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session, selectinload

from proms.admin.models import (
    COURSE_DAYS,
    SIDE_EFFECTS,
    Enrollment,
    EnrollmentStatus,
    Patient,
    Protocol,
    ProtocolTimepoint,
    SessionStatus,
    TreatmentSession,
)
from proms.catalog.models import Instrument
from proms.catalog.services import stored_definition
from proms.instruments.model import InstrumentDefinition, ScoringMethod
from proms.instruments.registry import Registry
from proms.outcomes.models import Score
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from proms.scoring.change import Classification, Threshold
from proms.scoring.cohort import (
    CRITERIA,
    MeanInterval,
    Proportion,
    mean_interval_from_sums,
    proportion,
)
from proms.scoring.types import Direction
from proms.surveys.models import AccessToken, ResponseStatus, SurveyAnswer, SurveyResponse

COMPARABLE = (Classification.IMPROVED, Classification.WORSENED, Classification.NO_CHANGE)
FUNNEL_STEPS = ("sent", "delivered", "opened", "started", "completed")


class UnknownProtocol(LookupError):
    """No protocol with this slug in the clinics asked about."""


# What the report is made of ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion's classification of the comparable follow-ups of a row.

    `compared` counts the scores the criterion could decide (improved, worsened or no
    meaningful change); the shares are of those. The mean change is over the same scores.
    """

    name: str
    compared: int
    improved: Proportion
    worsened: Proportion
    no_change: int
    not_comparable: int
    mean_change: MeanInterval | None


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One instrument scale at one time point."""

    timepoint_key: str
    timepoint_label: str
    offset_days: int
    is_baseline: bool
    eligible: int
    responded: Proportion  # count: courses with a score; n: courses eligible
    criteria: tuple[CriterionResult, ...]  # empty at baseline

    def criterion(self, name: str) -> CriterionResult | None:
        return next((c for c in self.criteria if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Measure:
    """One instrument's scale (one domain), with its threshold and its rows, oldest first."""

    domain: str
    instrument_code: str
    instrument_version: str
    scale: str
    title: str
    direction: Direction | None
    threshold: Threshold | None
    rows: tuple[OutcomeRow, ...]

    @property
    def label(self) -> str:
        domain = self.domain.replace("_", " ")
        return domain if self.scale == "total" else f"{domain} ({self.scale.replace('_', ' ')})"

    def row(self, timepoint_key: str) -> OutcomeRow | None:
        return next((row for row in self.rows if row.timepoint_key == timepoint_key), None)

    @property
    def follow_ups(self) -> tuple[OutcomeRow, ...]:
        return tuple(row for row in self.rows if not row.is_baseline)

    @property
    def has_responses(self) -> bool:
        return any(row.responded.count for row in self.rows)

    @property
    def individual_available(self) -> bool:
        """Whether the individual criterion decided any follow-up (it needs standard errors,
        which only PROMIS scores have)."""
        return any(c.compared for row in self.rows for c in row.criteria if c.name != "threshold")

    @property
    def has_changes(self) -> bool:
        """Whether any follow-up could be compared with its baseline (what a chart shows)."""
        return any(c.compared for row in self.rows for c in row.criteria)


@dataclass(frozen=True, slots=True)
class Completion:
    """Courses that completed every infusion day, of the courses that can be judged."""

    completed: Proportion
    not_over: int  # no day recorded yet and the last planned day still to come
    none_recorded: int  # the last day has passed, yet no infusion day was recorded
    treated: int  # courses with at least one infusion given


@dataclass(frozen=True, slots=True)
class StaffSideEffect:
    key: str
    label: str
    courses: Proportion  # of the courses with at least one infusion given


@dataclass(frozen=True, slots=True)
class SeverityCount:
    value: int
    label: str
    share: Proportion  # of the submitted responses


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    item_id: str
    text: str
    severities: tuple[SeverityCount, ...]
    not_answered: int


@dataclass(frozen=True, slots=True)
class Checklist:
    """A patient-reported, unscored checklist (side effects) at one time point."""

    instrument_code: str
    instrument_version: str
    title: str
    timepoint_key: str
    timepoint_label: str
    responses: int
    items: tuple[ChecklistItem, ...]

    @property
    def columns(self) -> tuple[tuple[int, str], ...]:
        """The answer values and labels of the first item (a checklist's items share them)."""
        return tuple((s.value, s.label) for s in self.items[0].severities) if self.items else ()


@dataclass(frozen=True, slots=True)
class FunnelRow:
    """Time points messaged on one channel, for patients of one language.

    The unit is an assessment (a course's time point) with at least one message sent on the
    channel. `delivered` is None when the channel reported no delivery at all (email has no
    delivery receipts).
    """

    channel: str
    language: str
    sent: int
    delivered: int | None
    opened: int
    started: int
    completed: int

    def step(self, name: str) -> int | None:
        return getattr(self, name)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class CohortReport:
    protocol_slug: str
    protocol_name: str
    versions: tuple[int, ...]
    clinics: tuple[str, ...]
    start_on: dt.date | None
    end_on: dt.date | None
    generated_at: dt.datetime
    confidence: float
    courses: int
    patients: int
    measures: tuple[Measure, ...]
    completion: Completion
    returned: Proportion  # patients with a later course, of the patients with a course here
    staff_side_effects: tuple[StaffSideEffect, ...]
    checklists: tuple[Checklist, ...]
    funnel: tuple[FunnelRow, ...]
    course_days: int = COURSE_DAYS

    @property
    def follow_up_timepoints(self) -> tuple[tuple[str, str], ...]:
        """(key, label) of every follow-up time point of the outcome tables, in order."""
        seen: dict[str, tuple[int, str]] = {}
        for measure in self.measures:
            for row in measure.follow_ups:
                seen.setdefault(row.timepoint_key, (row.offset_days, row.timepoint_label))
        ordered = sorted(seen.items(), key=lambda item: (item[1][0], item[0]))
        return tuple((key, label) for key, (_offset, label) in ordered)


@dataclass(frozen=True, slots=True)
class ProtocolChoice:
    slug: str
    name: str


# Building it ---------------------------------------------------------------------------------


def protocol_choices(session: Session, clinic_ids: Sequence[int]) -> list[ProtocolChoice]:
    """The protocols of these clinics by slug, named by their latest version, in name order."""
    rows = session.execute(
        select(Protocol.slug, Protocol.name, Protocol.version)
        .where(Protocol.clinic_id.in_(clinic_ids))
        .order_by(Protocol.slug, Protocol.version)
    ).all()
    latest = {slug: name for slug, name, _version in rows}
    return sorted((ProtocolChoice(s, n) for s, n in latest.items()), key=lambda c: (c.name, c.slug))


def cohort_report(
    session: Session,
    registry: Registry,
    *,
    clinic_ids: Sequence[int],
    protocol_slug: str,
    start_on: dt.date | None = None,
    end_on: dt.date | None = None,
    now: dt.datetime,
    confidence: float = 0.95,
) -> CohortReport:
    """The report for every version of `protocol_slug` in `clinic_ids`, for the courses whose
    anchor date (first infusion day) falls from `start_on` to `end_on`, both included.

    `now` decides which windows have closed. Raises UnknownProtocol when the clinics have no
    protocol with that slug.
    """
    protocols = list(
        session.scalars(
            select(Protocol)
            .where(Protocol.clinic_id.in_(clinic_ids), Protocol.slug == protocol_slug)
            .options(selectinload(Protocol.timepoints), selectinload(Protocol.clinic))
            .order_by(Protocol.version, Protocol.id)
        )
    )
    if not protocols:
        raise UnknownProtocol(protocol_slug)
    scope = _Scope(protocols, start_on, end_on)
    timepoints = _Timepoints(protocols)
    definitions = _Definitions(session, registry)

    patients, courses, returned, whole = _courses_and_returns(session, scope)
    scope.whole = whole  # if so, the later aggregates check no row's course
    found = run_aggregates(
        session,
        completion=lambda s: _completion(s, scope, now.date(), confidence),
        measures=lambda s: _measures(s, scope, timepoints, definitions, now, confidence),
        checklists=lambda s: _checklists(s, scope, timepoints, definitions, confidence),
        funnel=lambda s: _funnel(s, scope),
    )
    completion, staff_side_effects = found["completion"]
    return CohortReport(
        protocol_slug=protocol_slug,
        protocol_name=protocols[-1].name,
        versions=tuple(sorted({p.version for p in protocols})),
        clinics=tuple(sorted({p.clinic.name for p in protocols})),
        start_on=start_on,
        end_on=end_on,
        generated_at=now,
        confidence=confidence,
        courses=courses,
        patients=patients,
        measures=found["measures"],
        completion=completion,
        returned=proportion(returned, patients, confidence),
        staff_side_effects=staff_side_effects,
        checklists=found["checklists"],
        funnel=found["funnel"],
    )


# A snapshot's name as pg_export_snapshot() writes it, e.g. 00000003-0000001B-1.
_SNAPSHOT_NAME = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def run_aggregates(session: Session, **jobs: Callable[[Session], Any]) -> dict[str, Any]:
    """Run the report's large aggregates, each on a session it is given.

    On PostgreSQL they run at once, each on a connection of its own, so that the report takes
    about as long as its slowest aggregate rather than the sum of them (the database server
    uses a core for each). Every connection imports the snapshot this session exports: the
    aggregates see the database as of one moment, as they would one after the other in one
    REPEATABLE READ transaction. On SQLite (one writer, and a file read by one process) and
    on a session bound to a connection rather than an engine, they run one after the other
    on `session` itself.
    """
    bind = session.get_bind()
    if not (isinstance(bind, Engine) and bind.dialect.name == "postgresql" and len(jobs) > 1):
        return {name: job(session) for name, job in jobs.items()}
    snapshot = str(session.scalar(text("SELECT pg_export_snapshot()")))
    if not _SNAPSHOT_NAME.fullmatch(snapshot):  # it is spliced into a statement below
        raise RuntimeError(f"unexpected snapshot name {snapshot!r}")

    def run(job: Callable[[Session], Any]) -> Any:
        with bind.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                with Session(bind=connection) as worker:
                    return job(worker)

    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="cohort") as pool:
        futures = {name: pool.submit(run, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


class _Scope:
    """The courses of the report: every version of the protocol, anchor dates in range."""

    def __init__(
        self, protocols: Sequence[Protocol], start_on: dt.date | None, end_on: dt.date | None
    ) -> None:
        self.protocol_ids = [p.id for p in protocols]
        self.start_on = start_on
        self.end_on = end_on
        # Whether every course in the database is one of the report's (every clinic's courses
        # of a network's one protocol, no dates): the large tables are then read whole, in
        # their indexes' order and in parallel, and no row is checked against the courses.
        # Known from the first aggregate (`_courses_and_returns`).
        self.whole = False

    def courses(self, enrollment: Any = Enrollment) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [enrollment.protocol_id.in_(self.protocol_ids)]
        if self.start_on is not None:
            conditions.append(enrollment.anchor_on >= self.start_on)
        if self.end_on is not None:
            conditions.append(enrollment.anchor_on <= self.end_on)
        return conditions

    def includes(self) -> ColumnElement[bool]:
        """Whether an enrollment row is one of the report's courses."""
        return and_(*self.courses())

    def covers(self, enrollment_id: Any) -> ColumnElement[bool]:
        """Whether a row of a large table (by its `enrollment_id`) is of one of the report's
        courses: nothing to check when the report is `whole`, else a semi-join to the courses
        (PostgreSQL starts from them when they are few)."""
        if self.whole:
            return true()
        return enrollment_id.in_(select(Enrollment.id).where(*self.courses()))

    def outside(self) -> Any:
        """The ids of the courses outside the report, each part read by index: the courses of
        every other protocol, then this protocol's courses before or after the dates."""
        others = select(Protocol.id).where(Protocol.id.not_in(self.protocol_ids))
        found = select(Enrollment.id).where(Enrollment.protocol_id.in_(others))
        dates = []
        if self.start_on is not None:
            dates.append(Enrollment.anchor_on < self.start_on)
        if self.end_on is not None:
            dates.append(Enrollment.anchor_on > self.end_on)
        if not dates:
            return found
        return found.union_all(
            select(Enrollment.id).where(Enrollment.protocol_id.in_(self.protocol_ids), or_(*dates))
        )


class _Timepoints:
    """The time points of every version, ordered and labelled as the latest version has them."""

    def __init__(self, protocols: Sequence[Protocol]) -> None:
        self.by_id: dict[int, ProtocolTimepoint] = {}
        self.by_version_key: dict[tuple[int, str], ProtocolTimepoint] = {}
        label: dict[str, tuple[int, str]] = {}
        for protocol in protocols:  # oldest version first: the latest's labels win
            for timepoint in protocol.timepoints:
                self.by_id[timepoint.id] = timepoint
                self.by_version_key[(protocol.id, timepoint.key)] = timepoint
                label[timepoint.key] = (timepoint.offset_days, timepoint.label)
        self.baseline_keys = {p.timepoints[0].key for p in protocols if p.timepoints}
        self.offset = {key: value[0] for key, value in label.items()}
        self.label = {key: value[1] for key, value in label.items()}
        # Instrument codes in the order the protocol asks them, first seen first.
        codes: dict[str, None] = {}
        for protocol in reversed(protocols):
            for timepoint in protocol.timepoints:
                codes.update(dict.fromkeys(timepoint.instrument_codes))
        self.codes = list(codes)

    def order(self, key: str) -> tuple[int, str]:
        return (self.offset.get(key, 10**6), key)

    def label_of(self, key: str) -> str:
        return self.label.get(key, key)


class _Definitions:
    """Instrument definitions by code and version: this release's, else a stored snapshot."""

    def __init__(self, session: Session, registry: Registry) -> None:
        self.session = session
        self.registry = registry
        self._stored: dict[tuple[str, str], InstrumentDefinition | None] = {}
        # The aggregates may run in threads (`run_aggregates`): a version this release no longer
        # ships is read through the caller's session one thread at a time (the caller itself
        # only waits meanwhile).
        self._lock = threading.Lock()

    def get(self, code: str, version: str | None = None) -> InstrumentDefinition | None:
        try:
            return self.registry.get(code, version)
        except KeyError:
            pass
        if version is None:
            return None
        with self._lock:
            if (code, version) not in self._stored:
                # A version this release no longer ships: one query per such version.
                row = self.session.scalar(
                    select(Instrument)
                    .where(Instrument.code == code, Instrument.version == version)
                    .order_by(Instrument.created_at.desc(), Instrument.id.desc())
                    .limit(1)
                )
                found = stored_definition(row) if row is not None else None
                self._stored[(code, version)] = found
            return self._stored[(code, version)]

    def pinned_version(self, timepoint: ProtocolTimepoint, code: str) -> str | None:
        """The version a time point asks for (the catalogue's current one when not pinned)."""
        version = (timepoint.instrument_versions or {}).get(code)
        if version is not None:
            return version
        current = self.get(code)
        return current.version if current is not None else None


def _primary_scales(definition: InstrumentDefinition | None) -> dict[str, Threshold]:
    if definition is None:
        return {}
    return {t.scale: t.to_threshold() for t in definition.thresholds if t.primary}


# Outcomes ------------------------------------------------------------------------------------


# The stored classification of each criterion (proms.scoring.cohort.CRITERIA), in that order.
_CRITERION_COLUMNS = {
    "threshold": Score.change_by_threshold,
    "individual": Score.change_by_individual,
}
assert tuple(_CRITERION_COLUMNS) == CRITERIA


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _measures(
    session: Session,
    scope: _Scope,
    timepoints: _Timepoints,
    definitions: _Definitions,
    now: dt.datetime,
    confidence: float,
) -> tuple[Measure, ...]:
    eligible_by_timepoint = dict(
        session.execute(
            select(Assessment.timepoint_id, func.count())
            .where(
                scope.covers(Assessment.enrollment_id),
                Assessment.status != AssessmentStatus.CANCELLED,
                or_(Assessment.status == AssessmentStatus.COMPLETED, Assessment.closes_at <= now),
            )
            .group_by(Assessment.timepoint_id)
        ).all()
    )

    # Scores: one row per time point, instrument version and scale, of the scales with a
    # meaningful-change threshold (PASS-20's subscales have none: almost half its scores).
    scales = {
        scale
        for code in timepoints.codes
        for version in {definitions.pinned_version(tp, code) for tp in timepoints.by_id.values()}
        for scale in _primary_scales(definitions.get(code, version) if version else None)
    }
    # Grouped by both classifications as well: a handful of groups per row, and three plain
    # aggregates per score rather than a conditional sum per class and criterion. The groups
    # are in the order of ix_score_report_groups, which holds every column read: the scores
    # arrive grouped, and are counted as they come (in parallel on PostgreSQL).
    keys = (
        Score.scale,
        Score.timepoint_key,
        Score.instrument_code,
        Score.instrument_version,
        Score.change_by_threshold,
        Score.change_by_individual,
    )
    scored = session.execute(
        select(
            *keys,
            func.count(),
            func.count(Score.improvement),
            func.sum(Score.improvement),
            func.sum(Score.improvement * Score.improvement),
        )
        .where(Score.scale.in_(sorted(scales)), scope.covers(Score.enrollment_id))
        .group_by(*keys)
    ).all()

    # (time point key, code, version, scale) -> counts
    counts: dict[tuple[str, str, str, str], _Counts] = {}
    for scale, key, code, version, by_threshold, by_individual, *sums in scored:
        if scale not in _primary_scales(definitions.get(code, version)):
            continue  # this instrument has no threshold for a scale of that name
        found = counts.setdefault((key, code, version, scale), _Counts())
        found.add(by_threshold, by_individual, *sums)

    eligible: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for timepoint_id, n in eligible_by_timepoint.items():
        timepoint = timepoints.by_id.get(timepoint_id)
        if timepoint is None:
            continue  # a time point of a protocol outside the report (cannot happen: scoped)
        for code in timepoint.instrument_codes:
            version = definitions.pinned_version(timepoint, code)
            if version is None:
                continue
            for scale in _primary_scales(definitions.get(code, version)):
                eligible[(timepoint.key, code, version, scale)] += n

    measures: dict[tuple[str, str, str], list[OutcomeRow]] = defaultdict(list)
    for row_key in sorted(eligible.keys() | counts.keys(), key=lambda k: timepoints.order(k[0])):
        key, code, version, scale = row_key
        found = counts.get(row_key) or _Counts()
        responded = found.responded
        # A response to an instrument the time point does not list (a protocol edited in
        # place) makes its course eligible too: a rate is never above 100%.
        n_eligible = max(eligible.get(row_key, 0), responded)
        is_baseline = key in timepoints.baseline_keys
        criteria = () if is_baseline else found.criteria(confidence)
        measures[(code, version, scale)].append(
            OutcomeRow(
                timepoint_key=key,
                timepoint_label=timepoints.label_of(key),
                offset_days=timepoints.offset.get(key, 0),
                is_baseline=is_baseline,
                eligible=n_eligible,
                responded=proportion(responded, n_eligible, confidence),
                criteria=criteria,
            )
        )

    order = {code: i for i, code in enumerate(timepoints.codes)}
    result = []
    for (code, version, scale), rows in sorted(
        measures.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0])
    ):
        definition = definitions.get(code, version)
        result.append(
            Measure(
                domain=definition.domain if definition else "unknown",
                instrument_code=code,
                instrument_version=version,
                scale=scale,
                title=definition.title if definition else code,
                direction=definition.direction if definition else None,
                threshold=_primary_scales(definition).get(scale),
                rows=tuple(rows),
            )
        )
    return tuple(result)


class _Counts:
    """The scores of one row, by class: (scores, improvements, their sum and sum of squares)
    per classification of each criterion."""

    def __init__(self) -> None:
        self.responded = 0
        self.by_class: dict[str, dict[str | None, list[float]]] = {
            name: defaultdict(lambda: [0, 0, 0.0, 0.0]) for name in _CRITERION_COLUMNS
        }

    def add(
        self,
        by_threshold: str | None,
        by_individual: str | None,
        scores: int,
        n: int,
        total: float | None,
        squares: float | None,
    ) -> None:
        self.responded += scores
        for name, value in (("threshold", by_threshold), ("individual", by_individual)):
            sums = self.by_class[name][value]
            sums[0] += scores
            sums[1] += n
            sums[2] += float(total or 0.0)
            sums[3] += float(squares or 0.0)

    def criteria(self, confidence: float) -> tuple[CriterionResult, ...]:
        results = []
        for name, by_class in self.by_class.items():

            def count(c: Classification, by_class: Any = by_class) -> int:
                return int(by_class[c.value][0]) if c.value in by_class else 0

            improved = count(Classification.IMPROVED)
            worsened = count(Classification.WORSENED)
            no_change = count(Classification.NO_CHANGE)
            compared = improved + worsened + no_change
            # The mean change of the same scores the shares are of (the comparable ones).
            n, total, squares = (
                sum(by_class[c.value][i] for c in COMPARABLE if c.value in by_class)
                for i in (1, 2, 3)
            )
            results.append(
                CriterionResult(
                    name=name,
                    compared=compared,
                    improved=proportion(improved, compared, confidence),
                    worsened=proportion(worsened, compared, confidence),
                    no_change=no_change,
                    not_comparable=count(Classification.NOT_COMPARABLE),
                    mean_change=mean_interval_from_sums(int(n), total, squares, confidence),
                )
            )
        return tuple(results)


# Courses: completion, returns, side effects --------------------------------------------------


def _courses_and_returns(session: Session, scope: _Scope) -> tuple[int, int, int, bool]:
    """(patients, courses, patients with a later course than their first one here, whether
    every course in the database is one of the report's).

    One pass over the enrollments of the patients who have a course in the report: the first
    of their courses here, and their last course that was not withdrawn (any protocol). The
    same statement looks for a course outside the report (by index: it stops at the first).
    """
    inside = scope.includes()
    per_patient = (
        select(
            func.min(case((inside, Enrollment.anchor_on))).label("first_on"),
            _count_if(inside).label("courses"),
            func.max(
                case((Enrollment.status != EnrollmentStatus.WITHDRAWN, Enrollment.anchor_on))
            ).label("last_on"),
        )
        .where(
            Enrollment.patient_id.in_(
                select(Enrollment.patient_id).where(*scope.courses()).scalar_subquery()
            )
        )
        .group_by(Enrollment.patient_id)
        .subquery()
    )
    patients, courses, returned, outside = session.execute(
        select(
            func.count(),
            func.sum(per_patient.c.courses),
            _count_if(per_patient.c.last_on > per_patient.c.first_on),
            exists(scope.outside()),
        )
    ).one()
    return int(patients), int(courses or 0), int(returned or 0), not outside


def _completion(
    session: Session, scope: _Scope, today: dt.date, confidence: float
) -> tuple[Completion, tuple[StaffSideEffect, ...]]:
    """Courses that completed every infusion day, and the side effects staff noted on a day
    given: one pass over the infusion days of the report's courses.

    A course is judged once it has a day recorded (given or missed) and its last day has
    passed, or all its days are recorded. Side effects are counted per course (noted on any
    day), of the courses with at least one infusion given.
    """
    given = TreatmentSession.status == SessionStatus.DONE
    noted = cast(TreatmentSession.side_effects, Text)  # JSON text: '["nausea", "headache"]'
    # One row per course of the report, with its infusion days (none: still a row), read in
    # course order: the courses by primary key, their days (status and side effects) from
    # ix_treatment_session_enrollment_id.
    per_course = (
        select(
            Enrollment.anchor_on.label("anchor_on"),
            _count_if(given).label("done"),
            _count_if(
                TreatmentSession.status.in_([SessionStatus.DONE, SessionStatus.MISSED])
            ).label("recorded"),
            # The side effects noted on the course's days given, as one text: most days note
            # none, so each course's text is searched once per effect, not each of its days.
            func.aggregate_strings(case((and_(given, noted != "[]"), noted)), " ").label("noted"),
        )
        .select_from(Enrollment)
        .outerjoin(TreatmentSession, TreatmentSession.enrollment_id == Enrollment.id)
        .where(*scope.courses())
        .group_by(Enrollment.id)
        .subquery()
    )
    course = per_course.c
    # The last infusion day is anchor + COURSE_DAYS - 1; it has passed when it is before today.
    over = course.anchor_on <= today - dt.timedelta(days=COURSE_DAYS)
    judged = and_(course.recorded > 0, or_(over, course.recorded >= COURSE_DAYS))
    completed, n, not_over, none_recorded, treated, *effects = session.execute(
        select(
            _count_if(and_(judged, course.done >= COURSE_DAYS)),
            _count_if(judged),
            _count_if(and_(~judged, ~over)),
            _count_if(and_(course.recorded == 0, over)),
            _count_if(course.done > 0),
            *(
                _count_if(course.noted.contains(f'"{key}"', autoescape=True))
                for key in SIDE_EFFECTS
            ),
        )
    ).one()
    treated = int(treated or 0)
    staff = sorted(
        (
            StaffSideEffect(key, label, proportion(int(count or 0), treated, confidence))
            for (key, label), count in zip(SIDE_EFFECTS.items(), effects, strict=True)
        ),
        key=lambda effect: -effect.courses.count,
    )
    completion = Completion(
        completed=proportion(int(completed or 0), int(n or 0), confidence),
        not_over=int(not_over or 0),
        none_recorded=int(none_recorded or 0),
        treated=treated,
    )
    return completion, tuple(staff)


def _checklists(
    session: Session,
    scope: _Scope,
    timepoints: _Timepoints,
    definitions: _Definitions,
    confidence: float,
) -> tuple[Checklist, ...]:
    """Answers to the protocol's unscored questionnaires (the side-effect checklist), per item
    and answer value (the severity), of the responses submitted at each time point."""
    codes = [
        code
        for code in timepoints.codes
        if (d := definitions.get(code)) is not None and d.scoring.method is ScoringMethod.NONE
    ]
    if not codes:
        return ()
    # The snapshots of those questionnaires, by id: a plain list lets the planner see how few
    # responses it will read, and start from them (not from the answers of every questionnaire).
    snapshots = {
        id_: (code, version)
        for id_, code, version in session.execute(
            select(Instrument.id, Instrument.code, Instrument.version).where(
                Instrument.code.in_(codes)
            )
        )
    }
    # The responses submitted to them, each with its time point: from the responses' index.
    submitted = (
        select(
            SurveyResponse.id.label("id"),
            Assessment.timepoint_id.label("timepoint_id"),
            SurveyResponse.instrument_id.label("instrument_id"),
        )
        .join(Assessment, SurveyResponse.assessment_id == Assessment.id)
        .where(
            SurveyResponse.instrument_id.in_(list(snapshots)),
            SurveyResponse.status == ResponseStatus.SUBMITTED,
            scope.covers(Assessment.enrollment_id),
        )
    )
    counted_responses = submitted.subquery()
    keys = (counted_responses.c.timepoint_id, counted_responses.c.instrument_id)
    responses = session.execute(select(*keys, func.count()).group_by(*keys)).all()
    # Their answers, by item: the checklist's items lie side by side in
    # ix_survey_answer_item_id_response_id (the answers to every other questionnaire are never
    # read), matched to the responses by a hash of them. OFFSET 0 keeps the responses a
    # subquery of their own: PostgreSQL, which cannot tell that these items are this
    # questionnaire's only, would otherwise look up a response's time point once per answer.
    items = {
        item.id
        for code, version in snapshots.values()
        if (definition := definitions.get(code, version)) is not None
        for item in definition.items
    }
    answered = submitted.offset(0).subquery()
    keys = (answered.c.timepoint_id, answered.c.instrument_id)
    answers = session.execute(
        select(*keys, SurveyAnswer.item_id, SurveyAnswer.value, func.count())
        .select_from(SurveyAnswer)
        .join(answered, SurveyAnswer.response_id == answered.c.id)
        .where(SurveyAnswer.item_id.in_(sorted(items)), SurveyAnswer.value.is_not(None))
        .group_by(*keys, SurveyAnswer.item_id, SurveyAnswer.value)
    ).all()

    def group(timepoint_id: int, instrument_id: int) -> tuple[str, str, str]:
        timepoint = timepoints.by_id.get(timepoint_id)
        return (timepoint.key if timepoint else str(timepoint_id), *snapshots[instrument_id])

    totals: dict[tuple[str, str, str], int] = defaultdict(int)
    for timepoint_id, instrument_id, n in responses:
        totals[group(timepoint_id, instrument_id)] += n
    counted: dict[tuple[str, str, str], dict[tuple[str, int], int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for timepoint_id, instrument_id, item_id, value, n in answers:
        counted[group(timepoint_id, instrument_id)][(item_id, value)] += n

    result = []
    for (key, code, version), n in sorted(
        totals.items(), key=lambda item: (timepoints.order(item[0][0]), item[0][1:])
    ):
        definition = definitions.get(code, version)
        if definition is None:
            continue
        found = counted[(key, code, version)]
        items = []
        for item in definition.items:
            severities = tuple(
                SeverityCount(
                    option.value,
                    option.label,
                    proportion(found.get((item.id, option.value), 0), n, confidence),
                )
                for option in item.options
            )
            answered = sum(s.share.count for s in severities)
            items.append(ChecklistItem(item.id, item.text, severities, n - answered))
        result.append(
            Checklist(
                instrument_code=code,
                instrument_version=version,
                title=definition.title,
                timepoint_key=key,
                timepoint_label=timepoints.label_of(key),
                responses=n,
                items=tuple(items),
            )
        )
    return tuple(result)


# Messages ------------------------------------------------------------------------------------


def _funnel(session: Session, scope: _Scope) -> tuple[FunnelRow, ...]:
    """Per channel and patient language: the time points messaged, and how far each got.

    Opened: a link from one of those messages was used to start (the "Start" button records a
    link's use; opening it records nothing, since mail scanners fetch links too). Started: the
    questionnaire was started (its drafts exist), by any route. Completed: the answers were
    sent, by any route (also by staff).
    """
    used = (
        select(AccessToken.notification_id)
        .where(AccessToken.notification_id.is_not(None), AccessToken.last_used_at.is_not(None))
        .scalar_subquery()
    )
    sent = [Notification.status == NotificationStatus.SENT]
    if not scope.whole:  # only the messages of the report's courses, found from those courses
        sent.append(
            Notification.assessment_id.in_(
                select(Assessment.id).where(scope.covers(Assessment.enrollment_id))
            )
        )
    # First the messages of each time point and channel, in the order of the funnel's index
    # (ix_notification_assessment_id_channel, read alone): a million messages become a
    # few hundred thousand rows before anything is joined to them.
    per_channel = (
        select(
            Notification.assessment_id.label("assessment_id"),
            Notification.channel.label("channel"),
            func.max(case((Notification.delivery_status.is_not(None), 1), else_=0)).label(
                "reported"
            ),
            func.max(case((Notification.delivery_status == "delivered", 1), else_=0)).label(
                "delivered"
            ),
            func.max(case((Notification.id.in_(used), 1), else_=0)).label("opened"),
        )
        .where(*sent)
        .group_by(Notification.assessment_id, Notification.channel)
        .subquery()
    )
    # The report's courses with their patient's language. OFFSET 0 keeps this a subquery of
    # its own (a small hash, built once): joined table by table instead, PostgreSQL would run
    # the join in parallel workers that each count every message again.
    courses = (
        select(Enrollment.id.label("id"), Patient.language.label("language"))
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(*scope.courses())
        .offset(0)
        .subquery()
    )
    # Then each of those once: its time point (started, completed) and course (in the report,
    # in which language).
    messaged = per_channel.c
    rows = session.execute(
        select(
            messaged.channel,
            courses.c.language,
            func.count(),
            func.sum(messaged.reported),
            func.sum(messaged.delivered),
            func.sum(messaged.opened),
            _count_if(Assessment.started_at.is_not(None)),
            _count_if(Assessment.status == AssessmentStatus.COMPLETED),
        )
        .select_from(per_channel)
        .join(Assessment, Assessment.id == messaged.assessment_id)
        .join(courses, courses.c.id == Assessment.enrollment_id)
        .group_by(messaged.channel, courses.c.language)
        .order_by(messaged.channel, courses.c.language)
    ).all()
    return tuple(
        FunnelRow(
            channel=str(getattr(channel, "value", channel)),
            language=language,
            sent=int(sent),
            delivered=int(delivered or 0) if reported else None,
            opened=int(opened or 0),
            started=int(started or 0),
            completed=int(completed or 0),
        )
        for channel, language, sent, reported, delivered, opened, started, completed in rows
    )


# Flat rows (CSV, the command line) ----------------------------------------------------------

CSV_COLUMNS = (
    "section",
    "timepoint",
    "offset_days",
    "domain",
    "instrument",
    "instrument_version",
    "scale",
    "criterion",
    "threshold",
    "threshold_unit",
    "eligible",
    "responded",
    "response_rate",
    "compared",
    "improved",
    "improved_share",
    "improved_lower",
    "improved_upper",
    "worsened",
    "worsened_share",
    "worsened_lower",
    "worsened_upper",
    "no_change",
    "not_comparable",
    "mean_change",
    "mean_change_lower",
    "mean_change_upper",
    "mean_change_n",
    "category",
    "count",
    "n",
    "share",
    "share_lower",
    "share_upper",
)


def csv_rows(report: CohortReport) -> Iterable[dict[str, object]]:
    """The report as tidy rows with CSV_COLUMNS: first the outcome table, one row per domain,
    time point and criterion (one row for a baseline, which has no change); then the course,
    side-effect and message figures, one row per figure (`category`, `count` of `n`)."""
    for measure in report.measures:
        base: dict[str, object] = {
            "section": "outcome",
            "domain": measure.domain,
            "instrument": measure.instrument_code,
            "instrument_version": measure.instrument_version,
            "scale": measure.scale,
            "threshold": measure.threshold.value if measure.threshold else None,
            "threshold_unit": measure.threshold.unit if measure.threshold else None,
        }
        for row in measure.rows:
            common = {
                **base,
                "timepoint": row.timepoint_key,
                "offset_days": row.offset_days,
                "eligible": row.eligible,
                "responded": row.responded.count,
                "response_rate": row.responded.share,
            }
            if not row.criteria:
                yield common
            for criterion in row.criteria:
                mean = criterion.mean_change
                yield {
                    **common,
                    "criterion": criterion.name,
                    "compared": criterion.compared,
                    **_share_columns("improved", criterion.improved),
                    **_share_columns("worsened", criterion.worsened),
                    "no_change": criterion.no_change,
                    "not_comparable": criterion.not_comparable,
                    "mean_change": mean.mean if mean else None,
                    "mean_change_lower": mean.lower if mean else None,
                    "mean_change_upper": mean.upper if mean else None,
                    "mean_change_n": mean.n if mean else 0,
                }
    completion = report.completion
    yield _figure("courses", "courses", report.courses, None, None)
    yield _figure("courses", "patients", report.patients, None, None)
    yield _figure("courses", "completed_all_infusion_days", None, completion.completed, None)
    yield _figure("courses", "course_not_over", completion.not_over, None, None)
    yield _figure("courses", "no_infusion_day_recorded", completion.none_recorded, None, None)
    yield _figure("courses", "patients_returned", None, report.returned, None)
    for effect in report.staff_side_effects:
        yield _figure("side_effect_staff", effect.key, None, effect.courses, None)
    for checklist in report.checklists:
        for item in checklist.items:
            for severity in item.severities:
                yield _figure(
                    "side_effect_reported",
                    f"{item.item_id}:{severity.label}",
                    None,
                    severity.share,
                    {
                        "timepoint": checklist.timepoint_key,
                        "instrument": checklist.instrument_code,
                        "instrument_version": checklist.instrument_version,
                    },
                )
    for funnel in report.funnel:
        for step in FUNNEL_STEPS:
            value = funnel.step(step)
            yield _figure(
                "messages",
                f"{funnel.channel}:{funnel.language}:{step}",
                value,
                None,
                {"n": funnel.sent},
            )


def _share_columns(name: str, share: Proportion) -> dict[str, object]:
    return {
        name: share.count,
        f"{name}_share": share.share,
        f"{name}_lower": share.lower,
        f"{name}_upper": share.upper,
    }


def _figure(
    section: str,
    category: str,
    count: int | None,
    share: Proportion | None,
    extra: Mapping[str, object] | None,
) -> dict[str, object]:
    row: dict[str, object] = {"section": section, "category": category, "count": count}
    if share is not None:
        row.update(
            count=share.count,
            n=share.n,
            share=share.share,
            share_lower=share.lower,
            share_upper=share.upper,
        )
    row.update(extra or {})
    return row


def write_csv(report: CohortReport, out: TextIO) -> None:
    """The tidy rows (`csv_rows`) as CSV; numbers rounded to 6 decimals, text cells that a
    spreadsheet would read as a formula neutralised."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({name: _cell(value) for name, value in row.items()})


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
