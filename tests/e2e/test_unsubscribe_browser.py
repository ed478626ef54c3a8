"""The unsubscribe page of an email in a real browser, at a phone's width and a desktop's.

A patient opens the link from an email, reads one question and presses one button, then reads
how to start again; in English and in Spanish. Each page fits the screen, axe-core finds
nothing serious, and each is photographed as unsubscribe-<page>-<language>-<phone|desktop>.png
under artifacts/screenshots/. Once more with JavaScript off: the page needs none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pytest
from playwright.sync_api import Browser, expect

from proms.admin.models import Channel, Patient
from proms.admin.services import create_clinic
from proms.db import db, utcnow
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus
from tests.e2e.helpers import LiveServer, Visit
from tests.helpers import add_patient

SCREENSHOT_PREFIX = "unsubscribe"

TEXTS = {
    "en": {
        "ask": "Stop messages from Riverside Pain and Spine Clinic?",
        "button": "Stop messages",
        "done": "You will get no more messages",
        "again": "To get messages again, call Riverside Pain and Spine Clinic:",
    },
    "es": {
        "ask": "¿Dejar de recibir mensajes de Riverside Pain and Spine Clinic?",
        "button": "Detener los mensajes",
        "done": "No recibirá más mensajes",
        "again": "Para volver a recibir mensajes, llame a Riverside Pain and Spine Clinic:",
    },
}


def seed(language: str) -> tuple[Patient, str]:
    """A patient with a sent email whose unsubscribe link is the returned token."""
    clinic = create_clinic(
        db.session,
        slug="riverside",
        # A long name: it must wrap on a phone, in the heading and the header.
        name="Riverside Pain and Spine Clinic",
        time_zone="America/New_York",
        contact_phone="+12165550100",
        contact_email="painclinic@riverside.example.org",
    )
    patient = add_patient(clinic, "U1", given_name="Maria Guadalupe", language=language)
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        Notification(
            idempotency_key="test:unsubscribe",
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
    return patient, raw


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_patient_stops_messages(visit: Visit, language: str) -> None:
    patient, raw = seed(language)
    texts = TEXTS[language]
    page = visit.page
    page.goto(f"{visit.live.url}/u/{raw}")
    expect(visit.heading()).to_have_text(texts["ask"])
    visit.look(f"ask-{language}")
    db.session.commit()  # end the test's read transaction: see what the server stores next
    db.session.refresh(patient)
    assert patient.opted_out_at is None, "opening the page changes nothing"

    page.get_by_role("button", name=texts["button"]).click()
    expect(visit.heading()).to_have_text(texts["done"])
    expect(page.get_by_text(texts["again"])).to_be_visible()
    expect(page.get_by_role("link", name="(216) 555-0100")).to_have_attribute(
        "href", "tel:+12165550100"
    )
    visit.look(f"done-{language}")
    db.session.commit()
    db.session.refresh(patient)
    assert patient.opted_out_at is not None
    # Reloading the confirmation posts nothing again and shows the same page.
    page.reload()
    expect(visit.heading()).to_have_text(texts["done"])
    visit.done()
    assert not visit.live.foreign_requests()


def test_the_page_works_without_javascript(live_server: LiveServer, browser: Browser) -> None:
    patient, raw = seed("en")
    context = live_server.new_context(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/u/{raw}")
    page.get_by_role("button", name="Stop messages").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You will get no more messages")
    db.session.refresh(patient)
    assert patient.opted_out_at is not None
