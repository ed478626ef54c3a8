"""Webhook fixtures: an app with Twilio's auth token and a public address, and patients who
share one mobile number across both clinics of the `world`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask

from proms.admin.models import Channel, Enrollment, Patient
from proms.admin.services import enroll_patient
from proms.db import db
from tests.helpers import World, add_patient, patient_today
from tests.webhooks.helpers import AUTH_TOKEN, PUBLIC_BASE_URL

MOBILE = "+12165550123"  # both records of the same person
OTHER_MOBILE = "+12165550177"  # someone else, in clinic A


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app(TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_BASE_URL=PUBLIC_BASE_URL)
    with application.app_context():
        yield application


@dataclass
class Texting:
    """One person with a record in each clinic (the same mobile), each on a course; and a
    neighbour in clinic A with another number."""

    in_a: Patient
    in_b: Patient
    neighbour: Patient
    courses: list[Enrollment]


@pytest.fixture
def texting(world: World) -> Texting:
    in_a = add_patient(
        world.clinic_a, "T1", given_name="Ana", phone=MOBILE, preferred_channel=Channel.SMS
    )
    in_b = add_patient(
        world.clinic_b, "T2", given_name="Ana", phone=MOBILE, preferred_channel=Channel.SMS
    )
    neighbour = add_patient(world.clinic_a, "T3", phone=OTHER_MOBILE, preferred_channel=Channel.SMS)
    courses = [
        enroll_patient(db.session, patient, protocol, patient_today(patient) + dt.timedelta(3))
        for patient, protocol in (
            (in_a, world.protocol_a),
            (in_b, world.protocol_b),
            (neighbour, world.protocol_a),
        )
    ]
    db.session.commit()
    return Texting(in_a, in_b, neighbour, courses)
