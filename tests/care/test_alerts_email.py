"""The care team's alert email, end to end through a real SMTP server on loopback: the
scheduler tells a clinic's mailbox of new urgent alerts once, with a link and nothing else; and
the admin settings that turn it on (with the thank-you page's text)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.admin.models import Clinic
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db
from proms.outcomes.models import Alert, AlertTier
from proms.scheduling.sweeps import ALERT_EMAIL_SUBJECT
from tests.care.alerting import add_alert, course
from tests.helpers import World, add_patient, csrf_token
from tests.notify.smtp_server import SmtpServer

BASE = "https://proms.example.org"
MAILBOX = "care-team@clinic-a.example.org"
NOW = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
# What the email must never carry (besides the patient's own name and MRN).
HEALTH_WORDS = ("alert", "urgent", "pain", "score", "severe", "side effect", "worse", "promis")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def live(app: Flask, smtp: SmtpServer) -> Flask:
    app.config.update(
        PUBLIC_BASE_URL=BASE,
        MESSAGE_TRANSPORT="live",
        MAIL_FROM="proms <no-reply@clinic-a.example.org>",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,
        SMTP_SECURITY="none",
    )
    return app


def sweep(app: Flask, now: dt.datetime = NOW) -> str:
    result = app.test_cli_runner().invoke(args=["scheduler", "--once", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output
    assert "failed\n" not in result.output, result.output
    return next(line for line in result.output.splitlines() if line.startswith("alerts:"))


def notified(*alerts: Alert) -> list[dt.datetime | None]:
    db.session.commit()  # a new transaction: see what the scheduler committed
    return [db.session.get(Alert, alert.id).notified_at for alert in alerts]


def test_new_urgent_alerts_are_emailed_once_with_a_link_and_nothing_else(
    live: Flask, world: World, smtp: SmtpServer
) -> None:
    world.clinic_a.alert_email = MAILBOX
    patient = add_patient(world.clinic_a, "MRN-77123", given_name="Zelda", family_name="Quux")
    points = course(world, patient)
    urgent = [add_alert(points[0], AlertTier.URGENT, 0), add_alert(points[1], AlertTier.URGENT, 1)]
    later = add_alert(points[2], AlertTier.NEXT_VISIT, 2)
    elsewhere = add_alert(course(world, world.patients_b[0])[0], AlertTier.URGENT, 0)  # no mailbox
    db.session.commit()

    assert sweep(live) == "alerts: emails=1 alerts=2 retry=0 not_sent=0"
    [email] = smtp.messages
    assert email.rcpt_tos == [MAILBOX]
    message = email.message
    assert message["Subject"] == ALERT_EMAIL_SUBJECT
    body = message.get_content()
    assert f"{BASE}/alerts\n" in body
    said = (message["Subject"] + body.replace(f"{BASE}/alerts", "")).lower()
    for word in (*HEALTH_WORDS, "zelda", "quux", "77123", "clinic a"):
        assert word not in said, word
    assert notified(*urgent) == [NOW, NOW]
    assert notified(later, elsewhere) == [None, None]

    assert (
        sweep(live, NOW + dt.timedelta(minutes=1)) == "alerts: emails=0 alerts=0 retry=0 not_sent=0"
    )
    assert len(smtp.messages) == 1  # each alert once
    add_alert(points[3], AlertTier.URGENT, 3)
    db.session.commit()
    assert sweep(live, NOW + dt.timedelta(minutes=2)).startswith("alerts: emails=1 alerts=1 ")
    assert len(smtp.messages) == 2


def test_a_refused_email_is_tried_again_at_the_next_sweep(
    live: Flask, world: World, smtp: SmtpServer
) -> None:
    world.clinic_a.alert_email = MAILBOX
    alert = add_alert(course(world, world.patients_a[0])[0], AlertTier.URGENT, 0)
    db.session.commit()
    smtp.refuse("RCPT", "451 4.3.0 Mailbox busy, try again later")
    assert sweep(live) == "alerts: emails=0 alerts=0 retry=1 not_sent=0"
    assert notified(alert) == [None]  # it never went: not marked as told
    later = NOW + dt.timedelta(minutes=1)
    assert sweep(live, later) == "alerts: emails=1 alerts=1 retry=0 not_sent=0"
    assert notified(alert) == [later]
    assert len(smtp.messages) == 1


SETTINGS = {
    "name": "Clinic A",
    "time_zone": "America/New_York",
    "contact_phone": "(216) 555-0100",
    "quiet_hours_start": "21:00",
    "quiet_hours_end": "08:00",
    "baseline_reuse_days": "30",
    "alert_email": "Care-Team@Clinic-A.example.org",
    "next_steps_en": "A nurse reads your answers within two working days.",
    "next_steps_es": "Una enfermera lee sus respuestas en dos días hábiles.",
}


def test_an_admin_sets_the_alert_mailbox_and_the_thank_you_text(
    world: World, staff_client: Callable[[StaffUser], FlaskClient]
) -> None:
    admin = staff_client(world.user("a", Role.ADMIN))
    path = f"/clinics/{world.clinic_a.id}/edit"
    assert 'name="alert_email"' in admin.get(path).get_data(as_text=True)
    saved = admin.post(path, data={**SETTINGS, "csrf_token": csrf_token(admin, path)})
    assert saved.status_code == 303
    db.session.expire_all()
    clinic = db.session.get(Clinic, world.clinic_a.id)
    assert clinic.alert_email == MAILBOX
    assert clinic.next_steps("es") == SETTINGS["next_steps_es"]
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clinic.updated"))
    assert event.detail["before"]["alert_email"] is None
    assert event.detail["after"]["alert_email"] == MAILBOX
    page = admin.get(f"/clinics/{world.clinic_a.id}").get_data(as_text=True)
    assert MAILBOX in page
    assert SETTINGS["next_steps_en"] in page

    bad = admin.post(
        path,
        data={**SETTINGS, "alert_email": "not an address", "csrf_token": csrf_token(admin, path)},
    )
    assert bad.status_code == 400
    assert "Enter a valid email address" in bad.get_data(as_text=True)
    cleared = admin.post(
        path, data={**SETTINGS, "alert_email": "", "csrf_token": csrf_token(admin, path)}
    )
    assert cleared.status_code == 303
    db.session.expire_all()
    assert db.session.get(Clinic, world.clinic_a.id).alert_email is None
