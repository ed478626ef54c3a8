"""The objects the fuzzed pages are about, on top of the shared `world`.

Clinic A's admin drives every staff page (an admin holds every role, so every staff route lets
it through); patient A0 of clinic A is on a course whose baseline is open, with an urgent alert,
a survey link, an expired link (the page that offers a new one), an unsubscribe link, a text
message Twilio reported on, and a password link for clinic A's clinician.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select

from proms.admin.models import Channel, Enrollment, Patient
from proms.admin.services import enroll_patient
from proms.auth.models import Role, StaffUser
from proms.auth.tokens import Purpose
from proms.auth.tokens import mint as mint_password_link
from proms.db import db, utcnow
from proms.outcomes.models import Alert, AlertKind, AlertTier
from proms.scheduling.models import (
    Assessment,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.surveys.links import mint_token
from tests.helpers import World, patient_today

PATIENT_MOBILE = "+12165550123"


@dataclass
class FuzzWorld:
    world: World
    admin: StaffUser
    patient: Patient
    enrollment: Enrollment
    baseline: Assessment
    alert: Alert
    notification: Notification
    sms: Notification
    survey_token: str
    expired_token: str
    unsubscribe_token: str
    password_token: str

    def url_values(self) -> dict[str, object]:
        """What each URL argument of the URL map is filled with (tests/fuzz/targets.py)."""
        return {
            "patient_id": self.patient.id,
            "enrollment_id": self.enrollment.id,
            "assessment_id": self.baseline.id,
            "protocol_id": self.world.protocol_a.id,
            "clinic_id": self.world.clinic_a.id,
            "user_id": self.world.user("a", Role.CLINICIAN).id,
            "notification_id": self.notification.id,
            "alert_id": self.alert.id,
            "day": 1,
            "number": 1,
            "part": 1,
            "session_id": 1,
        }


def build_fuzz_world(app: Flask, world: World) -> FuzzWorld:
    now = utcnow()
    patient = world.patients_a[0]
    patient.phone = PATIENT_MOBILE
    patient.birth_on = dt.date(1948, 11, 9)
    # The date-of-birth page is part of the survey: this protocol asks for it.
    world.protocol_a.requires_identity_check = True
    enrollment = enroll_patient(
        db.session, patient, world.protocol_a, patient_today(patient) + dt.timedelta(days=3)
    )
    db.session.flush()
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    assert baseline.is_open(now)
    alert = Alert(
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        assessment_id=baseline.id,
        kind=AlertKind.SEVERITY,
        tier=AlertTier.URGENT,
        rule="severity:peg:total>=8",
        timepoint_key=baseline.timepoint.key,
        detail={"instrument": "peg", "scale": "total", "value": 9.0, "unit": "points"},
    )
    db.session.add(alert)
    notification = db.session.scalars(
        select(Notification)
        .where(Notification.assessment_id == baseline.id)
        .order_by(Notification.id)
    ).first()
    assert notification is not None
    unsubscribe_token = secrets.token_urlsafe(32)
    db.session.add(
        Notification(
            idempotency_key=f"fuzz:{secrets.token_hex(8)}",
            patient_id=patient.id,
            kind=NotificationKind.INVITE,
            channel=Channel.EMAIL,
            send_after=now - dt.timedelta(hours=1),
            status=NotificationStatus.SENT,
            sent_at=now - dt.timedelta(minutes=30),
            attempts=1,
            unsubscribe_hash=hashlib.sha256(unsubscribe_token.encode()).digest(),
        )
    )
    sms = Notification(
        idempotency_key=f"fuzz:{secrets.token_hex(8)}",
        patient_id=patient.id,
        kind=NotificationKind.INVITE,
        channel=Channel.SMS,
        send_after=now - dt.timedelta(minutes=5),
        status=NotificationStatus.SENT,
        sent_at=now - dt.timedelta(minutes=1),
        attempts=1,
        provider_message_id="SM" + secrets.token_hex(16),
    )
    db.session.add(sms)
    max_age = dt.timedelta(days=app.config["SURVEY_LINK_MAX_AGE_DAYS"])
    survey_token = mint_token(db.session, baseline, now=now, max_age=max_age)
    expired_token = mint_token(
        db.session, baseline, now=now - dt.timedelta(hours=2), max_age=dt.timedelta(hours=1)
    )
    password_token = mint_password_link(
        db.session, world.user("a", Role.CLINICIAN), purpose=Purpose.RESET, now=now
    )
    db.session.commit()
    return FuzzWorld(
        world=world,
        admin=world.user("a", Role.ADMIN),
        patient=patient,
        enrollment=enrollment,
        baseline=baseline,
        alert=alert,
        notification=notification,
        sms=sms,
        survey_token=survey_token,
        expired_token=expired_token,
        unsubscribe_token=unsubscribe_token,
        password_token=password_token,
    )
