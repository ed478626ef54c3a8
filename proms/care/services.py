"""Care-team queries. Read-only; the caller scopes them with proms.auth.scoping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    exists,
    func,
    literal_column,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from proms.admin.models import Enrollment, EnrollmentStatus, Patient, ProtocolTimepoint
from proms.auth.scoping import in_clinics
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


# The list's order: by name, then by id so that pages never overlap. The (clinic_id,
# family_name, given_name, id) index of patient has it for one clinic.
LIST_ORDER = (Patient.family_name, Patient.given_name, Patient.id)


@dataclass(frozen=True, slots=True)
class PatientPage:
    """One page of the patient list: its patients, whether a next page exists, and the total
    number of patients when it was counted (None for a filtered list)."""

    items: list[Patient]
    page: int
    per_page: int
    has_next: bool
    total: int | None = None

    @property
    def pages(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // self.per_page))

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


def patient_page(
    session: Session,
    clinic_ids: Sequence[int],
    *,
    search: str = "",
    filter_key: str = "",
    now: dt.datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> PatientPage:
    """One page of the staff patient list: the patients of `clinic_ids` by name, searched and
    filtered (see `list_conditions`).

    The page's ids come from the patient index alone (a deep page skips index entries, not
    rows), then its patients by primary key: one statement. A filtered list is not counted
    (its total would test every patient of the clinic, 50 ms and more at 70,000): its pages
    say whether another follows, and its total is given only when its first page holds it
    all. Other lists are counted from the index, and only when a next page exists (else the
    total is known).
    """
    conditions = list_conditions(search=search, filter_key=filter_key, now=now)
    offset = (page - 1) * per_page
    ids = _page_ids(clinic_ids, conditions, offset, per_page + 1)
    rows = list(session.scalars(select(Patient).where(Patient.id.in_(ids)).order_by(*LIST_ORDER)))
    has_next = len(rows) > per_page
    total = None
    if filter_key:
        if page == 1 and rows and not has_next:
            total = len(rows)
    elif has_next:
        total = session.scalar(
            select(func.count()).select_from(Patient).where(in_clinics(clinic_ids), *conditions)
        )
    else:
        total = offset + len(rows)
    return PatientPage(rows[:per_page], page, per_page, has_next=has_next, total=total)


def _page_ids(
    clinic_ids: Sequence[int], conditions: Sequence[ColumnElement[bool]], offset: int, limit: int
) -> Select[tuple[int]]:
    """The ids of one page of the list, in its order."""
    if len(clinic_ids) <= 1:
        return (
            select(Patient.id)
            .where(in_clinics(clinic_ids), *conditions)
            .order_by(*LIST_ORDER)
            .offset(offset)
            .limit(limit)
        )
    # Several clinics: the first rows of each clinic by its index, merged; not every patient of
    # every clinic sorted.
    branches = [
        select(
            select(Patient.id, Patient.family_name, Patient.given_name)
            .where(Patient.clinic_id == clinic_id, *conditions)
            .order_by(*LIST_ORDER)
            .limit(offset + limit)
            .subquery()
        )
        for clinic_id in clinic_ids
    ]
    merged = union_all(*branches).subquery()
    return (
        select(merged.c.id)
        .order_by(merged.c.family_name, merged.c.given_name, merged.c.id)
        .offset(offset)
        .limit(limit)
    )


def list_conditions(
    *, search: str = "", filter_key: str = "", now: dt.datetime | None = None
) -> list[ColumnElement[bool]]:
    """The patient list's search and filter, as conditions on patient.

    A search is split into words (commas and spaces), and every word must begin a name or be
    part of the MRN: "Lopez, Alma", "alma lopez", "lop" and the MRN all find Alma Lopez.
    """
    conditions = []
    for word in search.replace(",", " ").lower().split():
        prefix = f"{_escape_like(word)}%"
        inner = f"%{_escape_like(word)}%"
        conditions.append(
            func.lower(Patient.family_name).like(prefix, escape="\\")
            | func.lower(Patient.given_name).like(prefix, escape="\\")
            | func.lower(Patient.family_name).like(f"% {_escape_like(word)}%", escape="\\")
            | func.lower(Patient.mrn).like(inner, escape="\\")
        )
    if filter_key:
        conditions.append(_filter(filter_key, now or dt.datetime.now(dt.UTC)))
    return conditions


def alert_is_open() -> ColumnElement[bool]:
    """The alert is not resolved, written as the partial index of alert (patient_id) states it
    (`status <> 'resolved'`, a literal): a bound parameter would not match that index."""
    return Alert.status != literal_column("'resolved'")


def _latest_in_domain(score: type[Score] | Score) -> ColumnElement[bool]:
    """No later score of the same patient, domain and scale: `score` is the latest there.

    A correlated NOT EXISTS on the (patient_id, scale, domain, observed_at, id) index of score:
    the row comparison is a range of that index.
    """
    later = aliased(Score)
    return ~exists(
        select(later.id).where(
            later.patient_id == score.patient_id,
            later.scale == score.scale,
            later.domain == score.domain,
            tuple_(later.observed_at, later.id) > tuple_(score.observed_at, score.id),
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
        return exists(select(Alert.id).where(Alert.patient_id == Patient.id, alert_is_open()))
    if key in ("worsened", "improved"):
        return _latest_change_is(Classification(key).value)
    courses = select(Enrollment.id).where(Enrollment.patient_id == Patient.id)
    if key == "active":
        return courses.where(Enrollment.status == EnrollmentStatus.ACTIVE).exists()
    if key == "withdrawn":
        return courses.where(Enrollment.status == EnrollmentStatus.WITHDRAWN).exists()
    # The patient's active courses, then their windows: nested, so that each patient is looked
    # up by the enrollment (patient_id) index and each course's windows by theirs, rather than
    # every open window of the clinic read for each patient.
    open_now = select(Assessment.id).where(
        Assessment.enrollment_id == Enrollment.id,
        Assessment.status.in_(OPEN_STATUSES),
        Assessment.opens_at <= now,
        Assessment.closes_at > now,
    )
    if key == "overdue":
        open_now = open_now.where(
            Assessment.status == AssessmentStatus.SCHEDULED,
            Assessment.closes_at <= now + OVERDUE_WITHIN,
        )
    elif key != "open":
        raise ValueError(f"unknown filter {key!r}")
    return courses.where(Enrollment.status == EnrollmentStatus.ACTIVE, open_now.exists()).exists()


def patient_summaries(
    session: Session, patient_ids: Collection[int], now: dt.datetime
) -> dict[int, PatientSummary]:
    """Latest course, assessments open now, latest score per domain, open alerts and the next
    questionnaire due, for a page of patients: five queries whatever the page holds, each
    reading the columns it shows (no ORM objects) through an index on patient_id."""
    if not patient_ids:
        return {}
    ids = list(patient_ids)
    open_counts: dict[int, int] = dict(
        session.execute(
            select(Enrollment.patient_id, func.count(Assessment.id))
            .join(Assessment, Assessment.enrollment_id == Enrollment.id)
            .where(
                Enrollment.patient_id.in_(ids),
                Assessment.status.in_(OPEN_STATUSES),
                Assessment.opens_at <= now,
                Assessment.closes_at > now,
            )
            .group_by(Enrollment.patient_id)
        ).all()
    )
    latest_course = (
        select(Enrollment.patient_id, Enrollment.anchor_on, Enrollment.status)
        .where(Enrollment.patient_id.in_(ids))
        .order_by(Enrollment.patient_id, Enrollment.anchor_on, Enrollment.id)
    )
    courses = {
        patient_id: (anchor, status)
        for patient_id, anchor, status in session.execute(latest_course)
    }
    latest = _latest_scores(session, ids)
    alerts: dict[int, int] = dict(
        session.execute(
            select(Alert.patient_id, func.count())
            .where(Alert.patient_id.in_(ids), alert_is_open())
            .group_by(Alert.patient_id)
        ).all()
    )
    next_due = _next_due(session, ids, now)
    return {
        patient_id: PatientSummary(
            course_started_on=courses.get(patient_id, (None, None))[0],
            course_status=courses.get(patient_id, (None, None))[1],
            open_assessments=open_counts.get(patient_id, 0),
            latest=tuple(latest.get(patient_id, ())),
            open_alerts=alerts.get(patient_id, 0),
            next_due=next_due.get(patient_id),
        )
        for patient_id in ids
    }


def _latest_scores(session: Session, patient_ids: list[int]) -> dict[int, list[LatestScore]]:
    """Each patient's latest score per domain, in the domains' reading order.

    Numbered newest first within each patient and domain (a window over the patients' scores,
    read by the (patient_id, scale, domain, observed_at, id) index in its order), the first of
    each kept.
    """
    newest_first = (
        func.row_number()
        .over(
            partition_by=(Score.patient_id, Score.domain),
            order_by=(Score.observed_at.desc(), Score.id.desc()),
        )
        .label("n")
    )
    numbered = (
        select(
            Score.patient_id,
            Score.domain,
            Score.instrument_code,
            Score.t_score,
            Score.raw_score,
            Score.improvement,
            Score.change_by_individual,
            Score.change_by_threshold,
            Score.timepoint_key,
            newest_first,
        )
        .where(Score.patient_id.in_(patient_ids), Score.scale == TREND_SCALE)
        .subquery()
    )
    found: dict[int, list[LatestScore]] = {}
    for row in session.execute(select(numbered).where(numbered.c.n == 1)):
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


def _next_due(session: Session, patient_ids: list[int], now: dt.datetime) -> dict[int, NextDue]:
    """The first questionnaire of an active course that can still be answered, per patient."""
    rows = session.execute(
        select(
            Enrollment.patient_id,
            ProtocolTimepoint.label,
            Assessment.status,
            Assessment.opens_at,
            Assessment.due_at,
            Assessment.closes_at,
        )
        .join(Assessment, Assessment.enrollment_id == Enrollment.id)
        .join(ProtocolTimepoint, Assessment.timepoint_id == ProtocolTimepoint.id)
        .where(
            Enrollment.patient_id.in_(patient_ids),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.closes_at > now,
        )
        .order_by(Enrollment.patient_id, Assessment.due_at, Assessment.id)
    )
    found: dict[int, NextDue] = {}
    for patient_id, label, status, opens_at, due_at, closes_at in rows:
        if patient_id in found:
            continue
        is_open = opens_at <= now < closes_at  # open statuses only, by the query
        found[patient_id] = NextDue(
            label=label,
            opens_at=opens_at,
            due_at=due_at,
            closes_at=closes_at,
            is_open=is_open,
            is_overdue=is_open
            and status is AssessmentStatus.SCHEDULED
            and closes_at <= now + OVERDUE_WITHIN,
        )
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
