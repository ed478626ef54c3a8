"""Replies to our texts: STOP, START and HELP, in English and Spanish, signed by Twilio or refused.

Every request is signed as Twilio signs it, for the public URL (tests/webhooks/helpers.py). The
sender's number is matched against every clinic; only the keyword, as the whole text, acts.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.admin.models import Patient
from proms.auth.models import AuditEvent, Role
from proms.db import db, utcnow
from proms.notify.sms import sign
from proms.scheduling.models import Notification, NotificationStatus
from proms.scheduling.planning import opt_out
from proms.webhooks.services import TEXT_REPLY_REASON, Keyword, keyword_of
from tests.helpers import World
from tests.webhooks.conftest import MOBILE, OTHER_MOBILE, Texting
from tests.webhooks.helpers import (
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    URLENCODED,
    audit_actions,
    count,
    inbound,
    post_signed,
)

PATH = "/hooks/twilio/inbound"


def reply_to(client: FlaskClient, sender: str, body: str) -> str | None:
    """Text `body` from `sender`; the message our TwiML sends back (None for an empty one)."""
    response = post_signed(client, PATH, inbound(sender, body))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())  # noqa: S314 - our own answer, in a test
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


def pending(patient: Patient) -> int:
    return len(
        db.session.scalars(
            select(Notification).where(
                Notification.patient_id == patient.id,
                Notification.status == NotificationStatus.PENDING,
            )
        ).all()
    )


# Keywords ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.STOP),
        ("stop", Keyword.STOP),
        ("  Stop \n", Keyword.STOP),
        ("Stop.", Keyword.STOP),
        ("StopAll", Keyword.STOP),
        ("UNSUBSCRIBE", Keyword.STOP),
        ("cancel", Keyword.STOP),
        ("End", Keyword.STOP),
        ("quit", Keyword.STOP),
        ("PARAR", Keyword.STOP),
        ("¡Alto!", Keyword.STOP),
        ("baja", Keyword.STOP),
        ("Cancelar", Keyword.STOP),
        ("DETENER", Keyword.STOP),
        ("START", Keyword.START),
        ("yes", Keyword.START),
        ("Unstop", Keyword.START),
        ("comenzar", Keyword.START),
        ("INICIAR", Keyword.START),
        ("si", Keyword.START),
        ("Sí", Keyword.START),
        ("SÍ", Keyword.START),
        ("Si\u0301", Keyword.START),  # "Sí" written with a combining accent
        ("HELP", Keyword.HELP),
        ("info", Keyword.HELP),
        ("Ayuda", Keyword.HELP),
        ("stop please", None),
        ("please stop", None),
        ("Stopping", None),
        ("", None),
        ("I have had a bad week, my pain is 8/10", None),
        ("S T O P", None),
    ],
)
def test_the_whole_text_is_the_keyword(body: str, keyword: Keyword | None) -> None:
    assert keyword_of(body) is keyword


# STOP ----------------------------------------------------------------------------------------


def test_stop_opts_out_every_record_with_the_number(client: FlaskClient, texting: Texting) -> None:
    assert pending(texting.in_a)
    assert pending(texting.in_b)
    reply = reply_to(client, MOBILE, "STOP")
    assert reply == (
        "You will get no more messages from Clinic A and Clinic B. To get them again, reply START."
    )
    for patient in (texting.in_a, texting.in_b):
        db.session.refresh(patient)
        assert patient.opted_out_at is not None
        assert patient.opt_out_reason == TEXT_REPLY_REASON
        assert patient.opted_out_by_id is None
        assert pending(patient) == 0
        assert audit_actions(patient) == ["patient.opted_out"]
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.patient_id == texting.in_a.id)
    ).one()
    assert event.actor_id is None
    assert event.actor_email == "patient:text-message"
    assert event.detail["via"] == "sms"
    assert event.detail["after"]["opt_out_reason"] == TEXT_REPLY_REASON
    assert event.detail["messages"] > 0
    # Someone else in the same clinic is untouched.
    db.session.refresh(texting.neighbour)
    assert texting.neighbour.opted_out_at is None
    assert pending(texting.neighbour) > 0


@pytest.mark.parametrize("body", ["stop", " Quit ", "Unsubscribe.", "parar", "ALTO", "Baja!"])
def test_stop_in_any_spelling(client: FlaskClient, texting: Texting, body: str) -> None:
    assert reply_to(client, MOBILE, body) is not None
    db.session.refresh(texting.in_a)
    assert texting.in_a.opted_out_at is not None


def test_stop_answers_in_the_patients_language(client: FlaskClient, texting: Texting) -> None:
    texting.in_a.language = "es"
    db.session.commit()
    reply = reply_to(client, MOBILE, "PARAR")
    assert reply == (
        "Ya no recibirá mensajes de Clinic A y Clinic B. Para recibirlos de nuevo, responda START."
    )


def test_stop_again_confirms_and_changes_nothing(client: FlaskClient, texting: Texting) -> None:
    reply_to(client, MOBILE, "STOP")
    db.session.refresh(texting.in_a)
    first = texting.in_a.opted_out_at
    assert reply_to(client, MOBILE, "stop") is not None
    db.session.refresh(texting.in_a)
    assert texting.in_a.opted_out_at == first
    assert audit_actions(texting.in_a) == ["patient.opted_out"]


def test_stop_keeps_an_earlier_opt_out(client: FlaskClient, world: World, texting: Texting) -> None:
    """A record already opted out (here by a coordinator) keeps its reason; the other stops."""
    coordinator = world.user("a", Role.COORDINATOR)
    opt_out(db.session, texting.in_a, now=utcnow(), reason="asked by phone", by=coordinator)
    db.session.commit()
    reply_to(client, MOBILE, "STOP")
    db.session.refresh(texting.in_a)
    db.session.refresh(texting.in_b)
    assert texting.in_a.opt_out_reason == "asked by phone"
    assert texting.in_b.opt_out_reason == TEXT_REPLY_REASON


# START ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["START", "yes", "unstop", "Comenzar", "iniciar", "SI", "Sí"])
def test_start_restores_messages(client: FlaskClient, texting: Texting, body: str) -> None:
    reply_to(client, MOBILE, "STOP")
    reply = reply_to(client, MOBILE, body)
    assert reply == "You will get messages from Clinic A and Clinic B. To stop them, reply STOP."
    for patient in (texting.in_a, texting.in_b):
        db.session.refresh(patient)
        assert patient.opted_out_at is None
        assert patient.opt_out_reason is None
        assert pending(patient) > 0, "the windows still to come are planned again"
        assert audit_actions(patient) == ["patient.opted_out", "patient.opted_in"]


def test_start_in_spanish(client: FlaskClient, texting: Texting) -> None:
    texting.in_a.language = "es"
    db.session.commit()
    reply_to(client, MOBILE, "ALTO")
    reply = reply_to(client, MOBILE, "sí")
    assert (
        reply
        == "Recibirá mensajes de Clinic A y Clinic B. Para dejar de recibirlos, responda STOP."
    )
    db.session.refresh(texting.in_b)
    assert texting.in_b.opted_out_at is None


def test_start_does_not_undo_the_clinics_opt_out(
    client: FlaskClient, world: World, texting: Texting
) -> None:
    """A coordinator's opt-out stands; the reply says whom to call (with the clinic's number)."""
    coordinator = world.user("a", Role.COORDINATOR)
    opt_out(db.session, texting.in_a, now=utcnow(), reason="asked by phone", by=coordinator)
    db.session.commit()
    reply_to(client, MOBILE, "STOP")  # stops clinic B's messages too
    reply = reply_to(client, MOBILE, "START")
    assert reply == (
        "You will get messages from Clinic B. To stop them, reply STOP.\n"
        "To get messages from Clinic A again, please call (216) 555-0100."
    )
    db.session.refresh(texting.in_a)
    db.session.refresh(texting.in_b)
    assert texting.in_a.opt_out_reason == "asked by phone"
    assert texting.in_b.opted_out_at is None


def test_start_when_receiving_changes_nothing(client: FlaskClient, texting: Texting) -> None:
    before = pending(texting.in_a)
    assert reply_to(client, MOBILE, "START") is not None
    assert pending(texting.in_a) == before
    assert audit_actions(texting.in_a) == []


# HELP ----------------------------------------------------------------------------------------


def test_help_names_the_clinics_and_how_to_stop(client: FlaskClient, texting: Texting) -> None:
    reply = reply_to(client, MOBILE, "HELP")
    # Clinic B has no phone or email on file: its name alone.
    assert reply == (
        "Clinic A: call (216) 555-0100.\nClinic B\n"
        "Reply STOP to stop messages, START to get them again."
    )
    db.session.refresh(texting.in_a)
    assert texting.in_a.opted_out_at is None


def test_help_in_spanish(client: FlaskClient, world: World, texting: Texting) -> None:
    texting.in_a.language = "es"
    world.clinic_b.contact_email = "dolor@b.example.org"
    db.session.commit()
    reply = reply_to(client, MOBILE, "ayuda")
    assert reply == (
        "Clinic A: llame al (216) 555-0100.\nClinic B: escriba a dolor@b.example.org.\n"
        "Responda STOP para no recibir más mensajes, START para recibirlos de nuevo."
    )


def test_replies_are_escaped_xml(client: FlaskClient, world: World, texting: Texting) -> None:
    world.clinic_a.name = "Pain & Spine <East>"
    db.session.commit()
    response = post_signed(client, PATH, inbound(OTHER_MOBILE, "info"))
    assert b"Pain &amp; Spine &lt;East&gt;" in response.get_data()
    message = ET.fromstring(response.get_data()).find("Message")  # noqa: S314 - idem
    assert message is not None
    assert message.text is not None
    assert message.text.startswith("Pain & Spine <East>: call")


# Anything else, and strangers ----------------------------------------------------------------


@pytest.mark.parametrize("body", ["Thanks!", "stop please", "", "My pain is worse today"])
def test_other_texts_get_no_answer_and_change_nothing(
    client: FlaskClient, texting: Texting, body: str
) -> None:
    assert reply_to(client, MOBILE, body) is None
    db.session.refresh(texting.in_a)
    assert texting.in_a.opted_out_at is None
    assert count(AuditEvent) == 0


def test_an_unknown_number_gets_a_neutral_help_and_nothing_else(
    client: FlaskClient, texting: Texting
) -> None:
    stranger = "+13125550100"
    help_text = reply_to(client, stranger, "HELP")
    assert help_text == (
        "Automated messages from a clinic. Reply STOP to stop them. For help, contact the clinic "
        "that wrote to you."
    )
    assert "Clinic" not in help_text.replace("a clinic", "").replace("the clinic", "")
    assert reply_to(client, stranger, "STOP") is None
    assert reply_to(client, stranger, "START") is None
    assert reply_to(client, "whatsapp:" + MOBILE, "STOP") is None
    assert count(AuditEvent) == 0


# Refused requests ----------------------------------------------------------------------------


def _nothing_changed(texting: Texting) -> None:
    for patient in (texting.in_a, texting.in_b):
        db.session.refresh(patient)
        assert patient.opted_out_at is None
    assert count(AuditEvent) == 0


@pytest.mark.parametrize(
    "forgery",
    ["missing", "empty", "wrong token", "internal url", "another path", "body changed"],
)
def test_a_request_not_signed_by_twilio_is_refused(
    client: FlaskClient, texting: Texting, forgery: str
) -> None:
    params = inbound(MOBILE, "STOP")
    if forgery == "missing":
        response = client.post(PATH, data=params)
    elif forgery == "empty":
        response = post_signed(client, PATH, params, signature="")
    elif forgery == "wrong token":
        response = post_signed(client, PATH, params, token="b" * 32)
    elif forgery == "internal url":
        # Signed for the address this process sees, not the public one Twilio was given.
        response = post_signed(client, PATH, params, signed_url="http://localhost" + PATH)
    elif forgery == "another path":
        response = post_signed(
            client, PATH, params, signed_url=PUBLIC_BASE_URL + "/hooks/twilio/status"
        )
    else:
        signature = sign(AUTH_TOKEN, PUBLIC_BASE_URL + PATH, inbound(MOBILE, "HELP"))
        response = post_signed(client, PATH, params, signature=signature)
    assert response.status_code == 403
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Invalid signature.\n"
    _nothing_changed(texting)


def test_the_query_string_is_part_of_the_signed_url(client: FlaskClient, texting: Texting) -> None:
    params = inbound(MOBILE, "STOP")
    good = post_signed(client, PATH + "?clinic=a", params)
    assert good.status_code == 200
    bad = post_signed(
        client, PATH + "?clinic=b", params, signed_url=PUBLIC_BASE_URL + PATH + "?clinic=a"
    )
    assert bad.status_code == 403


def test_webhooks_are_off_without_an_auth_token(make_app, texting: Texting) -> None:  # type: ignore[no-untyped-def]
    off = make_app(TWILIO_AUTH_TOKEN="", PUBLIC_BASE_URL=PUBLIC_BASE_URL)
    response = post_signed(off.test_client(), PATH, inbound(MOBILE, "STOP"), token="")
    assert response.status_code == 404
    _nothing_changed(texting)


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("GET", None, 405),
        ("PUT", None, 405),
        ("POST", "missing From", 400),
        ("POST", "missing Body", 400),
        ("POST", "huge", 413),
        ("POST", "many fields", 413),
        ("POST", "not utf-8", 400),
    ],
)
def test_bad_requests_are_4xx(
    client: FlaskClient, texting: Texting, method: str, body: str | None, status: int
) -> None:
    if method != "POST":
        response = client.open(PATH, method=method)
    elif body == "missing From":
        params = inbound(MOBILE, "STOP")
        del params["From"]
        response = post_signed(client, PATH, params)
    elif body == "missing Body":
        params = inbound(MOBILE, "STOP")
        del params["Body"]
        response = post_signed(client, PATH, params)
    elif body == "huge":
        response = post_signed(client, PATH, inbound(MOBILE, "x" * 20_000))
    elif body == "many fields":
        params = inbound(MOBILE, "STOP", **{f"Extra{n}": "1" for n in range(60)})
        response = post_signed(client, PATH, params)
    else:
        response = client.post(
            PATH, data=b"From=%2B12165550123&Body=\xff\xfe", content_type=URLENCODED
        )
    assert response.status_code == status
    _nothing_changed(texting)


# Logs ----------------------------------------------------------------------------------------


def test_logs_hold_neither_the_number_nor_the_text(
    client: FlaskClient, texting: Texting, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "my pain is 9 out of 10 today"
    reply_to(client, MOBILE, secret)
    reply_to(client, MOBILE, "STOP")
    reply_to(client, MOBILE, "HELP")
    reply_to(client, "+13125550100", "HELP")
    client.post(PATH, data=inbound(MOBILE, "STOP"))  # refused: no signature
    assert "text reply stop" in caplog.text, "the keyword and counts are logged"
    assert "signature" in caplog.text
    digits = MOBILE.lstrip("+")
    for record in caplog.records:
        text = record.getMessage()
        assert digits[-7:] not in text, text
        assert "5550100" not in text, text
        assert secret not in text, text
        assert "pain" not in text.lower(), text


def test_the_app_needs_no_session_for_twilio(app: Flask, texting: Texting) -> None:
    """No cookie is set on Twilio's requests (nothing to keep between them)."""
    response = post_signed(app.test_client(), PATH, inbound(MOBILE, "HELP"))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
