"""Patient links: what /s/<token> shows in every state, and that opening a link changes nothing.

Every state gets a friendly page with the right status (unknown 404; expired and withdrawn 410;
completed and not-yet-open 200) that says what happened and what to do, with the clinic's
contact details, and nothing about the patient. An expired link whose questionnaire is still
open offers "send me a new link". Tokens are 256 random bits stored only as their SHA-256, and
never reach a log line.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient

from proms.admin.models import Channel, Enrollment, Patient
from proms.admin.services import withdraw_enrollment
from proms.db import Base, db, utcnow
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.surveys import links
from proms.surveys.models import AccessToken
from tests.helpers import World
from tests.surveys.helpers import (
    CLINIC_PHONE,
    PATIENT_DETAILS,
    PATIENT_ZONE,
    Survey,
    assert_friendly_429,
    assessment_of,
    csrf_of,
    snapshot_rows,
)

Mint = Callable[..., str]

HEADINGS = {
    "unknown": "We could not find this link",
    "expired": "This link has expired",
    "completed": "Thank you, this questionnaire is done",
    "withdrawn": "This questionnaire is no longer needed",
    "not_yet_open": "This questionnaire is not open yet",
}
NEW_LINK_BUTTON = "Send me a new link"
TIME_HAS_PASSED = "The time to answer this questionnaire has passed"


# Link states ---------------------------------------------------------------------------------


def _close_window(assessment: Assessment) -> None:
    now = utcnow()
    assessment.opens_at = now - dt.timedelta(days=10)
    assessment.due_at = now - dt.timedelta(days=3)
    assessment.closes_at = now - dt.timedelta(hours=1)


def _unknown(enrollment: Enrollment, mint: Mint) -> str:
    return secrets.token_urlsafe(32)


def _window_closed(enrollment: Enrollment, mint: Mint) -> str:
    baseline = assessment_of(enrollment, "baseline")
    raw = mint(baseline)
    _close_window(baseline)
    db.session.commit()
    return raw


def _swept_expired(enrollment: Enrollment, mint: Mint) -> str:
    baseline = assessment_of(enrollment, "baseline")
    raw = mint(baseline)
    _close_window(baseline)
    baseline.status = AssessmentStatus.EXPIRED
    db.session.commit()
    return raw


def _link_too_old(enrollment: Enrollment, mint: Mint) -> str:
    # Made 40 days ago with the 30-day maximum: expired ten days ago; the window is open.
    return mint(assessment_of(enrollment, "baseline"), now=utcnow() - dt.timedelta(days=40))


def _link_revoked(enrollment: Enrollment, mint: Mint) -> str:
    raw = mint(assessment_of(enrollment, "baseline"))
    token = links.find_token(db.session, raw)
    assert token is not None
    token.revoked_at = utcnow()
    db.session.commit()
    return raw


def _completed(enrollment: Enrollment, mint: Mint) -> str:
    baseline = assessment_of(enrollment, "baseline")
    raw = mint(baseline)
    baseline.status = AssessmentStatus.COMPLETED
    baseline.completed_at = utcnow()
    db.session.commit()
    return raw


def _withdrawn(enrollment: Enrollment, mint: Mint) -> str:
    raw = mint(assessment_of(enrollment, "baseline"))
    withdraw_enrollment(db.session, enrollment, now=utcnow(), reason="moved away")
    db.session.commit()
    return raw


def _opted_out(enrollment: Enrollment, mint: Mint) -> str:
    raw = mint(assessment_of(enrollment, "baseline"))
    enrollment.patient.opted_out_at = utcnow()
    db.session.commit()
    return raw


def _cancelled(enrollment: Enrollment, mint: Mint) -> str:
    baseline = assessment_of(enrollment, "baseline")
    raw = mint(baseline)
    baseline.status = AssessmentStatus.CANCELLED
    db.session.commit()
    return raw


def _not_yet_open(enrollment: Enrollment, mint: Mint) -> str:
    return mint(assessment_of(enrollment, "month_1"))


@dataclass(frozen=True)
class State:
    setup: Callable[[Enrollment, Mint], str]
    status: int
    heading: str
    says: tuple[str, ...]
    offers_new_link: bool = False
    shows_clinic_contact: bool = True


STATES = {
    "unknown": State(
        _unknown,
        404,
        HEADINGS["unknown"],
        ("opened the whole link", "contact the clinic that sent it"),
        shows_clinic_contact=False,
    ),
    "window-closed": State(
        _window_closed, 410, HEADINGS["expired"], (TIME_HAS_PASSED, "contact the clinic")
    ),
    "swept-expired": State(
        _swept_expired, 410, HEADINGS["expired"], (TIME_HAS_PASSED, "contact the clinic")
    ),
    "link-too-old": State(
        _link_too_old,
        410,
        HEADINGS["expired"],
        ("The questionnaire is still open", NEW_LINK_BUTTON),
        offers_new_link=True,
    ),
    "link-revoked": State(
        _link_revoked,
        410,
        HEADINGS["expired"],
        ("The questionnaire is still open", NEW_LINK_BUTTON),
        offers_new_link=True,
    ),
    "completed": State(
        _completed, 200, HEADINGS["completed"], ("There is nothing more to do with this link",)
    ),
    "withdrawn": State(
        _withdrawn, 410, HEADINGS["withdrawn"], ("There is nothing to answer", "contact the clinic")
    ),
    "opted-out": State(
        _opted_out, 410, HEADINGS["withdrawn"], ("There is nothing to answer", "contact the clinic")
    ),
    "cancelled": State(
        _cancelled, 410, HEADINGS["withdrawn"], ("There is nothing to answer", "contact the clinic")
    ),
    "not-yet-open": State(
        _not_yet_open, 200, HEADINGS["not_yet_open"], ("Please open this link again then",)
    ),
}


def assert_reveals_nothing_about_the_patient(body: str) -> None:
    for name, value in PATIENT_DETAILS.items():
        assert value not in body, f"the page shows the patient's {name}"


@pytest.mark.parametrize("name", STATES)
def test_every_link_state_has_a_friendly_page(
    name: str, client: FlaskClient, enrollment: Enrollment, mint: Mint
) -> None:
    state = STATES[name]
    raw = state.setup(enrollment, mint)
    response = client.get(f"/s/{raw}")
    body = response.get_data(as_text=True)
    assert response.status_code == state.status
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert f"<h1>{state.heading}</h1>" in body
    for phrase in state.says:
        assert phrase in body
    assert (NEW_LINK_BUTTON in body) is state.offers_new_link
    if state.shows_clinic_contact:
        assert "Clinic A" in body
        assert f'href="tel:{CLINIC_PHONE}"' in body
    else:
        assert CLINIC_PHONE not in body
    assert_reveals_nothing_about_the_patient(body)
    assert "Traceback" not in body


@pytest.mark.parametrize("name", STATES)
def test_opening_a_link_in_any_state_changes_nothing(
    name: str, client: FlaskClient, enrollment: Enrollment, mint: Mint
) -> None:
    raw = STATES[name].setup(enrollment, mint)
    before = snapshot_rows()
    for _ in range(2):
        client.get(f"/s/{raw}")
        client.head(f"/s/{raw}")
    assert snapshot_rows() == before


@pytest.mark.parametrize("name", [n for n in STATES if n != "unknown"])
def test_start_on_a_link_that_cannot_be_used_shows_the_same_page_and_starts_nothing(
    name: str, client: FlaskClient, enrollment: Enrollment, mint: Mint, app: Flask
) -> None:
    state = STATES[name]
    raw = state.setup(enrollment, mint)
    page = client.get(f"/s/{raw}")
    token = csrf_of(page) or csrf_of(client.get("/login"))
    before = snapshot_rows()
    response = client.post(f"/s/{raw}", data={"csrf_token": token})
    assert response.status_code == state.status
    assert f"<h1>{state.heading}</h1>" in response.get_data(as_text=True)
    assert client.get_cookie("__Host-proms-survey") is None
    assert snapshot_rows() == before


def test_start_with_an_unknown_link_is_a_404_page(client: FlaskClient, link: str) -> None:
    token = csrf_of(client.get(f"/s/{link}"))
    before = snapshot_rows()
    response = client.post(f"/s/{secrets.token_urlsafe(32)}", data={"csrf_token": token})
    assert response.status_code == 404
    assert HEADINGS["unknown"] in response.get_data(as_text=True)
    assert snapshot_rows() == before


def test_a_link_that_is_not_yet_open_says_on_which_local_day_it_opens(
    client: FlaskClient, enrollment: Enrollment, mint: Mint
) -> None:
    month_1 = assessment_of(enrollment, "month_1")
    raw = mint(month_1)
    body = client.get(f"/s/{raw}").get_data(as_text=True)
    opens_on = month_1.opens_at.astimezone(ZoneInfo(PATIENT_ZONE)).date()
    assert f"It opens on {format_date(opens_on, 'long', locale='en')}." in body


@pytest.mark.parametrize(
    "raw",
    [
        "x",
        "a" * 43,
        "A" * 101,  # longer than any token: not even looked up
        "%FF%FE",  # percent-encoded bytes that are not UTF-8
        "%C3%28",
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
    ],
)
def test_malformed_links_are_unknown_not_errors(raw: str, client: FlaskClient, link: str) -> None:
    response = client.get(f"/s/{raw}")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert HEADINGS["unknown"] in body or "Not found" in body
    assert "Traceback" not in body


def test_the_welcome_page_names_the_clinic_and_says_how_many_questions_and_how_long(
    client: FlaskClient, link: str
) -> None:
    response = client.get(f"/s/{link}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Clinic A asks how you have been" in body
    # Baseline: PI 4a, PF 4a, SD 4a (4 each), PASS-20 (20) and PEG (3); 8 seconds a question.
    assert "35 questions, about 5 minutes." in body
    assert f'action="/s/{link}"' in body
    assert ">Start</button>" in body
    assert csrf_of(response)
    assert f'href="tel:{CLINIC_PHONE}"' in body
    assert_reveals_nothing_about_the_patient(body)


def test_the_welcome_page_of_the_end_of_course_counts_the_side_effect_checklist(
    client: FlaskClient, patient: Patient, enroll: Callable[..., Enrollment], mint: Mint
) -> None:
    enrollment = enroll(patient, -5)
    body = client.get(f"/s/{mint(assessment_of(enrollment, 'end_of_course'))}").get_data(
        as_text=True
    )
    assert "41 questions, about 5 minutes." in body


# Tokens --------------------------------------------------------------------------------------


def test_a_token_is_256_random_bits_stored_only_as_its_sha256(
    enrollment: Enrollment, mint: Mint, baseline: Assessment
) -> None:
    raw = mint(baseline)
    assert len(base64.urlsafe_b64decode(raw + "=")) == 32
    stored = db.session.scalars(sa.select(AccessToken)).one()
    assert stored.token_hash == hashlib.sha256(raw.encode()).digest()
    assert stored.assessment_id == baseline.id
    # Nowhere in the database: not in any column of any table.
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert raw not in repr(tuple(row)), f"the raw token is stored in {table.name}"
                assert raw.encode() not in b"".join(
                    v for v in row if isinstance(v, bytes | bytearray | memoryview)
                )


def test_each_message_gets_its_own_token(baseline: Assessment, mint: Mint) -> None:
    tokens = {mint(baseline) for _ in range(5)}
    assert len(tokens) == 5
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessToken)) == 5


def test_a_link_lasts_until_the_window_closes_but_never_longer_than_the_maximum(
    app: Flask, baseline: Assessment, mint: Mint
) -> None:
    now = utcnow()
    raw = mint(baseline, now=now)
    token = links.find_token(db.session, raw)
    assert token is not None
    assert token.expires_at == min(
        now + dt.timedelta(days=app.config["SURVEY_LINK_MAX_AGE_DAYS"]), baseline.closes_at
    )
    short = links.find_token(db.session, mint(baseline, now=now, max_age=dt.timedelta(days=1)))
    assert short is not None
    assert short.expires_at == now + dt.timedelta(days=1)


def test_every_token_of_an_assessment_works_while_its_window_is_open(
    browser: Callable[[str], Survey], baseline: Assessment, mint: Mint
) -> None:
    first, second = mint(baseline), mint(baseline)
    for raw in (first, second, first):
        survey = browser(raw)
        assert survey.open().status_code == 200
        assert survey.start().status_code == 303


# Tokens never reach the logs -----------------------------------------------------------------


def test_tokens_never_reach_the_logs_only_a_hash_prefix_does(
    caplog: pytest.LogCaptureFixture,
    browser: Callable[[str], Survey],
    client: FlaskClient,
    enrollment: Enrollment,
    baseline: Assessment,
    mint: Mint,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = mint(baseline)
    old = mint(baseline, now=utcnow() - dt.timedelta(days=40))
    unknown = secrets.token_urlsafe(32)

    survey = browser(raw).started()
    survey.answer(1, 3)
    survey.skip(2)
    survey.review()
    client.get(f"/s/{unknown}")
    client.post(f"/s/{unknown}", data={"csrf_token": "nope"})
    expired = browser(old)
    expired.open()
    expired.client.post(f"/s/{old}/new-link", data={"csrf_token": expired.csrf})
    # What the development server and gunicorn write for each request goes through the filter.
    for name in ("werkzeug", "gunicorn.access", "proms"):
        logging.getLogger(name).info('127.0.0.1 - - "GET /s/%s HTTP/1.1" 200 -', raw)
    logging.getLogger("werkzeug").info("GET /s/%s/new-link", old)

    assert caplog.records, "nothing was logged: the test would prove nothing"
    for token in (raw, old, unknown):
        assert token not in caplog.text
        for record in caplog.records:
            assert token not in record.getMessage()
    assert links.token_hint(raw) in caplog.text
    assert "/s/<redacted>" in caplog.text


# Rate limits ---------------------------------------------------------------------------------


def test_looking_up_links_is_rate_limited_with_a_friendly_page(
    make_app: Callable[..., Flask], world: World, link: str
) -> None:
    limited = make_app(LINK_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    # Guessing links: three lookups of made-up tokens, then the fourth is refused.
    for _ in range(3):
        assert client.get(f"/s/{secrets.token_urlsafe(32)}").status_code == 404
    refused = client.get(f"/s/{link}")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert_friendly_429(body)
    assert "Retry-After" in refused.headers
    assert refused.headers["Cache-Control"] == "no-store"
    assert "Traceback" not in body
    assert link not in body


def test_pressing_start_is_rate_limited_too(
    make_app: Callable[..., Flask], world: World, link: str
) -> None:
    limited = make_app(LINK_RATE_LIMIT="3 per minute")
    survey = Survey(limited.test_client(), link)
    survey.open()
    for _ in range(3):
        survey.client.post(f"/s/{link}", data={"csrf_token": survey.csrf})
    refused = survey.client.post(f"/s/{link}", data={"csrf_token": survey.csrf})
    assert refused.status_code == 429
    assert_friendly_429(refused.get_data(as_text=True))


# New links -----------------------------------------------------------------------------------


@pytest.fixture
def old_link(baseline: Assessment, mint: Mint) -> str:
    """A link that expired while its questionnaire is still open."""
    return mint(baseline, now=utcnow() - dt.timedelta(days=40))


def new_link_rows() -> list[Notification]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(Notification).where(Notification.kind == NotificationKind.NEW_LINK)
        )
    )


def test_an_expired_link_can_ask_for_a_new_one(
    browser: Callable[[str], Survey], old_link: str, patient: Patient, baseline: Assessment
) -> None:
    survey = browser(old_link)
    page = survey.open()
    assert page.status_code == 410
    assert f'action="/s/{old_link}/new-link"' in page.get_data(as_text=True)

    response = survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": survey.csrf})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "A new link is on its way" in body
    assert f'href="tel:{CLINIC_PHONE}"' in body
    assert_reveals_nothing_about_the_patient(body)

    (queued,) = new_link_rows()
    assert queued.patient_id == patient.id
    assert queued.assessment_id == baseline.id
    assert queued.status is NotificationStatus.PENDING
    assert queued.channel is Channel.EMAIL
    assert queued.send_after <= utcnow()


def test_asking_again_within_the_hour_queues_nothing_more(
    browser: Callable[[str], Survey], old_link: str
) -> None:
    survey = browser(old_link)
    survey.open()
    for _ in range(3):
        response = survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": survey.csrf})
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert "A new link is on its way" in body
        assert_reveals_nothing_about_the_patient(body)
    assert len(new_link_rows()) == 1


def test_one_new_link_per_hour_even_across_the_top_of_the_hour(
    monkeypatch: pytest.MonkeyPatch, browser: Callable[[str], Survey], old_link: str
) -> None:
    """A double click at 10:59:50 and 11:00:10 is one request, not two messages."""
    top = utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    survey = browser(old_link)
    survey.open()
    for moment in (top - dt.timedelta(seconds=10), top + dt.timedelta(seconds=10)):
        monkeypatch.setattr("proms.surveys.views.utcnow", lambda moment=moment: moment)
        response = survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": survey.csrf})
        assert response.status_code == 200
    assert len(new_link_rows()) == 1


def test_a_new_link_can_be_asked_for_again_after_an_hour(
    monkeypatch: pytest.MonkeyPatch, browser: Callable[[str], Survey], old_link: str
) -> None:
    now = utcnow()
    survey = browser(old_link)
    survey.open()
    for moment in (now, now + dt.timedelta(minutes=61)):
        monkeypatch.setattr("proms.surveys.views.utcnow", lambda moment=moment: moment)
        survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": survey.csrf})
    assert len(new_link_rows()) == 2


def test_asking_for_a_new_link_needs_the_csrf_token(
    browser: Callable[[str], Survey], old_link: str
) -> None:
    survey = browser(old_link)
    survey.open()
    for data in ({}, {"csrf_token": "forged"}):
        response = survey.client.post(f"/s/{old_link}/new-link", data=data)
        assert response.status_code == 400
        assert "This form has expired or was not sent from this site" in response.get_data(
            as_text=True
        )
    assert new_link_rows() == []


def test_an_sms_patient_gets_the_new_link_by_sms(
    browser: Callable[[str], Survey], old_link: str, patient: Patient
) -> None:
    patient.preferred_channel = Channel.SMS
    db.session.commit()
    survey = browser(old_link)
    survey.open()
    survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": survey.csrf})
    (queued,) = new_link_rows()
    assert queued.channel is Channel.SMS


@pytest.mark.parametrize("channel", [Channel.NONE, None])
def test_without_contact_details_no_new_link_is_offered_and_the_page_says_to_call(
    channel: Channel | None, browser: Callable[[str], Survey], old_link: str, patient: Patient
) -> None:
    if channel is None:
        patient.email = None
        patient.phone = None
    else:
        patient.preferred_channel = channel
    db.session.commit()
    survey = browser(old_link)
    page = survey.open()
    body = page.get_data(as_text=True)
    assert page.status_code == 410
    assert NEW_LINK_BUTTON not in body
    # The questionnaire is still open: only the link is too old. The page must not say the
    # time to answer has passed; it says to ask the clinic for a new link.
    assert TIME_HAS_PASSED not in body
    assert "contact the clinic" in body
    assert f'href="tel:{CLINIC_PHONE}"' in body

    token = csrf_of(survey.client.get("/login"))
    refused = survey.client.post(f"/s/{old_link}/new-link", data={"csrf_token": token})
    assert refused.status_code == 410
    assert new_link_rows() == []


@pytest.mark.parametrize("name", ["unknown", "window-closed", "completed", "withdrawn"])
def test_no_new_link_for_links_that_cannot_be_renewed(
    name: str, client: FlaskClient, enrollment: Enrollment, mint: Mint
) -> None:
    state = STATES[name]
    raw = state.setup(enrollment, mint)
    token = csrf_of(client.get("/login"))
    response = client.post(f"/s/{raw}/new-link", data={"csrf_token": token})
    assert response.status_code == state.status
    assert f"<h1>{state.heading}</h1>" in response.get_data(as_text=True)
    assert new_link_rows() == []


def test_a_new_link_request_for_a_link_that_still_works_queues_nothing_and_says_so_plainly(
    client: FlaskClient, link: str
) -> None:
    token = csrf_of(client.get(f"/s/{link}"))
    response = client.post(f"/s/{link}/new-link", data={"csrf_token": token})
    body = response.get_data(as_text=True)
    assert new_link_rows() == []
    # Not "we could not find this link": the link exists and works.
    assert HEADINGS["unknown"] not in body
    assert response.status_code in (200, 303)
