"""The unsubscribe link of an email (`/u/<token>`): opening it changes nothing; the button (with
its CSRF token) or a mail client's RFC 8058 one-click post stops every message; anything else,
or a wrong token, changes nothing. The pages show the clinic and the first name, nothing more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from proms.admin.models import Channel, Enrollment, Patient
from proms.auth.models import AuditEvent, Role
from proms.db import db, utcnow
from proms.errors import CSRF_MESSAGE
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus
from proms.scheduling.planning import opt_out
from proms.surveys.unsubscribe import EMAIL_LINK_REASON
from tests.helpers import World
from tests.surveys.helpers import PATIENT_DETAILS, csrf_of, path_of

URLENCODED = "application/x-www-form-urlencoded"
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def token(patient: Patient, enrollment: Enrollment) -> str:
    """The raw token of a sent email's unsubscribe link (as the dispatcher makes it)."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        Notification(
            idempotency_key=f"test:{secrets.token_hex(8)}",
            patient_id=patient.id,
            kind=NotificationKind.INVITE,
            channel=Channel.EMAIL,
            send_after=now - dt.timedelta(hours=1),
            status=NotificationStatus.SENT,
            sent_at=now - dt.timedelta(minutes=30),
            attempts=1,
            unsubscribe_hash=hashlib.sha256(raw.encode()).digest(),
        )
    )
    db.session.commit()
    return raw


def pending(patient: Patient) -> int:
    return len(
        db.session.scalars(
            select(Notification.id).where(
                Notification.patient_id == patient.id,
                Notification.status == NotificationStatus.PENDING,
            )
        ).all()
    )


def opted_out(patient: Patient) -> bool:
    db.session.refresh(patient)
    return patient.opted_out_at is not None


def audit(patient: Patient) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id)))


def assert_private(response: TestResponse) -> None:
    """Nothing about the patient but the first name; never stored by a cache."""
    page = response.get_data(as_text=True)
    for key in ("family_name", "mrn", "email", "phone", "birth_year"):
        assert PATIENT_DETAILS[key] not in page, key
    assert response.headers["Cache-Control"] == "no-store"
    assert 'name="robots" content="noindex, nofollow"' in page


# Opening the link --------------------------------------------------------------------------


def test_opening_the_link_asks_and_changes_nothing(
    client: FlaskClient, patient: Patient, token: str
) -> None:
    before = pending(patient)
    for _ in range(3):  # a scanner, a preview, the patient
        response = client.get(f"/u/{token}")
        assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Stop messages from Clinic A?" in page
    assert "We will stop sending emails and text messages to Zelda." in page
    assert csrf_of(response)
    assert f'action="/u/{token}"' in page
    assert_private(response)
    assert not opted_out(patient)
    assert pending(patient) == before > 0
    assert audit(patient) == []


def test_the_page_speaks_the_patients_language(
    client: FlaskClient, patient: Patient, token: str
) -> None:
    patient.language = "es"
    db.session.commit()
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert '<html lang="es">' in page
    assert "¿Dejar de recibir mensajes de Clinic A?" in page
    assert "Detener los mensajes" in page


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_wrong_token_is_a_friendly_404(client: FlaskClient, token: str, method: str) -> None:
    wrong = secrets.token_urlsafe(32)
    if method == "GET":
        response = client.get(f"/u/{wrong}", headers={"Accept-Language": "es"})
    else:
        response = client.post(
            f"/u/{wrong}",
            data=ONE_CLICK,
            content_type=URLENCODED,
            headers={"Accept-Language": "es"},
        )
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "No pudimos encontrar este enlace" in page  # the survey's own "unknown link" page
    assert '<html lang="es">' in page
    assert 'class="patient"' in page


def test_a_survey_link_is_not_an_unsubscribe_link(
    client: FlaskClient, patient: Patient, link: str
) -> None:
    assert client.get(f"/u/{link}").status_code == 404
    assert client.post(f"/u/{link}", data=ONE_CLICK, content_type=URLENCODED).status_code == 404
    assert not opted_out(patient)


# The button --------------------------------------------------------------------------------


def test_the_button_stops_every_message(
    client: FlaskClient, patient: Patient, token: str, world: World
) -> None:
    csrf = csrf_of(client.get(f"/u/{token}"))
    response = client.post(f"/u/{token}", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert path_of(response) == f"/u/{token}"
    assert opted_out(patient)
    assert patient.opt_out_reason == EMAIL_LINK_REASON
    assert patient.opted_out_by_id is None
    assert pending(patient) == 0
    [event] = audit(patient)
    assert event.action == "patient.opted_out"
    assert event.actor_email == "patient:email-link"
    assert event.detail["via"] == "email"
    # The confirmation, from now on, and how to start again.
    done = client.get(f"/u/{token}")
    page = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "You will get no more messages" in page
    assert "To get messages again, call Clinic A:" in page
    assert 'href="tel:+12165550100"' in page
    assert "<form" not in page
    assert_private(done)


def test_the_button_needs_its_csrf_token(client: FlaskClient, patient: Patient, token: str) -> None:
    client.get(f"/u/{token}")  # the session exists; the token is not sent
    for data in ({}, {"csrf_token": "forged"}, {"confirm": "1"}):
        response = client.post(f"/u/{token}", data=data)
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert str(CSRF_MESSAGE) in page
        assert 'class="patient"' in page
    assert not opted_out(patient)
    assert audit(patient) == []


def test_the_button_in_spanish(client: FlaskClient, patient: Patient, token: str) -> None:
    patient.language = "es"
    db.session.commit()
    csrf = csrf_of(client.get(f"/u/{token}"))
    response = client.post(f"/u/{token}", data={"csrf_token": csrf}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "No recibirá más mensajes" in page
    assert "Para volver a recibir mensajes, llame a Clinic A:" in page


# A mail client's one-click -----------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_works_without_cookies_or_csrf(
    app: Flask, patient: Patient, token: str, encoding: str
) -> None:
    mail_client = app.test_client(use_cookies=False)
    if encoding == "urlencoded":
        response = mail_client.post(f"/u/{token}", data=ONE_CLICK, content_type=URLENCODED)
    else:
        response = mail_client.post(
            f"/u/{token}",
            data={"List-Unsubscribe": "One-Click"},
            content_type="multipart/form-data",
        )
    assert response.status_code == 200
    assert "You will get no more messages" in response.get_data(as_text=True)
    assert opted_out(patient)
    assert patient.opt_out_reason == EMAIL_LINK_REASON
    assert pending(patient) == 0
    assert [e.action for e in audit(patient)] == ["patient.opted_out"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("List-Unsubscribe=One-Click&more=1", URLENCODED),
        ("List-Unsubscribe=one-click", URLENCODED),
        ("List-Unsubscribe=One-Click&List-Unsubscribe=One-Click", URLENCODED),
        (ONE_CLICK, "text/plain"),
        ('{"List-Unsubscribe": "One-Click"}', "application/json"),
        ("", URLENCODED),
    ],
)
def test_only_the_exact_one_click_body_skips_csrf(
    app: Flask, patient: Patient, token: str, body: str, content_type: str
) -> None:
    response = app.test_client(use_cookies=False).post(
        f"/u/{token}", data=body, content_type=content_type
    )
    # A body that is not a form at all is refused before it is read (proms.security).
    assert response.status_code == (400 if content_type == URLENCODED else 415)
    assert not opted_out(patient)


def test_unsubscribing_again_shows_the_same_confirmation(
    app: Flask, patient: Patient, token: str
) -> None:
    mail_client = app.test_client(use_cookies=False)
    mail_client.post(f"/u/{token}", data=ONE_CLICK, content_type=URLENCODED)
    first = patient.opted_out_at if opted_out(patient) else None
    again = mail_client.post(f"/u/{token}", data=ONE_CLICK, content_type=URLENCODED)
    assert again.status_code == 200
    assert "You will get no more messages" in again.get_data(as_text=True)
    assert opted_out(patient)
    assert patient.opted_out_at == first
    assert len(audit(patient)) == 1


def test_a_coordinators_opt_out_stands(
    app: Flask, patient: Patient, token: str, world: World
) -> None:
    coordinator = world.user("a", Role.COORDINATOR)
    opt_out(db.session, patient, now=utcnow(), reason="asked by phone", by=coordinator)
    db.session.commit()
    client = app.test_client()
    assert "You will get no more messages" in client.get(f"/u/{token}").get_data(as_text=True)
    response = client.post(f"/u/{token}", data=ONE_CLICK, content_type=URLENCODED)
    assert response.status_code == 200
    db.session.refresh(patient)
    assert patient.opt_out_reason == "asked by phone"
    assert audit(patient) == []


@pytest.mark.parametrize("content_type", [URLENCODED, "multipart/form-data"])
def test_a_large_body_is_refused(
    app: Flask, patient: Patient, token: str, content_type: str
) -> None:
    client = app.test_client(use_cookies=False)
    if content_type == URLENCODED:
        response = client.post(
            f"/u/{token}", data=ONE_CLICK + "&x=" + "y" * 20_000, content_type=URLENCODED
        )
    else:
        response = client.post(
            f"/u/{token}",
            data={"List-Unsubscribe": "One-Click", "x": "y" * 20_000},
            content_type=content_type,
        )
    assert response.status_code == 413
    assert not opted_out(patient)


def test_other_methods_are_refused(client: FlaskClient, patient: Patient, token: str) -> None:
    for method in ("PUT", "DELETE"):
        assert client.open(f"/u/{token}", method=method).status_code == 405
    assert not opted_out(patient)
