"""Patient survey fixtures: an enrolled patient, links, and a browser that answers questions.

The patient belongs to world.clinic_a and follows world.protocol_a (the bundled ketamine
course). Her anchor date is three days from today in her time zone, so the baseline window
(14 days before the anchor to the end of the anchor day) is open now. Tests that need another
time point either enroll with another anchor or set an assessment's window in the database.

The browser, the patient's details and the other helpers are in tests/surveys/helpers.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask

from proms.admin.models import Enrollment, Patient
from proms.admin.services import enroll_patient
from proms.db import db, utcnow
from proms.scheduling.models import Assessment
from proms.surveys.links import mint_token
from tests.helpers import World, add_patient, patient_today
from tests.surveys.helpers import (
    BIRTH_ON,
    PATIENT_DETAILS,
    PATIENT_ZONE,
    Survey,
    assessment_of,
)


@pytest.fixture
def patient(world: World) -> Patient:
    patient = add_patient(
        world.clinic_a,
        PATIENT_DETAILS["mrn"],
        given_name=PATIENT_DETAILS["given_name"],
        family_name=PATIENT_DETAILS["family_name"],
        email=PATIENT_DETAILS["email"],
        phone=PATIENT_DETAILS["phone"],
        birth_on=BIRTH_ON,
        time_zone=PATIENT_ZONE,
    )
    db.session.commit()
    return patient


@pytest.fixture
def enroll(world: World) -> Callable[..., Enrollment]:
    """Enroll a patient of clinic A on protocol A with an anchor `days` from her today."""

    def factory(patient: Patient, days: int = 3) -> Enrollment:
        enrollment = enroll_patient(
            db.session, patient, world.protocol_a, patient_today(patient) + dt.timedelta(days=days)
        )
        db.session.commit()
        return enrollment

    return factory


@pytest.fixture
def enrollment(patient: Patient, enroll: Callable[..., Enrollment]) -> Enrollment:
    """Anchor in three days: the baseline window is open now."""
    return enroll(patient, 3)


@pytest.fixture
def baseline(enrollment: Enrollment) -> Assessment:
    assessment = assessment_of(enrollment, "baseline")
    assert assessment.is_open(utcnow())
    return assessment


@pytest.fixture
def mint(app: Flask) -> Callable[..., str]:
    """A new link to an assessment (as the dispatcher or `proms link` makes them)."""

    def factory(
        assessment: Assessment,
        *,
        now: dt.datetime | None = None,
        max_age: dt.timedelta | None = None,
    ) -> str:
        raw = mint_token(
            db.session,
            assessment,
            now=now or utcnow(),
            max_age=max_age
            if max_age is not None
            else dt.timedelta(days=app.config["SURVEY_LINK_MAX_AGE_DAYS"]),
        )
        db.session.commit()
        return raw

    return factory


@pytest.fixture
def link(baseline: Assessment, mint: Callable[..., str]) -> str:
    """A fresh link to the open baseline assessment."""
    return mint(baseline)


@pytest.fixture
def browser(app: Flask) -> Callable[[str], Survey]:
    """A new patient browser (its own cookies) on a link."""

    def factory(token: str, flask_app: Flask | None = None) -> Survey:
        return Survey((flask_app or app).test_client(), token)

    return factory


@pytest.fixture
def survey(browser: Callable[[str], Survey], link: str) -> Survey:
    return browser(link)
