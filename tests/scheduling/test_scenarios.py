"""The scheduler end to end with its real channels: email to an SMTP server on loopback, texts to
a local server that speaks Twilio's Messages API, Twilio's callbacks posted back signed.

Each thing that should stop or move messages stops or moves exactly the right ones: the patient
answering (through the real survey, from the link in the email), withdrawal, an opt-out on the
web and a STOP by text, a moved anchor date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.admin import enrollment as enrollments
from proms.admin.models import Channel, Enrollment, Patient
from proms.db import db, utcnow
from proms.notify.sms import sign
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus
from tests.helpers import World, add_patient
from tests.notify.fake_twilio import FakeTwilio
from tests.notify.smtp_server import SmtpServer
from tests.surveys.helpers import BASELINE_CODES, Survey

BASE = "https://proms.example.org"
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def live(app: Flask, world: World, smtp: SmtpServer, twilio: FakeTwilio) -> Flask:
    """The app sending for real, to the servers on loopback; no quiet hours (tests run at any
    hour, on the real clock where the survey is answered)."""
    app.config.update(
        PUBLIC_BASE_URL=BASE,
        MESSAGE_TRANSPORT="live",
        MAIL_FROM="Clinic A <no-reply@clinic-a.example.org>",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,
        SMTP_SECURITY="none",
        TWILIO_BASE_URL=twilio.base_url,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM=twilio.from_number,
    )
    world.clinic_a.quiet_hours_start = world.clinic_a.quiet_hours_end = dt.time(0, 0)
    db.session.commit()
    return app


def sweep(app: Flask, now: dt.datetime | None = None) -> str:
    args = ["scheduler", "--once"] + (["--now", now.isoformat()] if now else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "failed\n" not in result.output, result.output
    return result.output


def open_course(patient: Patient, world: World, now: dt.datetime) -> Enrollment:
    """A course whose baseline window opened yesterday: its invitation is due now."""
    today = now.astimezone(ZoneInfo(patient.time_zone)).date()
    course = enrollments.enroll(
        db.session, patient, world.protocol_a, today + dt.timedelta(days=13), now=now
    )
    db.session.commit()
    return course


def outbox(patient: Patient) -> list[Notification]:
    db.session.commit()  # a new transaction: see what the scheduler committed
    return list(
        db.session.scalars(
            sa.select(Notification)
            .where(Notification.patient_id == patient.id)
            .order_by(Notification.send_after, Notification.id)
        )
    )


def sent(patient: Patient) -> list[Notification]:
    return [row for row in outbox(patient) if row.status is NotificationStatus.SENT]


def texter(world: World) -> Patient:
    patient = add_patient(
        world.clinic_a, "TXT", phone="+12125550199", preferred_channel=Channel.SMS, language="es"
    )
    db.session.commit()
    return patient


def post_signed(client: FlaskClient, twilio: FakeTwilio, path: str, form: dict[str, str]) -> int:
    signature = sign(twilio.auth_token, f"{BASE}{path}", form)
    response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code


def test_a_text_goes_through_twilio_and_its_delivery_is_recorded(
    live: Flask, world: World, twilio: FakeTwilio, client: FlaskClient
) -> None:
    patient = texter(world)
    open_course(patient, world, utcnow())
    output = sweep(live)
    assert "sent=1" in output
    assert "sms_segments=2" in output  # Spanish does not fit one GSM-7 segment
    [message] = twilio.messages
    assert message.to == "+12125550199"
    assert f"{BASE}/s/" in message.body
    assert "PARAR" in message.body  # in Spanish: how to stop
    assert message.status_callback == f"{BASE}/hooks/twilio/status"
    [row] = sent(patient)
    assert row.provider_message_id == message.sid
    callback = twilio.status_callback(message.sid, "delivered")
    status = post_signed(client, twilio, "/hooks/twilio/status", callback.params)
    assert status in (200, 204)
    [row] = sent(patient)
    assert row.delivery_status == "delivered"
    assert row.delivered_at is not None


def test_stop_by_text_stops_that_patient_and_nobody_else(
    live: Flask, world: World, twilio: FakeTwilio, smtp: SmtpServer, client: FlaskClient
) -> None:
    patient = texter(world)
    other = world.patients_a[0]
    now = utcnow()
    open_course(patient, world, now)
    open_course(other, world, now)
    sweep(live, now)
    assert len(sent(patient)) == len(sent(other)) == 1
    reply = {
        "From": patient.phone or "",
        "To": twilio.from_number,
        "Body": "parar",
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": twilio.account_sid,
    }
    assert post_signed(client, twilio, "/hooks/twilio/inbound", reply) == 200
    db.session.commit()
    db.session.refresh(patient)
    assert patient.opted_out_at is not None
    later = now + dt.timedelta(days=6)  # both reminders of the baseline are due by then
    sweep(live, later)
    assert len(sent(patient)) == 1
    assert {
        r.cancel_reason for r in outbox(patient) if r.status is NotificationStatus.CANCELLED
    } == {"opted_out"}
    assert len(sent(other)) == 2  # the latest reminder (the earlier one superseded)
    assert len(twilio.messages) == 1
    assert len(smtp.messages) == 2


def test_answering_from_the_emailed_link_stops_that_questionnaires_reminders(
    live: Flask, world: World, smtp: SmtpServer, app: Flask
) -> None:
    patient = world.patients_a[0]
    now = utcnow()
    course = open_course(patient, world, now)
    sweep(live, now)
    [email] = smtp.messages
    text = email.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token = re.search(r"/s/([A-Za-z0-9_-]{43})", text)
    assert token, text
    survey = Survey(app.test_client(), token.group(1))
    survey.started()
    survey.answer_all(BASELINE_CODES, read_pages=False)
    assert survey.submit().status_code == 303
    sweep(live, now + dt.timedelta(days=6))
    assert len(smtp.messages) == 1
    baseline = course.assessments[0].id
    left = [
        r
        for r in outbox(patient)
        if r.assessment_id == baseline and r.kind is NotificationKind.REMINDER
    ]
    assert {r.cancel_reason for r in left} == {"completed"}
    # The next time point's messages are untouched.
    assert any(
        r.status is NotificationStatus.PENDING and r.assessment_id != baseline
        for r in outbox(patient)
    )


def test_withdrawal_and_a_web_opt_out_stop_what_is_pending(
    live: Flask, world: World, smtp: SmtpServer
) -> None:
    withdrawn, opted_out, carries_on = world.patients_a
    now = utcnow()
    course = open_course(withdrawn, world, now)
    for patient in (opted_out, carries_on):
        open_course(patient, world, now)
    enrollments.withdraw(db.session, course, now=now, reason="moved away")
    enrollments.opt_out(db.session, opted_out, now=now, reason="asked by phone", by=None)
    db.session.commit()
    sweep(live, now)
    assert [m.rcpt_tos for m in smtp.messages] == [[carries_on.email]]
    assert sent(withdrawn) == sent(opted_out) == []
    assert {r.cancel_reason for r in outbox(withdrawn)} == {"withdrawn"}
    assert {r.cancel_reason for r in outbox(opted_out)} == {"opted_out"}


def test_a_moved_anchor_sends_the_new_times_only(
    live: Flask, world: World, smtp: SmtpServer
) -> None:
    patient = world.patients_a[0]
    now = utcnow()
    course = open_course(patient, world, now)
    today = now.astimezone(NEW_YORK).date()
    enrollments.change_anchor(db.session, course, today + dt.timedelta(days=40), now=now)
    db.session.commit()
    sweep(live, now)
    assert smtp.messages == []  # the baseline window now opens in 26 days
    rows = outbox(patient)
    assert {r.cancel_reason for r in rows if r.status is NotificationStatus.CANCELLED} == {
        "rescheduled"
    }
    first = min(r.send_after for r in rows if r.status is NotificationStatus.PENDING)
    sweep(live, first)
    [email] = smtp.messages
    assert email.rcpt_tos == [patient.email]
    [row] = sent(patient)
    assert row.sent_at == first
    assert first.astimezone(NEW_YORK).date() == today + dt.timedelta(days=26)
