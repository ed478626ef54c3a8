"""The optional date-of-birth check (Protocol.requires_identity_check) before the first question.

Five wrong dates lock the link for an hour and the patient is told when to try again (in her
own time zone); a locked link refuses even the right date until the lock passes. Invalid input
is a 400 that is not a try; the check is rate limited with a friendly 429 page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from babel.dates import format_datetime
from flask import Flask

from proms.admin.models import Protocol
from proms.db import db, utcnow
from proms.scheduling.models import Assessment
from proms.surveys.models import AccessToken
from tests.helpers import World
from tests.surveys.helpers import (
    BASELINE_CODES,
    BIRTH_ON,
    PATIENT_DETAILS,
    PATIENT_ZONE,
    Survey,
    assert_friendly_429,
    csrf_of,
    path_of,
    snapshot_rows,
)

RIGHT = {"day": str(BIRTH_ON.day), "month": str(BIRTH_ON.month), "year": str(BIRTH_ON.year)}
WRONG = {"day": "10", "month": "11", "year": "1948"}
MISMATCH = "That date of birth does not match our records"
TOO_MANY = "Too many tries. For your privacy this link is paused until"


@pytest.fixture
def identity_protocol(world: World) -> Protocol:
    world.protocol_a.requires_identity_check = True
    db.session.commit()
    return world.protocol_a


@pytest.fixture
def checking(identity_protocol: Protocol, survey: Survey) -> Survey:
    """A patient who pressed Start on a protocol that checks the date of birth."""
    response = survey.start()
    assert response.status_code == 303
    assert path_of(response) == "/s/check"
    page = survey.get("/s/check")
    assert page.status_code == 200
    return survey


def send_date(survey: Survey, data: dict[str, str], *, csrf: bool = True) -> Any:
    payload = {**data, **({"csrf_token": survey.csrf} if csrf else {})}
    response = survey.client.post("/s/check", data=payload)
    survey.pages.append(response)
    return response


def token_row() -> AccessToken:
    db.session.expire_all()
    return db.session.scalars(sa.select(AccessToken)).one()


def test_the_check_comes_before_the_first_question(checking: Survey) -> None:
    body = checking.pages[-1].get_data(as_text=True)
    assert "First, check it is you" in body
    assert "Your date of birth" in body
    assert checking.pages[-1].headers["Cache-Control"] == "no-store"
    for name, value in PATIENT_DETAILS.items():
        assert value not in body, name


def test_no_question_review_or_submit_before_the_check(
    checking: Survey, baseline: Assessment
) -> None:
    before = snapshot_rows()
    for response in (
        checking.client.get("/s/q/1"),
        checking.client.post(
            "/s/q/1", data={"csrf_token": checking.csrf, "answer": "3", "next": "Next"}
        ),
        checking.client.get("/s/review"),
        checking.client.post("/s/submit", data={"csrf_token": checking.csrf}),
        checking.client.get("/s/done"),
    ):
        assert response.status_code == 303
        assert path_of(response) == "/s/check"
    assert snapshot_rows() == before


def test_the_right_date_leads_to_the_first_question(checking: Survey) -> None:
    response = send_date(checking, RIGHT)
    assert response.status_code == 303
    assert path_of(response) == "/s/q/1"
    assert checking.question(1).status_code == 200
    # Checked once per browser: the check page now sends the patient on.
    assert path_of(checking.client.get("/s/check")) == "/s/q/1"


def test_leading_zeros_are_fine(checking: Survey) -> None:
    response = send_date(checking, {"day": "09", "month": "11", "year": "1948"})
    assert path_of(response) == "/s/q/1"


def test_a_wrong_date_says_so_and_counts(checking: Survey) -> None:
    response = send_date(checking, WRONG)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert MISMATCH in body
    assert token_row().failed_identity_count == 1
    assert path_of(checking.client.get("/s/q/1")) == "/s/check"


def test_five_wrong_dates_lock_the_link_for_an_hour_with_the_retry_time_shown(
    checking: Survey,
) -> None:
    for attempt in range(1, 5):
        response = send_date(checking, WRONG)
        assert response.status_code == 400, attempt
        assert MISMATCH in response.get_data(as_text=True)
    before = utcnow()
    locked = send_date(checking, WRONG)
    body = locked.get_data(as_text=True)
    assert locked.status_code == 429
    assert TOO_MANY in body
    assert locked.headers["Cache-Control"] == "no-store"
    assert 'name="day"' not in body  # no form while locked

    until = token_row().identity_locked_until
    assert until is not None
    assert before + dt.timedelta(minutes=59) < until <= utcnow() + dt.timedelta(minutes=60)
    # The time is the patient's local time, as her clock shows it.
    zone = ZoneInfo(PATIENT_ZONE)
    local = format_datetime(until.astimezone(zone), "short", tzinfo=zone, locale="en")
    assert local in body
    in_utc = format_datetime(until, "short", tzinfo=dt.UTC, locale="en")
    assert in_utc not in body


def test_a_locked_link_refuses_even_the_right_date_until_the_lock_passes(
    checking: Survey,
) -> None:
    for _ in range(5):
        send_date(checking, WRONG)
    refused = send_date(checking, RIGHT)
    assert refused.status_code == 429
    assert TOO_MANY in refused.get_data(as_text=True)
    assert checking.client.get("/s/check").status_code == 429
    assert path_of(checking.client.get("/s/q/1")) == "/s/check"

    # The hour passes.
    token = token_row()
    token.identity_locked_until = utcnow() - dt.timedelta(seconds=1)
    db.session.commit()
    page = checking.get("/s/check")
    assert page.status_code == 200
    assert csrf_of(page)
    passed = send_date(checking, RIGHT)
    assert passed.status_code == 303
    assert path_of(passed) == "/s/q/1"
    assert token_row().failed_identity_count == 0


def test_the_lock_holds_for_a_new_browser_on_the_same_link(
    checking: Survey, browser: Callable[[str], Survey], link: str
) -> None:
    for _ in range(5):
        send_date(checking, WRONG)
    other = browser(link)
    assert path_of(other.start()) == "/s/check"
    assert other.client.get("/s/check").status_code == 429
    assert send_date(other, RIGHT).status_code == 429


@pytest.mark.parametrize(
    "data",
    [
        {"day": "", "month": "", "year": ""},
        {"day": "40", "month": "3", "year": "1948"},
        {"day": "27", "month": "13", "year": "1948"},
        {"day": "27", "month": "3", "year": "57"},
        {"day": "x", "month": "3", "year": "1948"},
        {"day": "27", "month": "3"},
        {"day": "9" * 5000, "month": "3", "year": "1948"},
    ],
)
def test_invalid_input_is_a_400_that_is_not_a_try(data: dict[str, str], checking: Survey) -> None:
    response = send_date(checking, data)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Please check your date of birth." in body
    assert MISMATCH not in body
    assert token_row().failed_identity_count == 0


def test_a_date_that_does_not_exist_does_not_pass(checking: Survey) -> None:
    response = send_date(checking, {"day": "30", "month": "2", "year": "1948"})
    assert response.status_code == 400
    assert "Traceback" not in response.get_data(as_text=True)
    assert token_row().identity_locked_until is None
    assert path_of(checking.client.get("/s/q/1")) == "/s/check"


def test_invalid_utf8_in_the_date_is_a_400(checking: Survey) -> None:
    body = b"csrf_token=" + checking.csrf.encode() + b"&day=%FF&month=3&year=1948"  # type: ignore[union-attr]
    response = checking.client.post(
        "/s/check", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert "could not be read" in response.get_data(as_text=True)
    assert token_row().failed_identity_count == 0


def test_the_check_needs_the_csrf_token(checking: Survey) -> None:
    for payload in (RIGHT, WRONG):
        response = send_date(checking, payload, csrf=False)
        assert response.status_code == 400
        assert "This form has expired or was not sent from this site" in response.get_data(
            as_text=True
        )
    assert token_row().failed_identity_count == 0
    assert path_of(checking.client.get("/s/q/1")) == "/s/check"


def test_each_browser_checks_again_and_then_resumes_where_the_patient_stopped(
    checking: Survey, browser: Callable[[str], Survey], baseline: Assessment, mint: Any
) -> None:
    send_date(checking, RIGHT)
    for number in (1, 2, 3):
        checking.answer(number, 2)
    laptop = browser(mint(baseline))
    assert path_of(laptop.start()) == "/s/check"
    laptop.get("/s/check")
    resumed = send_date(laptop, RIGHT)
    assert path_of(resumed) == "/s/q/4"


def test_a_full_survey_with_the_check_can_be_sent(checking: Survey, baseline: Assessment) -> None:
    send_date(checking, RIGHT)
    checking.answer_all(BASELINE_CODES, read_pages=False)
    assert path_of(checking.submit()) == "/s/done"


def test_without_the_protocol_setting_there_is_no_check(survey: Survey) -> None:
    response = survey.start()
    assert path_of(response) == "/s/q/1"
    assert path_of(survey.client.get("/s/check")) == "/s/q/1"


def test_identity_checks_are_rate_limited_with_a_friendly_page(
    make_app: Callable[..., Flask], identity_protocol: Protocol, link: str
) -> None:
    limited = make_app(IDENTITY_RATE_LIMIT="2 per minute")
    survey = Survey(limited.test_client(), link).started()
    survey.get("/s/check")
    for _ in range(2):
        assert send_date(survey, {"day": "40", "month": "1", "year": "1948"}).status_code == 400
    refused = send_date(survey, RIGHT)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert_friendly_429(body)
    assert refused.headers["Cache-Control"] == "no-store"
    assert "Traceback" not in body
    # Showing the form is not limited.
    assert survey.client.get("/s/check").status_code == 200
