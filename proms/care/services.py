"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.outcomes.models import Alert, AlertStatus, Score
from proms.scheduling.models import OPEN_STATUSES, OVERDUE_WITHIN, Assessment, AssessmentStatus
from proms.scoring.change import Classification

# The scale a domain's trend, list entry and filter follow (PASS-20's subscales have no
# threshold of their own; they are shown with the answers).
TREND_SCALE = "total"

# Classifications that compare two scores (the others say why they could not be compared).
COMPARED = (
    Classification.IMPROVED.value,
    Classification.WORSENED.value,
    Classification.NO_CHANGE.value,
)

# Alert statuses that still need someone: all but "resolved" (read by value, so this holds
# before and after the alerts part adds that status).
OPEN_ALERT_STATUSES = tuple(status for status in AlertStatus if status.value != "resolved")

# Domains in the order clinicians read them, with their names; others follow by key.
DOMAIN_LABELS = {
    "pain_interference": "Pain interference",
    "physical_function": "Physical function",
    "sleep_disturbance": "Sleep disturbance",
    "pain_anxiety": "Pain-related anxiety",
    "pain": "Pain",
    "pain_intensity": "Pain intensity",
    "anxiety": "Anxiety",
}


def domain_label(domain: str) -> str:
    return DOMAIN_LABELS.get(domain) or domain.replace("_", " ").capitalize()


def domain_order(domain: str) -> tuple[int, str]:
    keys = list(DOMAIN_LABELS)
    return (keys.index(domain) if domain in keys else len(keys), domain)


def shown_change(by_individual: str | None, by_threshold: str | None) -> tuple[str | None, str]:
    """The change class a page shows, and by which criterion.

    The individual criterion (threshold and reliable change) where it could compare the two
    scores, else the threshold alone: the same rule that raises a worsening alert
    (proms.scoring.change.is_meaningful_worsening). (None, "") for a baseline score or a
    scale without a threshold.
    """
    if by_individual in COMPARED:
        return by_individual, "individual"
    if by_threshold is not None:
        return by_threshold, "threshold"
    return None, ""


def shown_change_sql() -> ColumnElement[str | None]:
    """`shown_change`'s class as SQL, over the Score table."""
    return case(
        (Score.change_by_individual.in_(COMPARED), Score.change_by_individual),
        else_=Score.change_by_threshold,
    )


def arrow(improvement: float | None) -> str:
    """ "up" for better, "down" for worse, "" for none: the same for every instrument, whichever
    way its numbers run (improvement is stored in the instrument's direction)."""
    if improvement is None or improvement == 0:
        return ""
    return "up" if improvement > 0 else "down"


@dataclass(frozen=True, slots=True)
class LatestScore:
    """A patient's latest score in one domain, as the list shows it."""

    domain: str
    instrument_code: str
    value: float
    is_t_score: bool
    improvement: float | None
    change: str | None
    criterion: str  # "individual", "threshold" or ""
    timepoint_key: str

    @property
    def label(self) -> str:
        """The domain, with the instrument for raw scores ("Pain (PEG)"): their units differ."""
        if self.is_t_score:
            return domain_label(self.domain)
        return f"{domain_label(self.domain)} ({self.instrument_code.upper()})"

    @property
    def arrow(self) -> str:
        return arrow(self.improvement)


@dataclass(frozen=True, slots=True)
class NextDue:
    """The next questionnaire a patient has to answer (open now or still to come)."""

    label: str
    opens_at: dt.datetime
    due_at: dt.datetime
    closes_at: dt.datetime
    is_open: bool
    is_overdue: bool


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """What the patient list shows beside a name."""

    course_started_on: dt.date | None = None
    course_status: EnrollmentStatus | None = None
    open_assessments: int = 0
    latest: tuple[LatestScore, ...] = ()
    open_alerts: int = 0
    next_due: NextDue | None = None


# The patient list's filters: key -> label. Keys go in URLs; they name no patient.
FILTERS = {
    "alert": "Open alert",
    "worsened": "Worsened",
    "improved": "Improved",
    "overdue": "Overdue (closes within 2 days, not started)",
    "open": "Questionnaire open now",
    "active": "Active course",
    "withdrawn": "Withdrawn",
}


# Filters whose total would need every visible patient's latest scores (seconds at 100,000
# patients and 2,000,000 scores): their pages are not counted, only whether another follows.
UNCOUNTED_FILTERS = frozenset({"worsened", "improved"})


@dataclass(frozen=True, slots=True)
class UncountedPage:
    """A page of a list whose total is not counted: its rows, and whether a next page exists."""

    items: list[Patient]
    page: int
    per_page: int
    has_next: bool
    total: None = None

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def uncounted_page(
    session: Session, query: Select[tuple[Patient]], page: int, per_page: int
) -> UncountedPage:
    """One page of `query` and whether there is a next one: one statement, no count."""
    rows = list(session.scalars(query.limit(per_page + 1).offset((page - 1) * per_page)))
    return UncountedPage(rows[:per_page], page, per_page, has_next=len(rows) > per_page)


def patient_list(
    visible: Select[tuple[Patient]],
    *,
    search: str = "",
    filter_key: str = "",
    now: dt.datetime | None = None,
) -> Select[tuple[Patient]]:
    """The staff patient list: visible patients by name, filtered by a search and a filter.

    A search is split into words (commas and spaces), and every word must begin a name or be
    part of the MRN: "Lopez, Alma", "alma lopez", "lop" and the MRN all find Alma Lopez.
    """
    query = visible
    for word in search.replace(",", " ").lower().split():
        prefix = f"{_escape_like(word)}%"
        inner = f"%{_escape_like(word)}%"
        query = query.where(
            func.lower(Patient.family_name).like(prefix, escape="\\")
            | func.lower(Patient.given_name).like(prefix, escape="\\")
            | func.lower(Patient.family_name).like(f"% {_escape_like(word)}%", escape="\\")
            | func.lower(Patient.mrn).like(inner, escape="\\")
        )
    if filter_key:
        query = query.where(_filter(filter_key, now or dt.datetime.now(dt.UTC)))
    return query.order_by(Patient.family_name, Patient.given_name, Patient.id)


def _latest_in_domain(score: type[Score] | Score) -> ColumnElement[bool]:
    """No later score of the same patient, domain and scale: `score` is the latest there.

    A correlated NOT EXISTS on the (patient_id, domain, observed_at) index of score.
    """
    later = aliased(Score)
    return ~exists(
        select(later.id).where(
            later.patient_id == score.patient_id,
            later.domain == score.domain,
            later.scale == score.scale,
            or_(
                later.observed_at > score.observed_at,
                and_(later.observed_at == score.observed_at, later.id > score.id),
            ),
        )
    )


def _latest_change_is(value: str) -> ColumnElement[bool]:
    """The patient's latest score in some domain changed this way (as the list shows it)."""
    return exists(
        select(Score.id).where(
            Score.patient_id == Patient.id,
            Score.scale == TREND_SCALE,
            shown_change_sql() == value,
            _latest_in_domain(Score),
        )
    )


def _filter(key: str, now: dt.datetime) -> ColumnElement[bool]:
    if key == "alert":
        return exists(
            select(Alert.id).where(
                Alert.patient_id == Patient.id, Alert.status.in_(OPEN_ALERT_STATUSES)
            )
        )
    if key in ("worsened", "improved"):
        return _latest_change_is(Classification(key).value)
    courses = select(Enrollment.id).where(Enrollment.patient_id == Patient.id)
    if key == "active":
        return courses.where(Enrollment.status == EnrollmentStatus.ACTIVE).exists()
    if key == "withdrawn":
        return courses.where(Enrollment.status == EnrollmentStatus.WITHDRAWN).exists()
    open_now = (
        select(Assessment.id)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Enrollment.patient_id == Patient.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.opens_at <= now,
            Assessment.closes_at > now,
        )
    )
    if key == "open":
        return open_now.exists()
    if key == "overdue":
        return open_now.where(
            Assessment.status == AssessmentStatus.SCHEDULED,
            Assessment.closes_at <= now + OVERDUE_WITHIN,
        ).exists()
    raise ValueError(f"unknown filter {key!r}")


def patient_summaries(
    session: Session, patient_ids: Collection[int], now: dt.datetime
) -> dict[int, PatientSummary]:
    """Latest course, assessments open now, latest score per domain, open alerts and the next
    questionnaire due, for a page of patients: five queries whatever the page holds."""
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
    latest = _latest_scores(session, patient_ids)
    alerts = dict(
        session.execute(
            select(Alert.patient_id, func.count(Alert.id))
            .where(Alert.patient_id.in_(patient_ids), Alert.status.in_(OPEN_ALERT_STATUSES))
            .group_by(Alert.patient_id)
        ).all()
    )
    next_due = _next_due(session, patient_ids, now)
    return {
        patient_id: PatientSummary(
            course_started_on=courses.get(patient_id, (None, None))[0],
            course_status=courses.get(patient_id, (None, None))[1],
            open_assessments=open_counts.get(patient_id, 0),
            latest=tuple(latest.get(patient_id, ())),
            open_alerts=alerts.get(patient_id, 0),
            next_due=next_due.get(patient_id),
        )
        for patient_id in patient_ids
    }


def _latest_scores(session: Session, patient_ids: Collection[int]) -> dict[int, list[LatestScore]]:
    """Each patient's latest score per domain, in the domains' reading order."""
    rows = session.scalars(
        select(Score).where(
            Score.patient_id.in_(patient_ids),
            Score.scale == TREND_SCALE,
            _latest_in_domain(Score),
        )
    )
    found: dict[int, list[LatestScore]] = {}
    for row in rows:
        change, criterion = shown_change(row.change_by_individual, row.change_by_threshold)
        value = row.t_score if row.t_score is not None else row.raw_score
        if value is None:
            continue
        found.setdefault(row.patient_id, []).append(
            LatestScore(
                domain=row.domain,
                instrument_code=row.instrument_code,
                value=float(value),
                is_t_score=row.t_score is not None,
                improvement=row.improvement,
                change=change,
                criterion=criterion,
                timepoint_key=row.timepoint_key,
            )
        )
    for scores in found.values():
        scores.sort(key=lambda s: domain_order(s.domain))
    return found


def _next_due(
    session: Session, patient_ids: Collection[int], now: dt.datetime
) -> dict[int, NextDue]:
    """The first questionnaire of an active course that can still be answered, per patient."""
    rows = session.execute(
        select(Enrollment.patient_id, Assessment)
        .join(Assessment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Enrollment.patient_id.in_(patient_ids),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.closes_at > now,
        )
        .options(joinedload(Assessment.timepoint))
        .order_by(Enrollment.patient_id, Assessment.due_at, Assessment.id)
    ).all()
    found: dict[int, NextDue] = {}
    for patient_id, assessment in rows:
        if patient_id in found:
            continue
        found[patient_id] = NextDue(
            label=assessment.timepoint.label,
            opens_at=assessment.opens_at,
            due_at=assessment.due_at,
            closes_at=assessment.closes_at,
            is_open=assessment.is_open(now),
            is_overdue=assessment.is_open(now)
            and assessment.status is AssessmentStatus.SCHEDULED
            and assessment.closes_at <= now + OVERDUE_WITHIN,
        )
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
