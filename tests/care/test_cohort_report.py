"""The cohort report: a hand-built cohort gives the counts and intervals its definitions say.

Expected values are worked out here from the cohort as built: scores by the pure scoring engine
from the bundled definitions, change by proms.scoring.change, shares and intervals by
proms.scoring.cohort; eligibility and course figures from the dates, by hand, with the reasoning
next to them. The report reads the same rows through SQL aggregates, so agreement checks both.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import threading
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from proms.admin.courses import record_session
from proms.admin.enrollment import enroll, withdraw
from proms.admin.models import Clinic, Enrollment, Patient, Protocol
from proms.auth.models import AuditEvent, Role
from proms.care.cohort import (
    CSV_COLUMNS,
    CohortReport,
    Measure,
    OutcomeRow,
    cohort_report,
    run_aggregates,
)
from proms.care.deidentify import Identity
from proms.care.exports import ExportFormat, ExportSpec, export
from proms.care.snapshots import CohortSnapshot, report_from_json, report_to_json
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.instruments.registry import bundled_registry
from proms.scheduling.links import mint_token
from proms.scheduling.models import Assessment, Notification, NotificationStatus
from proms.scoring import score
from proms.scoring.change import ChangeResult, Measurement, classify_change
from proms.scoring.cohort import mean_interval, summarize, wilson_interval
from proms.scoring.types import Method
from proms.surveys import services as survey
from proms.surveys.models import AccessToken
from tests.helpers import World, add_patient, counted_statements

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
JAN, FEB, MAY = dt.date(2026, 1, 12), dt.date(2026, 2, 2), dt.date(2026, 5, 30)
NOV = dt.date(2025, 11, 3)
REGISTRY = bundled_registry()
PI, PEG, CHECKLIST = "promis-pi-4a", "peg", "infusion-side-effects"


def pi(raw: int) -> dict[str, int]:
    """PROMIS PI 4a answers summing to `raw` (4-20)."""
    values = [1, 1, 1, 1]
    for i in range(raw - 4):
        values[i % 4] += 1
    return dict(zip(("PAININ9", "PAININ22", "PAININ31", "PAININ34"), values, strict=True))


def peg(value: int) -> dict[str, int]:
    return {"PEG1": value, "PEG2": value, "PEG3": value}


def checklist(**severities: int) -> dict[str, int]:
    items = ("hallucinations", "dissociation", "nausea_vomiting", "dizziness", "headache", "other")
    return {item: severities.get(item, 0) for item in items}


@dataclass
class Course:
    """One course of the hand-built cohort: who, when, and what was answered when."""

    name: str
    anchor_on: dt.date
    answers: dict[str, dict[str, dict[str, int]]]  # time point -> code -> answers
    patient: str = ""  # another course's name: the same patient (a returning patient)
    withdrawn_on: dt.date | None = None
    days_given: tuple[int, ...] = ()
    days_missed: tuple[int, ...] = ()
    side_effects: dict[int, list[str]] = field(default_factory=dict)
    enrollment: Enrollment | None = None


def cohort() -> list[Course]:
    return [
        Course(
            "c1",
            JAN,
            {
                "baseline": {PI: pi(16), PEG: peg(8)},
                "end_of_course": {
                    PI: pi(12),
                    PEG: peg(4),
                    CHECKLIST: checklist(hallucinations=3, dissociation=1, nausea_vomiting=2),
                },
                "month_1": {PI: pi(13), PEG: peg(6)},
                "month_3": {PI: pi(16), PEG: peg(8)},
            },
            days_given=(1, 2, 3, 4, 5),
            side_effects={1: ["nausea"], 2: ["hallucinations", "nausea"]},
        ),
        Course(
            "c2",
            JAN,
            {
                "baseline": {PI: pi(12), PEG: peg(5)},
                "month_1": {PI: pi(16), PEG: peg(7)},
                "month_3": {PI: pi(11), PEG: peg(2)},
            },
            days_given=(1, 2, 3, 4),
            days_missed=(5,),
        ),
        Course(
            "c3",
            FEB,
            {
                "baseline": {PI: pi(14), PEG: peg(0)},  # PEG 0: no percent change from 0
                "end_of_course": {CHECKLIST: checklist(hallucinations=1, nausea_vomiting=2)},
                "month_1": {PI: pi(10), PEG: peg(3)},
            },
        ),
        Course(
            "c4",
            FEB,
            {"month_1": {PI: pi(12)}},
            days_given=(1, 2, 3, 4, 5),
            side_effects={3: ["headache"]},
        ),
        Course(
            "c5",
            JAN,
            {"baseline": {PI: pi(18), PEG: peg(9)}},
            withdrawn_on=JAN + dt.timedelta(days=2),
            days_given=(1,),
            days_missed=(2, 3, 4, 5),
        ),
        # c1's patient again: the baseline is answered, the rest is still to come.
        Course("c6", MAY, {"baseline": {PI: pi(15)}}, patient="c1", days_given=(1, 2)),
        # c2's patient, an earlier course (before 2026): nothing answered.
        Course("c8", NOV, {}, patient="c2"),
    ]


@dataclass
class Built:
    courses: dict[str, Course]
    world: World


def _assessment(enrollment: Enrollment, key: str) -> Assessment:
    return next(a for a in enrollment.assessments if a.timepoint.key == key)


def build(world: World, courses: list[Course] | None = None, prefix: str = "R") -> Built:
    courses = courses or cohort()
    enroll_cohort(world.clinic_a, world.protocol_a, courses, prefix)
    return Built({c.name: c for c in courses}, world)


def enroll_cohort(
    clinic: Clinic, protocol: Protocol, courses: list[Course], prefix: str = "R"
) -> None:
    """Enroll, answer (through the submit service), record infusion days, withdraw; commit."""
    registry = deployment_registry(db.session)
    patients: dict[str, Patient] = {}
    for n, course in enumerate(courses):
        patient = patients.get(course.patient) or add_patient(clinic, f"{prefix}{n}")
        patients[course.name] = patient
        planned = dt.datetime.combine(course.anchor_on, dt.time(12), dt.UTC) - dt.timedelta(days=30)
        course.enrollment = enroll(db.session, patient, protocol, course.anchor_on, now=planned)
        for key, by_code in course.answers.items():
            # As a patient would: Start (drafts of every questionnaire), answers, Send.
            assessment = _assessment(course.enrollment, key)
            when = assessment.due_at
            plan = survey.start(db.session, registry, assessment, now=when, env="test")
            for question in plan.questions:
                answers = by_code.get(question.definition.code, {})
                if question.item.id in answers:
                    value = answers[question.item.id]
                    survey.save_answer(db.session, question, value, now=when)
            survey.submit(db.session, registry, assessment, now=when)
        for day in course.days_given + course.days_missed:
            record_session(
                course.enrollment,
                day,
                given=day in course.days_given,
                missed_reason="" if day in course.days_given else "unwell",
                side_effects=course.side_effects.get(day, []),
                notes="",
                now=NOW,
                by=None,
            )
        if course.withdrawn_on:
            withdrawn_at = dt.datetime.combine(course.withdrawn_on, dt.time(12), dt.UTC)
            withdraw(db.session, course.enrollment, now=withdrawn_at, reason="moved away")
    db.session.commit()


def simulated(n: int, seed: int = 11) -> list[Course]:
    """`n` courses from January with answers that drift better or worse (a seeded shape for
    pages and screenshots): fewer answers at each later time point, as in practice."""
    rng = random.Random(seed)
    courses = []
    for i in range(n):
        start_pi, start_peg = rng.randint(12, 19), rng.randint(5, 9)
        trend = rng.choice((-3, -2, -1, 0, 0, 1))
        answers: dict[str, dict[str, dict[str, int]]] = {}
        for step, (key, rate) in enumerate(
            (("baseline", 0.95), ("end_of_course", 0.85), ("month_1", 0.75), ("month_3", 0.6))
        ):
            if rng.random() < rate:
                raw = min(20, max(4, start_pi + trend * step + rng.randint(-1, 1)))
                level = min(10, max(0, start_peg + trend * step))
                answers[key] = {PI: pi(raw), PEG: peg(level)}
        if "end_of_course" in answers and rng.random() < 0.7:
            answers["end_of_course"][CHECKLIST] = checklist(
                hallucinations=rng.choice((0, 0, 1, 1, 2, 3)), nausea_vomiting=rng.choice((0, 1, 2))
            )
        given = (1, 2, 3, 4, 5) if rng.random() < 0.88 else (1, 2, 3)
        courses.append(
            Course(
                f"s{i}",
                JAN + dt.timedelta(days=i % 20),
                answers,
                days_given=given,
                days_missed=tuple(d for d in range(1, 6) if d not in given),
                side_effects={1: [rng.choice(("nausea", "dizziness", "headache"))]}
                if rng.random() < 0.4
                else {},
            )
        )
    return courses


def report(world: World, **kwargs: object) -> CohortReport:
    return cohort_report(
        db.session,
        deployment_registry(db.session),
        clinic_ids=[world.clinic_a.id],
        protocol_slug=world.protocol_a.slug,
        **{"now": NOW, **kwargs},  # type: ignore[arg-type]
    )


def measure(found: CohortReport, code: str) -> Measure:
    return next(m for m in found.measures if m.instrument_code == code)


def row(found: Measure, key: str) -> OutcomeRow:
    return next(r for r in found.rows if r.timepoint_key == key)


# Expected values, from the definitions -----------------------------------------------------------


def _measurement(code: str, answers: dict[str, int]) -> Measurement:
    definition = REGISTRY.get(code)
    [result] = [r for r in score(definition.form(), answers) if r.method is not Method.NONE]
    value = result.t_score if result.t_score is not None else result.raw_score
    assert value is not None
    return Measurement(code, definition.version, result.scale, value, result.standard_error)


def expected_changes(courses: list[Course], code: str) -> list[tuple[str, str, ChangeResult]]:
    definition = REGISTRY.get(code)
    threshold = definition.primary_threshold
    assert threshold is not None
    changes = []
    for course in courses:
        baseline = course.answers.get("baseline", {}).get(code)
        before = _measurement(code, baseline) if baseline else None
        for key, by_code in course.answers.items():
            if key == "baseline" or code not in by_code:
                continue
            after = _measurement(code, by_code[code])
            change = classify_change(
                before, after, direction=definition.direction, threshold=threshold
            )
            changes.append((definition.domain, key, change))
    return changes


def test_the_report_of_a_hand_built_cohort(world: World) -> None:
    """One cohort, built once (it takes a few seconds), checked figure by figure."""
    built = build(world)
    courses = list(built.courses.values())
    found = report(world)
    assert (found.courses, found.patients) == (7, 5)
    check_outcomes(found, courses)
    check_eligible_and_responded(world, found, courses)
    check_courses_returns_and_side_effects(world, found)
    # A snapshot (what the pages keep) reads back as the same report.
    assert report_from_json(json.loads(json.dumps(report_to_json(found)))) == found


def check_outcomes(found: CohortReport, courses: list[Course]) -> None:
    for code in (PI, PEG):
        got = measure(found, code)
        assert got.threshold == REGISTRY.get(code).primary_threshold
        for criterion in ("threshold", "individual"):
            for expected in summarize(expected_changes(courses, code), criterion):
                result = row(got, expected.timepoint).criterion(criterion)
                assert result is not None
                assert result.compared == expected.n
                assert result.improved.count == expected.improved
                assert result.worsened.count == expected.worsened
                assert result.not_comparable == expected.not_comparable
                if expected.n:
                    assert (result.improved.lower, result.improved.upper) == pytest.approx(
                        expected.share_improved_ci
                    )
                    assert (result.worsened.lower, result.worsened.upper) == pytest.approx(
                        expected.share_worsened_ci
                    )
                    assert result.mean_change is not None
                    assert expected.mean_improvement is not None
                    assert result.mean_change.mean == pytest.approx(expected.mean_improvement.mean)
                    assert result.mean_change.n == expected.mean_improvement.n
                    if expected.mean_improvement.lower is None:
                        assert result.mean_change.lower is None
                    else:
                        assert result.mean_change.lower == pytest.approx(
                            expected.mean_improvement.lower
                        )
                        assert result.mean_change.upper == pytest.approx(
                            expected.mean_improvement.upper
                        )
                else:
                    assert result.improved.share is None
                    assert result.mean_change is None
    # The cohort has both kinds of row: PI at month 1 improves (c1, c3), worsens (c2), has no
    # baseline (c4); PEG at month 1 cannot take a percent change from c3's baseline of 0.
    pi_month_1 = row(measure(found, PI), "month_1").criterion("threshold")
    assert pi_month_1 is not None
    assert (pi_month_1.improved.count, pi_month_1.worsened.count, pi_month_1.not_comparable) == (
        2,
        1,
        1,
    )
    peg_month_1 = row(measure(found, PEG), "month_1").criterion("threshold")
    assert peg_month_1 is not None
    assert peg_month_1.not_comparable == 1


# Eligible by time point, from the windows (anchor + offset, days either side) at NOW = 1 June:
# baseline: every course's window has closed (c6's closed on 30 May) = 7;
# end of course, 1 and 3 months: c1, c2, c3, c4 and c8; c5 was withdrawn first (cancelled),
# c6's windows are still to come = 5; 6 months: only c8's (Nov 2025 + 194 days) has closed = 1.
ELIGIBLE = {"baseline": 7, "end_of_course": 5, "month_1": 5, "month_3": 5, "month_6": 1}
ELIGIBLE_FROM_2026 = {"baseline": 6, "end_of_course": 4, "month_1": 4, "month_3": 4}


def answered(courses: list[Course], code: str, key: str) -> int:
    return sum(code in c.answers.get(key, {}) for c in courses)


def check_eligible_and_responded(world: World, found: CohortReport, courses: list[Course]) -> None:
    for code in (PI, PEG, "promis-pf-4a"):
        got = measure(found, code)
        assert {r.timepoint_key: r.eligible for r in got.rows} == ELIGIBLE
        for r in got.rows:
            assert r.responded.count == answered(courses, code, r.timepoint_key)
            assert r.responded.n == r.eligible
            assert r.is_baseline == (r.timepoint_key == "baseline")
            assert (r.criteria == ()) == r.is_baseline
    # Rows follow the protocol: its instruments in order, time points by offset.
    assert [m.instrument_code for m in found.measures] == [
        PI,
        "promis-pf-4a",
        "promis-sd-4a",
        "pass-20",
        PEG,
    ]
    assert [r.timepoint_key for r in measure(found, PI).rows] == list(ELIGIBLE)

    since = report(world, start_on=dt.date(2026, 1, 1))
    assert {r.timepoint_key: r.eligible for r in measure(since, PI).rows} == ELIGIBLE_FROM_2026
    assert (since.courses, since.patients) == (6, 5)
    only_may = report(world, start_on=MAY, end_on=MAY)
    assert (only_may.courses, only_may.patients) == (1, 1)
    assert {r.timepoint_key: r.responded.count for r in measure(only_may, PI).rows} == {
        "baseline": 1
    }


def check_courses_returns_and_side_effects(world: World, found: CohortReport) -> None:
    # Judged: c1, c2, c4 and c5 (days recorded, last day past); c3 and c8 have none recorded,
    # c6's last day (3 June) is still to come. All five given: c1 and c4.
    completion = found.completion
    assert (completion.completed.count, completion.completed.n) == (2, 4)
    assert (completion.not_over, completion.none_recorded, completion.treated) == (1, 2, 5)
    # Patients: c1's (came back: c6), c2's (first course c8 in Nov, c2 later: came back),
    # c3's, c4's, c5's.
    assert (found.returned.count, found.returned.n) == (2, 5)
    # From 2026, c2's patient's first course in range is c2, with nothing after it.
    since = report(world, start_on=dt.date(2026, 1, 1))
    assert (since.returned.count, since.returned.n) == (1, 5)

    staff = {s.key: (s.courses.count, s.courses.n) for s in found.staff_side_effects}
    assert staff["nausea"] == (1, 5)  # c1, noted on two days: one course
    assert staff["hallucinations"] == (1, 5)
    assert staff["headache"] == (1, 5)
    assert staff["dizziness"] == (0, 5)

    [reported] = found.checklists
    assert (reported.instrument_code, reported.timepoint_key, reported.responses) == (
        CHECKLIST,
        "end_of_course",
        2,
    )
    severities = {
        item.item_id: {s.label: s.share.count for s in item.severities} for item in reported.items
    }
    assert severities["hallucinations"] == {"None": 0, "Mild": 1, "Moderate": 0, "Severe": 1}
    assert severities["nausea_vomiting"] == {"None": 0, "Mild": 0, "Moderate": 2, "Severe": 0}
    assert severities["dizziness"] == {"None": 2, "Mild": 0, "Moderate": 0, "Severe": 0}


def _messages(assessment: Assessment) -> list[Notification]:
    return sorted(
        db.session.scalars(select(Notification).where(Notification.assessment_id == assessment.id)),
        key=lambda n: n.send_after,
    )


def test_message_funnel_page_and_csv(staff_client, world: World) -> None:
    built = build(world)
    c1, c2, c3 = (built.courses[name].enrollment for name in ("c1", "c2", "c3"))
    assert c1 is not None
    assert c2 is not None
    assert c3 is not None
    # c1's baseline: the invitation went by email and its link was used to start; answered.
    invite = _messages(_assessment(c1, "baseline"))[0]
    invite.status, invite.sent_at = NotificationStatus.SENT, NOW
    mint_token(
        db.session, invite.assessment, now=NOW, max_age=dt.timedelta(days=7), notification=invite
    )
    token = db.session.scalars(
        select(AccessToken).where(AccessToken.notification_id == invite.id)
    ).one()
    token.last_used_at = NOW
    # c2's month 1 by text message to a Spanish speaker: delivered; answered by another route.
    c2.patient.language = "es"
    for message in _messages(_assessment(c2, "month_1"))[:2]:
        message.channel, message.status, message.sent_at = "sms", NotificationStatus.SENT, NOW
        message.delivery_status = "delivered"
    # c3's month 3 by email, invitation and a reminder: never answered.
    for message in _messages(_assessment(c3, "month_3"))[:2]:
        message.status, message.sent_at = NotificationStatus.SENT, NOW
    db.session.commit()

    funnel = {(f.channel, f.language): f for f in report(world).funnel}
    assert set(funnel) == {("email", "en"), ("sms", "es")}
    email, sms = funnel[("email", "en")], funnel[("sms", "es")]
    assert (email.sent, email.delivered, email.opened, email.started, email.completed) == (
        2,
        None,
        1,
        1,
        1,
    )
    assert (sms.sent, sms.delivered, sms.opened, sms.started, sms.completed) == (1, 1, 0, 1, 1)

    # The page shows the same funnel; the CSV has the report's numbers, row for row.
    client = staff_client(world.user("a", Role.ANALYST))
    assert client.get("/").headers["Location"].endswith("/reports/cohort")
    page = client.get("/reports/cohort")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Email, English" in body
    assert "Text message, Spanish" in body
    assert '<svg viewBox="0 0 340 214" role="img"' in body
    assert "Pain interference" in body
    exported = client.get(f"/reports/cohort.csv?protocol={world.protocol_a.slug}&start=2026-01-01")
    assert exported.status_code == 200
    assert exported.mimetype == "text/csv"
    expected = report(world, start_on=dt.date(2026, 1, 1), now=utcnow())
    check_csv(exported.get_data(as_text=True), expected)
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("report.%")).order_by(AuditEvent.id)
    ).all()
    assert actions == ["report.cohort", "report.cohort.export"]


def check_csv(text: str, expected: CohortReport) -> None:
    """The CSV's outcome rows are the report's: one per domain, time point and criterion."""
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    outcome = {
        (r["instrument"], r["timepoint"], r["criterion"]): r
        for r in rows
        if r["section"] == "outcome"
    }
    count = 0
    for m in expected.measures:
        for r in m.rows:
            for c in r.criteria or (None,):
                got = outcome[(m.instrument_code, r.timepoint_key, c.name if c else "")]
                count += 1
                assert int(got["eligible"]) == r.eligible
                assert int(got["responded"]) == r.responded.count
                assert got["domain"] == m.domain
                if c is None:
                    assert got["improved"] == ""
                    continue
                assert int(got["improved"]) == c.improved.count
                assert int(got["worsened"]) == c.worsened.count
                assert int(got["compared"]) == c.compared
                for name, share in (("improved", c.improved), ("worsened", c.worsened)):
                    for suffix, value in (
                        ("share", share.share),
                        ("lower", share.lower),
                        ("upper", share.upper),
                    ):
                        cell = got[f"{name}_{suffix}"]
                        assert (
                            (cell == "")
                            if value is None
                            else float(cell) == pytest.approx(value, abs=1e-6)
                        )
                if c.mean_change is not None:
                    assert float(got["mean_change"]) == pytest.approx(c.mean_change.mean, abs=1e-6)
    assert count == len(outcome)
    figures = {(r["section"], r["category"]): r for r in rows if r["section"] != "outcome"}
    completed = figures[("courses", "completed_all_infusion_days")]
    assert (int(completed["count"]), int(completed["n"])) == (
        expected.completion.completed.count,
        expected.completion.completed.n,
    )
    assert int(figures[("courses", "courses")]["count"]) == expected.courses


# Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("start=2026-02-30", "Enter the date as a calendar date", id="no-such-day"),
        pytest.param("start=30/01/2026", "Enter the date as a calendar date", id="not-iso"),
        pytest.param("end=20266-01-01", "Enter the date as a calendar date", id="five-digit-year"),
        pytest.param("start=0999-01-01", "check the year", id="year-999"),
        pytest.param("start=2026-03-01&end=2026-01-01", "The end date is before", id="backwards"),
        pytest.param("protocol=no-such-protocol", "Not a valid choice", id="unknown-protocol"),
        pytest.param("clinic=b", "Not a valid choice", id="another-clinic"),
    ],
)
def test_bad_input_is_a_400_that_says_why(
    staff_client, world: World, query: str, message: str
) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    for path in ("/reports/cohort", "/reports/cohort.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, path
        assert message in response.get_data(as_text=True)


def test_each_clinic_sees_its_own_courses(staff_client, world: World) -> None:
    build(world, simulated(2))
    own = (
        staff_client(world.user("a", Role.CLINICIAN)).get("/reports/cohort").get_data(as_text=True)
    )
    assert "<strong>2 courses</strong> of 2 patients" in own
    other = (
        staff_client(world.user("b", Role.ANALYST)).get("/reports/cohort").get_data(as_text=True)
    )
    assert "Clinic B" in other
    assert "<strong>0 courses</strong> of 0 patients" in other


# Statements ------------------------------------------------------------------------------------


def test_the_number_of_statements_does_not_grow_with_the_cohort(world: World) -> None:
    clinic_ids, slug = [world.clinic_a.id], world.protocol_a.slug
    registry = deployment_registry(db.session)

    def run() -> tuple[CohortReport, list[str]]:
        db.session.commit()
        with counted_statements() as statements:
            found = cohort_report(
                db.session, registry, clinic_ids=clinic_ids, protocol_slug=slug, now=NOW
            )
        # Not counted: SQLite's BEGIN, and on PostgreSQL the shared snapshot that the four
        # connections of the aggregates import (test_the_aggregates_read_one_moment).
        shared = ("BEGIN", "SELECT pg_export_snapshot()", "SET TRANSACTION SNAPSHOT")
        return found, [s for s in statements if not s.startswith(shared)]

    build(world, simulated(2, seed=3), prefix="F")
    small, few = run()
    build(world, simulated(6, seed=4), prefix="M")
    large, many = run()
    assert (small.courses, large.courses) == (2, 8)
    assert large.checklists  # every part of the report had rows to read
    assert len(few) == len(many)
    # The protocol with its time points and clinics (3), the checklist's questionnaire (1),
    # then seven aggregates.
    assert len(many) == 11


def test_the_aggregates_read_one_moment(world: World, database_url: str) -> None:
    """On PostgreSQL the report's aggregates run at once on connections of their own: each
    imports one snapshot, so a row committed while they run is in none of them. On SQLite they
    run one after the other in the caller's transaction, with the same result."""
    clinic_id = world.clinic_a.id
    counted = db.session.scalar(select(sa.func.count()).select_from(Patient))
    committed = threading.Event()
    other = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def add_a_patient(_session: sa.orm.Session) -> None:
        with other.begin() as connection:
            connection.execute(
                sa.insert(Patient).values(
                    clinic_id=clinic_id,
                    mrn="LATE-1",
                    given_name="Late",
                    family_name="Arrival",
                    time_zone="America/New_York",
                    language="en",
                )
            )
        committed.set()

    def count_patients(session: sa.orm.Session) -> int | None:
        assert committed.wait(10)  # after the other aggregate committed its row
        return session.scalar(select(sa.func.count()).select_from(Patient))

    try:
        found = run_aggregates(db.session, add=add_a_patient, count=count_patients)
    finally:
        other.dispose()
    assert found["count"] == counted
    db.session.rollback()
    assert db.session.scalar(select(sa.func.count()).select_from(Patient)) == counted + 1


# The command line ------------------------------------------------------------------------------


def test_command_line_csv_and_table(world: World, runner) -> None:
    build(world, simulated(4, seed=5))
    slug = world.protocol_a.slug
    result = runner.invoke(
        args=["report", "cohort", "--protocol", slug, "--clinic", "a", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    check_csv(result.output, report(world, now=utcnow()))
    table = runner.invoke(args=["report", "cohort", "--protocol", slug, "--from", "2026-01-01"])
    assert table.exit_code == 0, table.output
    assert "Pain interference: PROMIS" in table.output
    assert "courses starting 2026-01-01 to any date: 4 courses of 4 patients" in table.output
    assert "completed all 5 infusion days" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--from", "2026-13-01"], "is not a date: write it as YYYY-MM-DD", id="bad-date"
        ),
        pytest.param(["--to", "yesterday"], "is not a date", id="words"),
        pytest.param(["--from", "0001-01-01"], "check the year", id="year-1"),
        pytest.param(
            ["--from", "2026-03-01", "--to", "2026-01-01"], "end date is before", id="backwards"
        ),
        pytest.param(["--format", "xlsx"], "'xlsx' is not one of 'table', 'csv'", id="format"),
        pytest.param(["--clinic", "nowhere"], "no clinic 'nowhere'", id="clinic"),
    ],
)
def test_command_line_errors_are_one_line_and_exit_2(
    world: World, runner, args: list[str], message: str
) -> None:
    result = runner.invoke(args=["report", "cohort", "--protocol", world.protocol_a.slug, *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_command_line_unknown_protocol(world: World, runner) -> None:
    result = runner.invoke(args=["report", "cohort", "--protocol", "nope"])
    assert result.exit_code == 2
    assert "no protocol 'nope' here (protocols: ketamine-infusion-course)" in result.output
    missing = runner.invoke(args=["report", "cohort"])
    assert missing.exit_code == 2
    assert "Missing option '--protocol'" in missing.output


# Snapshots -------------------------------------------------------------------------------------


def test_pages_count_once_per_snapshot_age(staff_client, world: World, app) -> None:
    build(world, simulated(2, seed=6))
    client = staff_client(world.user("a", Role.CLINICIAN))
    first = client.get("/reports/cohort").get_data(as_text=True)
    assert "<strong>2 courses</strong>" in first
    build(world, simulated(1, seed=7), prefix="N")
    # Within its age the snapshot answers the page and the CSV: the same figures.
    assert "<strong>2 courses</strong>" in client.get("/reports/cohort").get_data(as_text=True)
    kept = client.get("/reports/cohort.csv").get_data(as_text=True)
    assert ",courses,2," in kept
    # Another range, or another clinic set, is another snapshot.
    assert "<strong>3 courses</strong>" in client.get("/reports/cohort?start=2000-01-01").get_data(
        as_text=True
    )
    app.config["COHORT_REPORT_MAX_AGE"] = 0
    assert "<strong>3 courses</strong>" in client.get("/reports/cohort").get_data(as_text=True)
    assert db.session.scalar(select(sa.func.count()).select_from(CohortSnapshot)) == 2


# The long export -------------------------------------------------------------------------------


def test_the_report_recomputed_from_the_long_export_agrees(world: World) -> None:
    """Every response, share, interval and mean of the report, counted again from the rows of
    `csv-long` (one per score) with the pure statistics: the two reads of the data agree."""
    build(world, simulated(6, seed=8) + cohort()[:3])
    found = report(world, start_on=dt.date(2026, 1, 1))
    spec = ExportSpec(
        format=ExportFormat.CSV_LONG,
        clinic_ids=(world.clinic_a.id,),
        protocol=world.protocol_a.slug,
        start_from=dt.date(2026, 1, 1),
    )
    text = "".join(
        export(db.engine, deployment_registry(db.session), spec, Identity(), now=NOW).chunks
    )
    every = list(csv.DictReader(io.StringIO(text)))
    # The scales with a meaningful-change threshold (the export names it on follow-up rows).
    measured = {
        (r["instrument"], r["instrument_version"], r["scale"]) for r in every if r["threshold"]
    }
    rows = [r for r in every if (r["instrument"], r["instrument_version"], r["scale"]) in measured]
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault(
            (r["instrument"], r["instrument_version"], r["scale"], r["timepoint"]), []
        ).append(r)
    checked = 0
    for m in found.measures:
        for r in m.rows:
            scores = groups.pop(
                (m.instrument_code, m.instrument_version, m.scale, r.timepoint_key), []
            )
            assert r.responded.count == len(scores)
            for c in r.criteria:
                classes = [s[f"change_by_{c.name}"] for s in scores]
                compared = [s for s, k in zip(scores, classes, strict=True) if k in COMPARED]
                assert c.compared == len(compared)
                assert c.not_comparable == classes.count("not comparable")
                for share, label in ((c.improved, "improved"), (c.worsened, "worsened")):
                    assert share.count == classes.count(label)
                    if compared:
                        expected = wilson_interval(classes.count(label), len(compared))
                        assert (share.lower, share.upper) == pytest.approx(expected)
                if compared:
                    assert c.mean_change is not None
                    mean = mean_interval([float(s["improvement"]) for s in compared])
                    assert c.mean_change.mean == pytest.approx(mean.mean)
                    if mean.lower is not None:
                        assert (c.mean_change.lower, c.mean_change.upper) == pytest.approx(
                            (mean.lower, mean.upper)
                        )
                checked += 1
    assert checked >= 8  # PI and PEG at three follow-ups, both criteria, had scores to compare
    assert not groups, f"scores the report left out: {sorted(groups)}"


COMPARED = ("improved", "worsened", "no meaningful change")
