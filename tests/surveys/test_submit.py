"""Submitting: score every instrument, compare with baseline, alert, complete, cancel reminders.

All in one transaction; a double submit (two tabs, a retry, two devices at the same moment)
leaves one response per instrument and one set of scores and alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.test import TestResponse

from proms.admin.models import Channel, Clinic, Enrollment, Patient
from proms.db import db, utcnow
from proms.instruments.loader import DEFINITIONS_DIR
from proms.outcomes import services as outcomes
from proms.outcomes.models import Alert, AlertKind, AlertStatus, Score
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scoring import SCORING_VERSION
from proms.surveys import services
from proms.surveys.models import ResponseStatus, SurveyResponse
from tests.live import at_once
from tests.surveys.helpers import (
    BASELINE_CODES,
    END_OF_COURSE_CODES,
    Survey,
    assessment_of,
    open_now,
    path_of,
    snapshot_rows,
)

Mint = Callable[..., str]
Browser = Callable[[str], Survey]

# Chosen answers: PI 4a all "3" (raw 12), PF 4a 4+4+3+3 (raw 14), SD 4a 2+3+4+5 (raw 14),
# PASS-20 item n answered n mod 6, PEG 4, 5, 6 (mean 5).
CHOSEN = {
    **{
        ("promis-pf-4a", item): value
        for item, value in zip(("PFA11", "PFA21", "PFA23", "PFA53"), (4, 4, 3, 3), strict=True)
    },
    **{
        ("promis-sd-4a", item): value
        for item, value in zip(
            ("Sleep109", "Sleep116", "Sleep20", "Sleep44"), (2, 3, 4, 5), strict=True
        )
    },
    **{("pass-20", f"PASS{n}"): n % 6 for n in range(1, 21)},
    **{("peg", f"PEG{n}"): value for n, value in ((1, 4), (2, 5), (3, 6))},
}


def bundled_table(code: str) -> dict[int, tuple[float, float]]:
    """The official sum-score to T-score table as the bundled definition file holds it."""
    definition = json.loads((DEFINITIONS_DIR / f"{code}.json").read_text(encoding="utf-8"))
    return {int(raw): (t, se) for raw, t, se in definition["scoring"]["table"]}


def scores_of(assessment: Assessment) -> dict[tuple[str, str], Score]:
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Score).where(Score.assessment_id == assessment.id))
    return {(row.instrument_code, row.scale): row for row in rows}


def worsenings() -> list[Alert]:
    return [alert for alert in alerts() if alert.kind is AlertKind.WORSENING]


def alerts() -> list[Alert]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Alert).order_by(Alert.id)))


def totals() -> dict[str, int]:
    rows = snapshot_rows()
    return {name: rows[name] for name in ("survey_response", "score", "alert", "notification")}


def complete(survey: Survey, codes: tuple[str, ...], overrides: Any = None) -> TestResponse:
    survey.started()
    survey.answer_all(codes, overrides, read_pages=False)
    response = survey.submit()
    assert response.status_code == 303, response.get_data(as_text=True)
    assert path_of(response) == "/s/done"
    return response


def add_notification(
    patient: Patient,
    assessment: Assessment,
    key: str,
    kind: NotificationKind = NotificationKind.REMINDER,
    status: NotificationStatus = NotificationStatus.PENDING,
) -> Notification:
    row = Notification(
        idempotency_key=key,
        patient_id=patient.id,
        assessment_id=assessment.id,
        kind=kind,
        channel=Channel.EMAIL,
        send_after=utcnow() + dt.timedelta(days=2),
        status=status,
        sent_at=utcnow() if status is NotificationStatus.SENT else None,
    )
    db.session.add(row)
    db.session.commit()
    return row


# Scores --------------------------------------------------------------------------------------


def test_submit_stores_one_submitted_response_per_instrument_with_exact_scores(
    survey: Survey, baseline: Assessment, enrollment: Enrollment, patient: Patient
) -> None:
    complete(survey, BASELINE_CODES, CHOSEN)
    db.session.expire_all()
    responses = db.session.scalars(
        sa.select(SurveyResponse).where(SurveyResponse.assessment_id == baseline.id)
    ).all()
    assert sorted(r.instrument.code for r in responses) == sorted(BASELINE_CODES)
    for response in responses:
        assert response.status is ResponseStatus.SUBMITTED
        assert response.submitted_at is not None

    scores = scores_of(baseline)
    # PROMIS: the raw sum looked up in the bundled official tables.
    pi = scores[("promis-pi-4a", "total")]
    assert (pi.raw_score, pi.t_score, pi.standard_error) == (12, 61.2, 1.8)
    for code, raw in (("promis-pi-4a", 12), ("promis-pf-4a", 14), ("promis-sd-4a", 14)):
        row = scores[(code, "total")]
        assert row.raw_score == raw
        assert (row.t_score, row.standard_error) == bundled_table(code)[raw]
        assert row.method == "table"
        assert row.n_answered == 4
    assert scores[("promis-pf-4a", "total")].t_score == 39.2
    assert scores[("promis-sd-4a", "total")].t_score == 57.9
    # PASS-20: a total and four subscales of five items each.
    pass_values = [n % 6 for n in range(1, 21)]
    assert scores[("pass-20", "total")].raw_score == sum(pass_values)
    for index, scale in enumerate(("cognitive", "escape_avoidance", "fear", "physiological")):
        assert scores[("pass-20", scale)].raw_score == sum(pass_values[index * 5 : index * 5 + 5])
        assert scores[("pass-20", scale)].method == "sum"
    assert scores[("peg", "total")].raw_score == pytest.approx(5.0)
    assert scores[("peg", "total")].method == "mean"
    assert len(scores) == 3 + 5 + 1

    for row in scores.values():
        assert row.patient_id == patient.id
        assert row.enrollment_id == enrollment.id
        assert row.timepoint_key == "baseline"
        assert row.scoring_version == SCORING_VERSION
        assert row.observed_at is not None
    # A baseline has nothing to be compared with: no alert.
    assert alerts() == []


def test_submit_completes_the_assessment(survey: Survey, baseline: Assessment) -> None:
    before = utcnow()
    complete(survey, BASELINE_CODES)
    db.session.expire_all()
    assert baseline.status is AssessmentStatus.COMPLETED
    assert baseline.completed_at is not None
    assert before <= baseline.completed_at <= utcnow()
    for response in baseline.responses:
        assert response.submitted_at == baseline.completed_at


def test_submit_cancels_the_assessments_pending_notifications_only(
    survey: Survey, patient: Patient, enrollment: Enrollment, baseline: Assessment
) -> None:
    reminder = add_notification(patient, baseline, "test:baseline:reminder:1")
    second = add_notification(patient, baseline, "test:baseline:reminder:2")
    invite = add_notification(
        patient, baseline, "test:baseline:invite", NotificationKind.INVITE, NotificationStatus.SENT
    )
    later = add_notification(
        patient,
        assessment_of(enrollment, "month_1"),
        "test:month_1:invite",
        NotificationKind.INVITE,
    )
    complete(survey, BASELINE_CODES)
    db.session.expire_all()
    assert reminder.status is NotificationStatus.CANCELLED
    assert second.status is NotificationStatus.CANCELLED
    assert invite.status is NotificationStatus.SENT
    assert later.status is NotificationStatus.PENDING


def test_submit_is_one_transaction(
    monkeypatch: pytest.MonkeyPatch, survey: Survey, patient: Patient, baseline: Assessment
) -> None:
    """When anything fails half-way (here: after the scores are inserted), nothing is kept."""
    reminder = add_notification(patient, baseline, "test:baseline:reminder:1")
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    survey.review()
    before = snapshot_rows()

    # Late: right after the scores are inserted, in the same transaction.
    real_insert = outcomes._insert

    def insert_then_fail(session: Any, model: type, rows: list[dict[str, object]]) -> list[Any]:
        inserted = real_insert(session, model, rows)
        if model is Score:
            assert inserted, "the scores were inserted before the failure"
            raise RuntimeError("failed after the scores")
        return inserted

    monkeypatch.setattr(outcomes, "_insert", insert_then_fail)
    try:
        response = survey.client.post("/s/submit", data={"csrf_token": survey.csrf})
    except RuntimeError:
        pass  # TESTING propagates the exception; a server would answer 500
    else:
        assert response.status_code == 500
    assert snapshot_rows() == before
    db.session.expire_all()
    assert baseline.status is AssessmentStatus.IN_PROGRESS
    assert reminder.status is NotificationStatus.PENDING
    # And the patient can still send the answers once it works again.
    monkeypatch.undo()
    assert survey.submit().status_code == 303
    db.session.expire_all()
    assert baseline.status is AssessmentStatus.COMPLETED


def test_submit_needs_the_csrf_token(survey: Survey, baseline: Assessment) -> None:
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    survey.review()
    before = snapshot_rows()
    for data in ({}, {"csrf_token": "forged"}):
        response = survey.client.post("/s/submit", data=data)
        assert response.status_code == 400
        assert "This form has expired or was not sent from this site" in response.get_data(
            as_text=True
        )
    assert snapshot_rows() == before


# The thank-you page --------------------------------------------------------------------------


def test_the_thank_you_page_shows_no_scores_by_default(survey: Survey) -> None:
    complete(survey, BASELINE_CODES, CHOSEN)
    page = survey.get("/s/done")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "Thank you, your answers were sent" in body
    assert "Your scores" not in body
    assert "61.2" not in body


def test_the_thank_you_page_shows_scores_when_the_clinic_allows(survey: Survey, world: Any) -> None:
    clinic: Clinic = world.clinic_a
    clinic.show_patient_scores = True
    db.session.commit()
    complete(survey, BASELINE_CODES, CHOSEN)
    body = survey.get("/s/done").get_data(as_text=True)
    assert "Your scores" in body
    assert "T 61.2" in body  # PI 4a
    assert "T 39.2" in body  # PF 4a
    assert "T 57.9" in body  # SD 4a


def test_the_thank_you_page_is_only_for_sent_answers(survey: Survey) -> None:
    """Before Send, /s/done must not tell the patient that the answers were sent."""
    survey.started()
    survey.answer(1, 3)
    response = survey.client.get("/s/done")
    assert "your answers were sent" not in response.get_data(as_text=True)
    if response.status_code == 303:
        assert path_of(response) == "/s/q/2"


UNSAVED = "/s/done?unsaved=1"


def test_after_submit_every_page_leads_to_the_thank_you_page_and_nothing_changes(
    survey: Survey, baseline: Assessment
) -> None:
    complete(survey, BASELINE_CODES)
    before = snapshot_rows()
    for response, done in (
        (survey.client.get("/s/q/1"), "/s/done"),
        # A change (or a skip) after the answers were sent is not saved, and the page says so.
        (survey.client.post("/s/q/1", data={"csrf_token": survey.csrf, "answer": "5"}), UNSAVED),
        (survey.client.post("/s/q/1", data={"csrf_token": survey.csrf, "skip": "y"}), UNSAVED),
        (survey.client.get("/s/review"), "/s/done"),
        (survey.client.post("/s/submit", data={"csrf_token": survey.csrf}), "/s/done"),
    ):
        assert response.status_code == 303
        assert path_of(response) == done
    notice = survey.client.get(UNSAVED).get_data(as_text=True)
    assert "your last change was not saved" in notice
    assert "your last change was not saved" not in survey.client.get("/s/done").get_data(
        as_text=True
    )
    opened = survey.client.get(f"/s/{survey.token}")
    assert opened.status_code == 200
    assert "Thank you, this questionnaire is done" in opened.get_data(as_text=True)
    assert snapshot_rows() == before


# Double submit -------------------------------------------------------------------------------


def test_a_double_submit_leaves_one_set_of_responses_scores_and_alerts(
    browser: Browser, patient: Patient, enroll: Callable[..., Enrollment], mint: Mint
) -> None:
    enrollment = enroll(patient, -5)
    end_of_course = assessment_of(enrollment, "end_of_course")
    link = mint(end_of_course)
    tab = browser(link).started()
    other_tab = Survey(tab.client, link, tab.csrf)  # the same browser: the same cookies
    tab.answer_all(END_OF_COURSE_CODES, {("infusion-side-effects", "headache"): 3})
    tab.review()
    other_tab.review()
    first = tab.client.post("/s/submit", data={"csrf_token": tab.csrf})
    once = totals()
    second = other_tab.client.post("/s/submit", data={"csrf_token": other_tab.csrf})
    retry = tab.client.post("/s/submit", data={"csrf_token": tab.csrf})
    for response in (first, second, retry):
        assert response.status_code == 303
        assert path_of(response) == "/s/done"
    assert totals() == once
    assert once["survey_response"] == len(END_OF_COURSE_CODES)
    assert once["score"] == 9
    assert len(alerts()) == 1


def test_a_submit_from_a_second_device_after_the_first_changes_nothing(
    browser: Browser, link: str, baseline: Assessment, mint: Mint
) -> None:
    phone = browser(link).started()
    laptop = browser(mint(baseline)).started()
    phone.answer_all(BASELINE_CODES, read_pages=False)
    laptop.review()
    assert phone.submit().status_code == 303
    once = totals()
    late = laptop.client.post("/s/submit", data={"csrf_token": laptop.csrf})
    assert late.status_code == 303
    assert path_of(late) == "/s/done"
    assert totals() == once


def test_two_devices_submitting_at_the_same_moment_leave_one_set_of_scores(
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,
    patient: Patient,
    enroll: Callable[..., Enrollment],
    mint: Mint,
) -> None:
    enrollment = enroll(patient, -5)
    end_of_course = assessment_of(enrollment, "end_of_course")
    devices = [browser(mint(end_of_course)).started() for _ in range(2)]
    devices[0].answer_all(END_OF_COURSE_CODES, {("infusion-side-effects", "hallucinations"): 3})
    for device in devices:
        device.review()
    db.session.commit()

    # Scoring takes a while, so the second submit arrives while the first holds the lock.
    calls: list[bool] = []
    real_submit = services.submit
    real_record = services.record_submission

    def slow_record(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.1)
        return real_record(*args, **kwargs)

    def counted_submit(*args: Any, **kwargs: Any) -> services.SubmitResult:
        result = real_submit(*args, **kwargs)
        calls.append(result.already_submitted)
        return result

    monkeypatch.setattr(services, "record_submission", slow_record)
    monkeypatch.setattr(services, "submit", counted_submit)

    results = at_once(
        *(
            partial(device.client.post, "/s/submit", data={"csrf_token": device.csrf})
            for device in devices
        )
    )
    for result in results:
        assert isinstance(result, TestResponse), repr(result)
        assert result.status_code == 303, result.get_data(as_text=True)
        assert path_of(result) == "/s/done"
    # Exactly one submit did the work. The other found the assessment completed: in the submit
    # service (PostgreSQL: it waited on the row) or before it (SQLite: it waited for the
    # database's write lock, then read a completed assessment).
    assert calls.count(False) == 1
    assert calls.count(True) == len(calls) - 1
    counts = totals()
    assert counts["survey_response"] == len(END_OF_COURSE_CODES)
    assert counts["score"] == 9
    assert [a.kind for a in alerts()] == [AlertKind.SIDE_EFFECT]
    db.session.expire_all()
    assert end_of_course.status is AssessmentStatus.COMPLETED


# Alerts --------------------------------------------------------------------------------------


@pytest.fixture
def end_of_course(patient: Patient, enroll: Callable[..., Enrollment]) -> Assessment:
    """The end-of-course assessment, open now.

    It opens at 16:00 local on anchor + 4 and closes at the end of anchor + 7: with the anchor
    five days ago it is open at any hour of today (anchor - 4 would open only at 16:00 today).
    """
    enrollment = enroll(patient, -5)
    assessment = assessment_of(enrollment, "end_of_course")
    assert assessment.is_open(utcnow())
    return assessment


def test_a_severe_side_effect_raises_an_alert(
    browser: Browser, end_of_course: Assessment, mint: Mint, patient: Patient
) -> None:
    survey = browser(mint(end_of_course))
    complete(survey, END_OF_COURSE_CODES, {("infusion-side-effects", "dissociation"): 3})
    (alert,) = alerts()
    assert alert.kind is AlertKind.SIDE_EFFECT
    assert alert.status is AlertStatus.OPEN
    assert alert.patient_id == patient.id
    assert alert.clinic_id == patient.clinic_id
    assert alert.assessment_id == end_of_course.id
    assert alert.detail == {"instrument": "infusion-side-effects", "items": ["dissociation"]}
    # The checklist is not scored: the five scored instruments have nine scales.
    assert "infusion-side-effects" not in {code for code, _ in scores_of(end_of_course)}
    assert len(scores_of(end_of_course)) == 9


def test_several_severe_side_effects_are_one_alert_naming_them_all(
    browser: Browser, end_of_course: Assessment, mint: Mint
) -> None:
    survey = browser(mint(end_of_course))
    complete(
        survey,
        END_OF_COURSE_CODES,
        {
            ("infusion-side-effects", "hallucinations"): 3,
            ("infusion-side-effects", "headache"): 3,
            ("infusion-side-effects", "dizziness"): 2,
        },
    )
    (alert,) = alerts()
    assert alert.detail["items"] == ["hallucinations", "headache"]


def test_moderate_side_effects_raise_no_alert(
    browser: Browser, end_of_course: Assessment, mint: Mint
) -> None:
    survey = browser(mint(end_of_course))
    complete(survey, END_OF_COURSE_CODES, defaults_side_effects(2))
    assert alerts() == []


def defaults_side_effects(value: int) -> dict[tuple[str, str], int]:
    items = ("hallucinations", "dissociation", "nausea_vomiting", "dizziness", "headache", "other")
    return {("infusion-side-effects", item): value for item in items}


PI_ITEMS = ("PAININ9", "PAININ22", "PAININ31", "PAININ34")


def _pi(value: int) -> dict[tuple[str, str], int]:
    return {("promis-pi-4a", item): value for item in PI_ITEMS}


def test_a_meaningful_worsening_from_baseline_raises_an_alert(
    browser: Browser,
    enrollment: Enrollment,
    baseline: Assessment,
    mint: Mint,
    patient: Patient,
) -> None:
    # Baseline: little pain interference (raw 4, T 41.6, SE 6.1).
    complete(browser(mint(baseline)), BASELINE_CODES, _pi(1))
    assert alerts() == []
    # A month later (the clock moved on): much more (raw 20, T 75.6, SE 3.7), the rest the same.
    month_1 = assessment_of(enrollment, "month_1")
    open_now(month_1)
    complete(browser(mint(month_1)), BASELINE_CODES, _pi(5))

    # T 75.6 is also severe pain interference (T >= 70): an urgent alert of its own kind.
    assert sorted((a.kind.value, a.tier.value, a.rule) for a in alerts()) == [
        ("severity", "urgent", "severity:promis-pi-4a:total>=70"),
        ("worsening", "next_visit", "worsening:promis-pi-4a:total"),
    ]
    (alert,) = [a for a in alerts() if a.kind is AlertKind.WORSENING]
    assert alert.patient_id == patient.id
    assert alert.clinic_id == patient.clinic_id
    assert alert.assessment_id == month_1.id
    score = db.session.get(Score, alert.score_id)
    assert score is not None
    assert (score.instrument_code, score.timepoint_key, score.t_score) == (
        "promis-pi-4a",
        "month_1",
        75.6,
    )
    assert alert.detail["instrument"] == "promis-pi-4a"
    assert alert.detail["baseline"] == 41.6
    assert alert.detail["current"] == 75.6
    assert alert.detail["improvement"] == pytest.approx(-34.0)
    assert alert.detail["reliable_change_index"] == pytest.approx(34.0 / (6.1**2 + 3.7**2) ** 0.5)
    assert alert.detail["threshold"] == 3.0
    assert alert.detail["threshold_unit"] == "T"
    assert alert.detail["threshold_source"]


def test_an_improvement_from_baseline_raises_no_alert(
    browser: Browser, enrollment: Enrollment, baseline: Assessment, mint: Mint
) -> None:
    complete(browser(mint(baseline)), BASELINE_CODES, _pi(5))
    month_1 = assessment_of(enrollment, "month_1")
    open_now(month_1)
    complete(browser(mint(month_1)), BASELINE_CODES, _pi(1))
    assert worsenings() == []
    # The baseline's severe level (T 75.6) was alerted when it was sent; nothing at month 1.
    assert [(a.kind, a.assessment_id) for a in alerts()] == [(AlertKind.SEVERITY, baseline.id)]


def test_a_follow_up_without_a_baseline_raises_no_worsening_alert(
    browser: Browser, enrollment: Enrollment, mint: Mint
) -> None:
    month_1 = assessment_of(enrollment, "month_1")
    open_now(month_1)
    complete(browser(mint(month_1)), BASELINE_CODES, _pi(5))
    assert worsenings() == []


def test_an_earlier_follow_ups_worsening_is_not_alerted_again(
    browser: Browser, enrollment: Enrollment, baseline: Assessment, mint: Mint
) -> None:
    complete(browser(mint(baseline)), BASELINE_CODES, _pi(1))
    month_1 = assessment_of(enrollment, "month_1")
    open_now(month_1)
    complete(browser(mint(month_1)), BASELINE_CODES, _pi(5))
    assert len(worsenings()) == 1
    month_3 = assessment_of(enrollment, "month_3")
    open_now(month_3)
    complete(browser(mint(month_3)), BASELINE_CODES, _pi(1))
    assert len(worsenings()) == 1  # month 3 is back to baseline; month 1's alert is not repeated
