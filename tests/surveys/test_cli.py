"""`proms link MRN`: a new link to the patient's open questionnaire, for staff on the phone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from proms.admin.models import Enrollment, Patient
from proms.admin.services import withdraw_enrollment
from proms.auth.models import AuditEvent
from proms.db import db, utcnow
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.surveys import links
from proms.surveys.models import AccessToken
from tests.helpers import World, add_patient
from tests.surveys.helpers import PATIENT_DETAILS, assessment_of

MRN = PATIENT_DETAILS["mrn"]
BASE = "https://proms.example.org"
LINK_RE = re.compile(rf"^{re.escape(BASE)}/s/([A-Za-z0-9_-]{{43}})$")


@pytest.fixture
def public_url(app: Flask) -> str:
    app.config["PUBLIC_BASE_URL"] = BASE + "/"  # a trailing slash is not doubled
    return BASE


def tokens() -> list[AccessToken]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AccessToken)))


def test_prints_a_new_link_to_the_open_assessment(
    runner: FlaskCliRunner, public_url: str, baseline: Assessment, client: FlaskClient
) -> None:
    result = runner.invoke(args=["link", MRN])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert "\n" not in line
    match = LINK_RE.match(line)
    assert match, line
    raw = match.group(1)
    (token,) = tokens()
    assert token.assessment_id == baseline.id
    assert token.token_hash == links.hash_token(raw)
    assert token.expires_at <= baseline.closes_at
    # The link works.
    page = client.get(f"/s/{raw}")
    assert page.status_code == 200
    assert "35 questions" in page.get_data(as_text=True)


def test_every_run_prints_a_different_link(
    runner: FlaskCliRunner, public_url: str, baseline: Assessment
) -> None:
    first = runner.invoke(args=["link", MRN]).output
    second = runner.invoke(args=["link", MRN]).output
    assert first != second
    assert len(tokens()) == 2


def test_the_link_is_audited_without_the_token(
    runner: FlaskCliRunner, public_url: str, baseline: Assessment, patient: Patient
) -> None:
    raw = LINK_RE.match(runner.invoke(args=["link", MRN]).output.strip()).group(1)  # type: ignore[union-attr]
    db.session.expire_all()
    (event,) = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "link.created")
    ).all()
    assert event.patient_id == patient.id
    assert event.clinic_id == patient.clinic_id
    assert event.detail["assessment_id"] == baseline.id
    assert raw not in repr(event.detail)


def test_an_unknown_mrn_is_a_clear_error(runner: FlaskCliRunner, world: World) -> None:
    result = runner.invoke(args=["link", "NOPE-1"])
    assert result.exit_code == 1
    assert "No patient with MRN NOPE-1." in result.output
    assert tokens() == []


def test_a_patient_without_an_open_questionnaire_is_a_clear_error(
    runner: FlaskCliRunner, patient: Patient
) -> None:
    result = runner.invoke(args=["link", MRN])
    assert result.exit_code == 1
    assert f"Patient {MRN} has no questionnaire open today." in result.output
    assert tokens() == []


@pytest.mark.parametrize("situation", ["not-yet-open", "completed", "withdrawn", "closed"])
def test_no_link_when_nothing_is_open(
    situation: str,
    runner: FlaskCliRunner,
    patient: Patient,
    enroll: Callable[..., Enrollment],
) -> None:
    if situation == "not-yet-open":
        enroll(patient, 30)  # the baseline opens in 16 days
    else:
        enrollment = enroll(patient, 3)
        baseline = assessment_of(enrollment, "baseline")
        if situation == "completed":
            baseline.status = AssessmentStatus.COMPLETED
            baseline.completed_at = utcnow()
        elif situation == "withdrawn":
            withdraw_enrollment(db.session, enrollment, now=utcnow(), reason="test")
        else:
            now = utcnow()
            baseline.opens_at = now - dt.timedelta(days=5)
            baseline.due_at = now - dt.timedelta(days=2)
            baseline.closes_at = now - dt.timedelta(days=1)
        db.session.commit()
    result = runner.invoke(args=["link", MRN])
    assert result.exit_code == 1
    assert "has no questionnaire open today" in result.output
    assert tokens() == []


def test_an_mrn_in_several_clinics_is_ambiguous_until_the_clinic_is_given(
    runner: FlaskCliRunner, public_url: str, world: World, baseline: Assessment
) -> None:
    add_patient(world.clinic_b, MRN)
    db.session.commit()
    ambiguous = runner.invoke(args=["link", MRN])
    assert ambiguous.exit_code == 1
    assert f"MRN {MRN} exists in several clinics" in ambiguous.output
    assert "--clinic" in ambiguous.output
    assert re.search(r"\ba or b\b", ambiguous.output)
    assert tokens() == []

    chosen = runner.invoke(args=["link", MRN, "--clinic", "a"])
    assert chosen.exit_code == 0, chosen.output
    assert LINK_RE.match(chosen.output.strip())
    (token,) = tokens()
    assert token.assessment_id == baseline.id

    other = runner.invoke(args=["link", MRN, "--clinic", "b"])
    assert other.exit_code == 1
    assert "no questionnaire open today" in other.output


def test_a_clinic_without_that_mrn_is_a_clear_error(
    runner: FlaskCliRunner, baseline: Assessment
) -> None:
    result = runner.invoke(args=["link", MRN, "--clinic", "b"])
    assert result.exit_code == 1
    assert f"No patient with MRN {MRN} at b." in result.output


def test_production_refuses_a_link_to_summary_wording(
    app: Flask, runner: FlaskCliRunner, public_url: str, baseline: Assessment
) -> None:
    app.config["ENV"] = "production"
    result = runner.invoke(args=["link", MRN])
    assert result.exit_code == 1
    assert "official wording" in result.output
    assert "Traceback" not in result.output
    assert tokens() == []


def test_the_printed_link_is_never_logged(
    caplog: pytest.LogCaptureFixture, runner: FlaskCliRunner, baseline: Assessment
) -> None:
    caplog.set_level("DEBUG")
    output = runner.invoke(args=["link", MRN]).output.strip()
    raw = output.rsplit("/", 1)[-1]
    assert raw not in caplog.text


def test_production_without_a_public_address_makes_no_link(
    app: Flask, runner: FlaskCliRunner, baseline: Assessment
) -> None:
    app.config.update(ENV="production", PUBLIC_BASE_URL="")
    result = runner.invoke(args=["link", MRN])
    assert result.exit_code == 1
    assert "PUBLIC_BASE_URL" in result.output
    assert "Traceback" not in result.output
    assert tokens() == []
    db.session.expire_all()
    assert db.session.scalars(sa.select(AuditEvent)).all() == []
