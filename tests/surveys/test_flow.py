"""The survey itself: Start, the survey cookie, one question per screen, resume, review.

"Start" trades the link for a short-lived HttpOnly cookie and continues on URLs without the
token. Every page POST saves the draft, so reopening the link (a new token, another device)
resumes at the first unanswered question. CSRF protects every POST, never expires mid-survey
and works with Referrer-Policy: no-referrer. Pages are gzip-compressed and never cached.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode
from markupsafe import escape

from proms.admin.models import Patient
from proms.db import db, utcnow
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.surveys import session as survey_cookie
from proms.surveys import views
from proms.surveys.models import AccessToken, ResponseStatus, SurveyResponse
from tests.helpers import World
from tests.surveys.helpers import (
    BASELINE_CODES,
    PlannedQuestion,
    Survey,
    csrf_of,
    path_of,
    planned_questions,
    snapshot_rows,
)

SECURE_COOKIE = "__Host-proms-survey"
PLAIN_COOKIE = "proms-survey"
TOTAL = 35  # the baseline's questions
CSRF_REFUSED = "This form has expired or was not sent from this site"
SESSION_ENDED = "Please open your link again"
CHOOSE_AN_ANSWER = "Choose an answer, or use “Skip this question”."
UNREADABLE = "could not be read"


def answers_of(assessment: Assessment) -> dict[str, dict[str, object]]:
    db.session.expire_all()
    rows = db.session.scalars(
        sa.select(SurveyResponse).where(SurveyResponse.assessment_id == assessment.id)
    )
    return {row.instrument.code: dict(row.answers) for row in rows}


def checked_value(body: str) -> str | None:
    """The value of the radio button the page shows as chosen."""
    for tag in re.findall(r"<input[^>]*>", body):
        if 'type="radio"' in tag and re.search(r"\schecked[\s>=]", tag):
            match = re.search(r'value="([^"]*)"', tag)
            return match.group(1) if match else None
    return None


def set_cookie_header(response: object, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):  # type: ignore[attr-defined]
        if header.startswith(f"{name}="):
            return str(header)
    raise AssertionError(f"no {name} cookie was set")


# Start ---------------------------------------------------------------------------------------


def test_start_creates_the_drafts_and_redirects_to_the_first_question(
    survey: Survey, baseline: Assessment, link: str
) -> None:
    response = survey.start()
    assert response.status_code == 303
    assert path_of(response) == "/s/q/1"
    assert link not in response.headers["Location"]
    db.session.expire_all()
    assert baseline.status is AssessmentStatus.IN_PROGRESS
    assert baseline.started_at is not None
    assert [r.instrument.code for r in baseline.responses] == list(BASELINE_CODES)
    assert all(r.status is ResponseStatus.DRAFT and r.answers == {} for r in baseline.responses)
    token = db.session.scalars(sa.select(AccessToken)).one()
    assert token.last_used_at is not None


def test_starting_twice_creates_nothing_more(
    browser: Callable[[str], Survey], baseline: Assessment, link: str
) -> None:
    browser(link).started()
    db.session.expire_all()
    started_at = baseline.started_at
    before = snapshot_rows()["survey_response"]
    browser(link).started()
    db.session.expire_all()
    assert snapshot_rows()["survey_response"] == before == len(BASELINE_CODES)
    assert baseline.started_at == started_at


def test_start_without_a_csrf_token_is_refused_and_starts_nothing(
    survey: Survey, link: str
) -> None:
    survey.open()
    before = snapshot_rows()
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}):
        response = survey.client.post(f"/s/{link}", data=data)
        assert response.status_code == 400
        assert CSRF_REFUSED in response.get_data(as_text=True)
    assert survey.client.get_cookie(SECURE_COOKIE) is None
    assert snapshot_rows() == before


def test_start_from_another_site_is_refused(survey: Survey, link: str) -> None:
    survey.open()
    before = snapshot_rows()
    response = survey.client.post(
        f"/s/{link}",
        data={"csrf_token": survey.csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 400
    assert "sent from another site" in response.get_data(as_text=True)
    assert snapshot_rows() == before


def test_the_survey_works_over_https_without_a_referer(
    app: Flask, link: str, baseline: Assessment
) -> None:
    """Referrer-Policy: no-referrer means browsers send no Referer; CSRF must not need one."""
    client = app.test_client()
    https = "https://localhost"
    page = client.get(f"/s/{link}", base_url=https)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    started = client.post(f"/s/{link}", data={"csrf_token": csrf_of(page)}, base_url=https)
    assert started.status_code == 303, started.get_data(as_text=True)
    question = client.get("/s/q/1", base_url=https)
    answered = client.post(
        "/s/q/1",
        data={"csrf_token": csrf_of(question), "answer": "2", "next": "Next"},
        base_url=https,
        headers={"Origin": https},
    )
    assert answered.status_code == 303, answered.get_data(as_text=True)
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": 2}


# The survey cookie ---------------------------------------------------------------------------


def test_the_survey_cookie_is_httponly_samesite_lax_secure_and_host_prefixed(
    app: Flask, survey: Survey
) -> None:
    response = survey.start()
    header = set_cookie_header(response, SECURE_COOKIE)
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "secure" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert not any(a.startswith("domain=") for a in attributes)  # __Host- forbids a Domain
    assert f"max-age={app.config['SURVEY_SESSION_MINUTES'] * 60}" in attributes
    assert survey.token not in header


def test_in_development_the_survey_cookie_has_a_plain_name_and_no_secure_flag(
    make_app: Callable[..., Flask], world: World, link: str
) -> None:
    development = make_app(ENV="development")
    survey = Survey(development.test_client(), link)
    response = survey.start()
    assert response.status_code == 303
    header = set_cookie_header(response, PLAIN_COOKIE)
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes
    assert SECURE_COOKIE not in " ".join(response.headers.getlist("Set-Cookie"))
    assert survey.question(1).status_code == 200


def test_the_cookie_is_renewed_once_a_tenth_of_its_lifetime_has_passed(
    survey: Survey, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sliding expiry without a Set-Cookie on every response (~200 bytes each on a phone)."""
    survey.started()
    page = survey.question(1)
    assert not any(h.startswith(SECURE_COOKIE) for h in page.headers.getlist("Set-Cookie"))
    lifetime = dt.timedelta(minutes=app.config["SURVEY_SESSION_MINUTES"])
    later = utcnow() + lifetime * survey_cookie.RENEW_AFTER + dt.timedelta(seconds=1)
    monkeypatch.setattr(views, "utcnow", lambda: later)
    answered = survey.post_question(1, {"answer": "1", "next": "Next"})
    renewed = set_cookie_header(answered, SECURE_COOKIE)
    assert f"Max-Age={lifetime.seconds}" in renewed
    assert "Expires" not in renewed


def test_no_page_after_start_carries_the_token(survey: Survey, link: str) -> None:
    survey.open()
    survey.start()
    after_start = len(survey.pages) - 1
    survey.answer(1, 2)
    survey.skip(2)
    survey.question(1)
    survey.answer_all(BASELINE_CODES, start_at=3)
    survey.question(5, from_review=True)
    survey.answer(5, 4, from_review=True)
    survey.submit()
    survey.get("/s/done")
    pages = survey.pages[after_start:]
    assert len(pages) > 70
    for page in pages:
        assert link not in page.headers.get("Location", "")
        assert link not in page.get_data(as_text=True)
        for header in page.headers.getlist("Set-Cookie"):
            assert link not in header


def _tamper(value: str) -> str:
    """The cookie with another token id in its payload and the original signature.

    Changing the payload, not a character of the signature: the last base64 character of a
    signature may carry only padding bits, so flipping it sometimes changes nothing at all.
    """
    assert not value.startswith("."), "a compressed payload: tamper with it differently"
    payload, signed = value.split(".", 1)
    data = json.loads(base64_decode(payload))  # [token id, identity checked]
    data[0] += 1
    forged = base64_encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    assert forged != payload
    return f"{forged}.{signed}"


def _old_serializer(secret: str, salt: str, age: dt.timedelta) -> URLSafeTimedSerializer:
    """Signs as if it were `age` ago."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age.total_seconds())

    return URLSafeTimedSerializer(secret, salt=salt, signer=Earlier)


@pytest.mark.parametrize("how", ["missing", "tampered", "other-secret", "expired", "not-a-session"])
def test_a_bad_survey_cookie_asks_to_open_the_link_again(
    how: str, app: Flask, survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    token_id = db.session.scalars(sa.select(AccessToken.id)).one()
    value = survey.client.get_cookie(SECURE_COOKIE).value  # type: ignore[union-attr]
    minutes = app.config["SURVEY_SESSION_MINUTES"]
    if how == "missing":
        survey.client.delete_cookie(SECURE_COOKIE)
    else:
        forged = {
            "tampered": lambda: _tamper(value),
            "other-secret": lambda: URLSafeTimedSerializer(
                "another-secret", salt="proms.survey"
            ).dumps([token_id, 1]),
            "expired": lambda: _old_serializer(
                app.config["SECRET_KEY"], "proms.survey", dt.timedelta(minutes=minutes + 1)
            ).dumps([token_id, 1]),
            "not-a-session": lambda: URLSafeTimedSerializer(
                app.config["SECRET_KEY"], salt="proms.survey"
            ).dumps([str(token_id), 1]),
        }[how]()
        survey.client.set_cookie(SECURE_COOKIE, forged)
    before = snapshot_rows()
    for response in (
        survey.client.get("/s/q/1"),
        survey.client.post("/s/q/1", data={"csrf_token": survey.csrf, "answer": "1"}),
        survey.client.get("/s/review"),
        survey.client.post("/s/submit", data={"csrf_token": survey.csrf}),
        survey.client.get("/s/done"),
        survey.client.get("/s/check"),
    ):
        body = response.get_data(as_text=True)
        assert response.status_code == 403
        assert f"<h1>{SESSION_ENDED}</h1>" in body
        assert "Your answers so far are saved" in body
        assert response.headers["Cache-Control"] == "no-store"
    assert snapshot_rows() == before


def test_a_cookie_of_the_first_format_still_works(app: Flask, survey: Survey) -> None:
    """Cookies signed before the compact format (a patient mid-questionnaire during a deploy)."""
    survey.started()
    token_id = db.session.scalars(sa.select(AccessToken.id)).one()
    first_format = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="proms.survey").dumps(
        {"t": token_id, "v": True}
    )
    survey.client.set_cookie(SECURE_COOKIE, first_format)
    assert survey.question(1).status_code == 200


def test_a_cookie_just_inside_its_lifetime_still_works(app: Flask, survey: Survey) -> None:
    survey.started()
    token_id = db.session.scalars(sa.select(AccessToken.id)).one()
    minutes = app.config["SURVEY_SESSION_MINUTES"]
    almost = _old_serializer(
        app.config["SECRET_KEY"], "proms.survey", dt.timedelta(minutes=minutes - 1)
    ).dumps([token_id, 1])
    survey.client.set_cookie(SECURE_COOKIE, almost)
    assert survey.question(1).status_code == 200


# One question per screen ---------------------------------------------------------------------


def test_a_question_page_shows_progress_recall_period_options_next_and_back(
    survey: Survey,
) -> None:
    survey.started()
    page = survey.question(3)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"Question 3 of {TOTAL}" in body
    assert f'<progress max="{TOTAL}" value="2"' in body
    assert '<span class="recall">In the past 7 days</span>' in body
    third = planned_questions(BASELINE_CODES)[2]
    assert str(escape(third.item.text)) in body
    # Every option is a whole label (a full-width target) around its radio button.
    labels = re.findall(r'<label class="option"[^>]*>(.*?)</label>', body, re.S)
    assert len(labels) == len(third.item.options)
    for option, label in zip(third.item.options, labels, strict=True):
        assert 'type="radio"' in label
        assert f'value="{option.value}"' in label
        assert str(escape(option.label)) in label
    assert 'name="next"' in body
    assert 'name="skip"' in body
    assert '<a href="/s/q/2">Back</a>' in body
    assert csrf_of(page)


def test_the_first_question_has_no_back_link(survey: Survey) -> None:
    survey.started()
    body = survey.question(1).get_data(as_text=True)
    assert f"Question 1 of {TOTAL}" in body
    assert ">Back</a>" not in body


def test_questions_come_in_the_protocols_instrument_order(survey: Survey) -> None:
    survey.started()
    plan = planned_questions(BASELINE_CODES)
    assert len(plan) == TOTAL
    for number in (1, 4, 5, 9, 13, 32, 33, 35):
        body = survey.question(number).get_data(as_text=True)
        assert str(escape(plan[number - 1].item.text)) in body, number
    # PASS-20 has no recall period of its own; PEG asks about the past week.
    assert 'class="recall"' not in survey.question(13).get_data(as_text=True)
    assert "In the past week" in survey.question(33).get_data(as_text=True)


def test_next_saves_the_answer_and_goes_to_the_next_question(
    survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    response = survey.answer(1, 4)
    assert response.status_code == 303
    assert path_of(response) == "/s/q/2"
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": 4}
    stored = answers_of(baseline)["promis-pi-4a"]["PAININ9"]
    assert stored == 4
    assert isinstance(stored, int)


def test_back_shows_the_answer_already_given_and_it_can_be_changed(
    survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.answer(1, 4)
    survey.answer(2, 2)
    assert checked_value(survey.question(1).get_data(as_text=True)) == "4"
    assert checked_value(survey.question(2).get_data(as_text=True)) == "2"
    assert checked_value(survey.question(3).get_data(as_text=True)) is None
    changed = survey.answer(1, 5)
    assert path_of(changed) == "/s/q/2"
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": 5, "PAININ22": 2}


def test_skip_stores_a_deliberate_blank_and_moves_on(survey: Survey, baseline: Assessment) -> None:
    survey.started()
    response = survey.skip(1)
    assert response.status_code == 303
    assert path_of(response) == "/s/q/2"
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": None}
    # Skipping an answered question clears it.
    survey.answer(2, 3)
    survey.skip(2)
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": None, "PAININ22": None}
    review = survey.review().get_data(as_text=True)
    assert review.count("<em>Skipped</em>") == 2
    assert review.count("<em>Not answered</em>") == TOTAL - 2


def test_the_last_question_leads_to_the_review(survey: Survey) -> None:
    survey.started()
    response = survey.answer(TOTAL, 5)
    assert path_of(response) == "/s/review"


@pytest.mark.parametrize(
    "value",
    [
        "9",  # not among the options (1 to 5)
        "0",
        "-1",
        "3.0",
        " 3",
        "03",
        "1e1",
        "true",
        "3" * 4_000,  # a huge value (larger bodies: tests/test_form_limits.py)
        "<script>alert(1)</script>",
        "' OR 1=1 --",
    ],
)
def test_an_answer_that_is_not_an_option_is_refused_with_a_message(
    value: str, survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.answer(1, 2)
    survey.question(2)
    before = snapshot_rows()
    response = survey.post_question(2, {"answer": value, "next": "Next"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'class="error-summary" role="alert"' in body
    assert f"Question 2 of {TOTAL}" in body  # the same question again
    assert "<script>alert(1)</script>" not in body
    assert snapshot_rows() == before
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": 2}


@pytest.mark.parametrize("data", [{"next": "Next"}, {"answer": "", "next": "Next"}])
def test_next_without_an_answer_asks_for_one_or_a_skip(
    data: dict[str, str], survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.question(1)
    response = survey.post_question(1, data)
    assert response.status_code == 400
    assert str(escape(CHOOSE_AN_ANSWER)) in response.get_data(as_text=True)
    assert answers_of(baseline)["promis-pi-4a"] == {}


@pytest.mark.parametrize(
    "raw",
    [
        b"answer=%FF%FE&next=Next",  # percent-encoded bytes that are not UTF-8
        b"answer=\xff\xfe&next=Next",  # the same bytes, literally
        b"answer=3%00&next=Next",  # a NUL
    ],
)
def test_an_answer_that_is_not_text_is_a_400_with_a_message(
    raw: bytes, survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.question(1)
    before = snapshot_rows()
    body = b"csrf_token=" + survey.csrf.encode() + b"&" + raw  # type: ignore[union-attr]
    response = survey.client.post(
        "/s/q/1", data=body, content_type="application/x-www-form-urlencoded"
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert UNREADABLE in text
    assert "Traceback" not in text
    assert snapshot_rows() == before


def test_a_question_post_without_a_csrf_token_is_refused(
    survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.question(1)
    before = snapshot_rows()
    for data in (
        {"answer": "3", "next": "Next"},
        {"skip": "Skip this question"},
        {"answer": "3", "next": "Next", "csrf_token": "forged"},
    ):
        response = survey.client.post("/s/q/1", data=data)
        assert response.status_code == 400
        assert CSRF_REFUSED in response.get_data(as_text=True)
    assert snapshot_rows() == before


def test_the_csrf_token_does_not_expire_mid_survey(
    app: Flask, survey: Survey, baseline: Assessment
) -> None:
    """A patient who leaves a page open for hours can still press Next."""
    survey.started()
    survey.question(1)
    session_cookie = survey.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert session_cookie is not None
    session = app.session_interface.get_signing_serializer(app).loads(  # type: ignore[attr-defined]
        session_cookie.value
    )
    secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.config["SECRET_KEY"]
    old = _old_serializer(secret, "wtf-csrf-token", dt.timedelta(hours=6)).dumps(
        session["csrf_token"]
    )
    # A fresh survey cookie (the survey cookie itself has its own idle limit).
    survey.question(1)
    response = survey.client.post("/s/q/1", data={"csrf_token": old, "answer": "2", "next": "Next"})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert answers_of(baseline)["promis-pi-4a"] == {"PAININ9": 2}


def test_one_csrf_token_serves_the_whole_survey(survey: Survey, baseline: Assessment) -> None:
    survey.started()
    survey.question(1)
    first = survey.csrf
    survey.answer_all(BASELINE_CODES, read_pages=False)
    assert survey.csrf == first
    assert survey.submit(read_review=False).status_code == 303


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/s/q/0", "/s/q/3"),
        (f"/s/q/{TOTAL + 1}", "/s/q/3"),
        ("/s/q/999", "/s/q/3"),
        ("/s/q/99999999999999999999999", "/s/q/3"),
    ],
)
def test_question_numbers_out_of_range_redirect_to_where_the_patient_is(
    path: str, expected: str, survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.answer(1, 1)
    survey.answer(2, 1)
    before = snapshot_rows()
    for response in (
        survey.client.get(path),
        survey.client.post(path, data={"csrf_token": survey.csrf, "answer": "1", "next": "N"}),
    ):
        assert response.status_code == 303
        assert path_of(response) == expected
    assert snapshot_rows() == before


def test_out_of_range_redirects_to_the_review_when_everything_is_answered(
    survey: Survey,
) -> None:
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    response = survey.client.get("/s/q/0")
    assert path_of(response) == "/s/review"


@pytest.mark.parametrize("path", ["/s/q/-1", "/s/q/abc", "/s/q/1.5"])
def test_question_paths_that_are_not_numbers_are_not_found(path: str, survey: Survey) -> None:
    survey.started()
    assert survey.client.get(path).status_code == 404


# Resume --------------------------------------------------------------------------------------


def test_reopening_on_another_device_resumes_at_the_first_unanswered_question(
    browser: Callable[[str], Survey],
    baseline: Assessment,
    link: str,
    mint: Callable[..., str],
) -> None:
    phone = browser(link).started()
    phone.answer(1, 4)
    phone.skip(2)
    phone.answer(3, 2)
    # Later, on a laptop, from the reminder (a new token, no cookie).
    laptop = browser(mint(baseline))
    welcome = laptop.open()
    assert f"{TOTAL} questions" in welcome.get_data(as_text=True)
    resumed = laptop.start()
    assert resumed.status_code == 303
    assert path_of(resumed) == "/s/q/4"
    # The answers already given are shown and can be changed.
    assert checked_value(laptop.question(1).get_data(as_text=True)) == "4"
    assert checked_value(laptop.question(2).get_data(as_text=True)) is None
    assert checked_value(laptop.question(3).get_data(as_text=True)) == "2"
    laptop.answer(3, 5)
    assert answers_of(baseline)["promis-pi-4a"] == {
        "PAININ9": 4,
        "PAININ22": None,
        "PAININ31": 5,
    }
    db.session.expire_all()
    assert len(baseline.responses) == len(BASELINE_CODES)
    # The first device carries on too and sees the change.
    assert checked_value(phone.question(3).get_data(as_text=True)) == "5"


def test_reopening_the_same_link_resumes_too(browser: Callable[[str], Survey], link: str) -> None:
    first = browser(link).started()
    for number in range(1, 6):
        first.answer(number, 1 if number <= 4 else 5)
    again = browser(link)
    assert path_of(again.start()) == "/s/q/6"


def test_reopening_after_every_question_is_answered_goes_to_the_review(
    browser: Callable[[str], Survey], link: str
) -> None:
    browser(link).started().answer_all(BASELINE_CODES, read_pages=False)
    assert path_of(browser(link).start()) == "/s/review"


# Review --------------------------------------------------------------------------------------


def test_the_review_sums_up_and_lists_every_answer_one_questionnaire_at_a_time(
    survey: Survey,
) -> None:
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    page = survey.review()
    summary = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "You answered 35 of 35 questions." in summary
    assert 'action="/s/submit"' in summary
    assert csrf_of(page)
    assert "Questions without an answer" not in summary
    # One part per questionnaire, at most ten questions a part: PASS-20 is two.
    parts: list[list[PlannedQuestion]] = []
    for question in planned_questions(BASELINE_CODES):
        if not parts or parts[-1][-1].code != question.code or len(parts[-1]) == 10:
            parts.append([])
        parts[-1].append(question)
    assert [len(part) for part in parts] == [4, 4, 4, 10, 10, 3]
    for number, part in enumerate(parts, start=1):
        assert f'href="/s/review/{number}"' in summary
        body = survey.get(f"/s/review/{number}").get_data(as_text=True)
        assert f"questions {part[0].number} to {part[-1].number}" in body
        for question in part:
            assert f'href="/s/q/{question.number}?from=review&amp;part={number}"' in body
            assert str(escape(question.item.text)) in body
    assert "Somewhat" in survey.get("/s/review/1").get_data(as_text=True)  # PI 4a answered 3
    # Past the last part: back to the summary.
    beyond = survey.get(f"/s/review/{len(parts) + 1}")
    assert (beyond.status_code, path_of(beyond)) == (303, "/s/review")


def test_changing_an_answer_from_the_review_returns_to_where_it_was_opened(
    survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    page = survey.question(2, from_review=True)
    body = page.get_data(as_text=True)
    assert '<a href="/s/review">Back to your answers</a>' in body
    assert 'action="/s/q/2?from=review"' in body
    assert checked_value(body) == "3"
    response = survey.post_question(2, {"answer": "5", "next": "Next"}, from_review=True)
    assert response.status_code == 303
    assert path_of(response) == "/s/review"
    assert answers_of(baseline)["promis-pi-4a"]["PAININ22"] == 5
    # From one questionnaire's answers: back to that list, which shows the change.
    page = survey.get("/s/q/2?from=review&part=1")
    assert 'action="/s/q/2?from=review&amp;part=1"' in page.get_data(as_text=True)
    assert '<a href="/s/review/1">Back to your answers</a>' in page.get_data(as_text=True)
    response = survey.client.post(
        "/s/q/2?from=review&part=1", data={"csrf_token": survey.csrf, "answer": "4"}
    )
    assert path_of(response) == "/s/review/1"
    review = survey.get("/s/review/1").get_data(as_text=True)
    second = re.search(r"<dt>2\. .*?</dd>", review, re.S)
    assert second is not None
    assert "Quite a bit" in second.group(0)


def test_skipping_from_the_review_returns_to_the_review(
    survey: Survey, baseline: Assessment
) -> None:
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    survey.question(7, from_review=True)
    response = survey.post_question(7, {"skip": "Skip this question"}, from_review=True)
    assert path_of(response) == "/s/review"
    assert answers_of(baseline)["promis-pf-4a"]["PFA23"] is None


# Every page: no-store, gzip, language --------------------------------------------------------


def test_every_survey_page_is_no_store(survey: Survey) -> None:
    survey.open()
    survey.start()
    survey.get("/s/q/1")
    survey.answer(1, 3)
    survey.post_question(2, {"answer": "99", "next": "Next"})  # a 400
    survey.skip(2)
    survey.answer_all(BASELINE_CODES, start_at=3, read_pages=False)
    survey.review()
    survey.submit()
    survey.get("/s/done")
    survey.get(f"/s/{survey.token}")  # completed
    assert len(survey.pages) > 40
    for page in survey.pages:
        assert page.headers["Cache-Control"] == "no-store", (page.status, page.location)
        assert page.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["welcome", "/s/q/1", "/s/q/2", "/s/review"])
def test_pages_are_gzip_compressed_when_the_browser_accepts_it(path: str, survey: Survey) -> None:
    if path == "welcome":
        path = f"/s/{survey.token}"
    else:
        survey.started()
        survey.answer(1, 3)
    # A browser that reads gzip but not brotli (brotli is preferred when offered).
    response = survey.client.get(path, headers={"Accept-Encoding": "gzip, deflate"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == "no-store"
    html = gzip.decompress(response.get_data()).decode("utf-8")
    assert html.startswith("<!doctype html>")
    assert "</html>" in html
    assert "Clinic A" in html
    assert int(response.headers["Content-Length"]) == len(response.get_data())


def test_pages_are_not_compressed_for_a_browser_that_does_not_accept_gzip(
    survey: Survey,
) -> None:
    response = survey.client.get(f"/s/{survey.token}")
    assert "Content-Encoding" not in response.headers
    assert response.get_data(as_text=True).startswith("<!doctype html>")


def test_pages_speak_the_patients_language(
    browser: Callable[[str], Survey], patient: Patient, link: str
) -> None:
    patient.language = "es"
    db.session.commit()
    survey = browser(link)
    assert '<html lang="es">' in survey.open().get_data(as_text=True)
    survey.started()
    assert '<html lang="es">' in survey.question(1).get_data(as_text=True)
    assert '<html lang="es">' in survey.review().get_data(as_text=True)


def test_an_english_patient_gets_english_pages(survey: Survey) -> None:
    assert '<html lang="en">' in survey.open().get_data(as_text=True)
