"""Error pages after a failed transaction: still friendly, still with every security header.

A request that fails inside a database transaction (an IntegrityError on flush) leaves the
session needing a rollback; the error page reads the database too (the signed-in staff member in
the page header, the patient's clinic), so it must roll back first. If even that page cannot be
rendered (the database is gone), a plain page goes out instead of the server's bare one. Every
error response carries the security headers and `Cache-Control: no-store`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from proms.admin.models import Clinic, Patient
from proms.auth.models import Role
from proms.db import db
from proms.security import SECURITY_HEADERS
from tests.helpers import World, login

FRIENDLY_500 = "Something went wrong on our side"
FRIENDLY_404_PATIENT = "Please open the link from your message again"
INTERNALS = ("Traceback", "IntegrityError", "PendingRollbackError", "UNIQUE", "duplicate key")


class Unreadable:
    """Stands in for a row that can no longer be read: every attribute raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"cannot read {name}: the database went away")


def add_duplicate_patient(patient_id: int) -> None:
    """Insert a second patient with an existing MRN in the same clinic: the flush fails."""
    existing = db.session.get(Patient, patient_id)
    assert existing is not None
    db.session.add(
        Patient(
            clinic_id=existing.clinic_id,
            mrn=existing.mrn,
            given_name="Duplicate",
            family_name="Patient",
            birth_on=dt.date(1970, 1, 1),
            time_zone="America/New_York",
        )
    )
    db.session.flush()
    raise AssertionError("the flush should have failed")  # pragma: no cover


def add_failing_routes(app: Flask, world: World) -> None:
    """Test-only routes that fail the way a real view can, on staff and patient pages."""
    patient_id = world.patients_a[0].id
    clinic_id = world.clinic_a.id

    @app.get("/_test/failed-flush")
    def staff_failed_flush() -> str:
        # The staff member is loaded lazily by the page header, after the failure.
        add_duplicate_patient(patient_id)
        return "unreachable"

    @app.get("/s/_test-failed-flush")
    def patient_failed_flush() -> str:
        # As a survey view does: the clinic is on g for the page, a page was saved (commit
        # expires it), then the next write fails.
        g.survey_clinic = db.session.get(Clinic, clinic_id)
        db.session.commit()
        add_duplicate_patient(patient_id)
        return "unreachable"

    @app.get("/_test/unrenderable")
    def staff_unrenderable() -> str:
        g._login_user = Unreadable()  # what the page header reads: current_user
        add_duplicate_patient(patient_id)
        return "unreachable"

    @app.get("/s/_test-unrenderable")
    def patient_unrenderable() -> str:
        g.survey_clinic = Unreadable()  # what the patient layout reads: the clinic
        add_duplicate_patient(patient_id)
        return "unreachable"


@pytest.fixture
def failing_app(make_app: Callable[..., Flask], world: World) -> Flask:
    """An app that handles errors as in production: no exception reaches the test client."""
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    add_failing_routes(app, world)
    return app


@pytest.fixture
def staff(failing_app: Flask, world: World) -> FlaskClient:
    client = failing_app.test_client()
    assert login(client, world.user("a", Role.CLINICIAN).email).status_code == 302
    return client


def assert_protected(response: TestResponse) -> None:
    """The security headers and no-store, whatever produced the page."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Cache-Control"] == "no-store"


def assert_friendly_500(response: TestResponse) -> str:
    body = response.get_data(as_text=True)
    assert response.status_code == 500, body
    assert response.mimetype == "text/html"
    assert_protected(response)
    assert FRIENDLY_500 in body
    for word in INTERNALS:
        assert word not in body
    return body


def test_a_failed_flush_on_a_staff_page_gets_the_friendly_500(staff: FlaskClient) -> None:
    body = assert_friendly_500(staff.get("/_test/failed-flush"))
    # The full staff layout, rendered after the rollback: it reads the signed-in user.
    assert "Sign out" in body
    assert 'class="patient"' not in body


def test_a_failed_flush_on_a_patient_page_gets_the_patient_layout(failing_app: Flask) -> None:
    body = assert_friendly_500(failing_app.test_client().get("/s/_test-failed-flush"))
    assert 'class="patient"' in body
    assert "Clinic A" in body  # the clinic, read again after the rollback
    assert "+12165550100" in body  # and its contact details
    assert "Sign out" not in body


def test_the_session_is_usable_again_after_the_error_page(staff: FlaskClient) -> None:
    assert staff.get("/_test/failed-flush").status_code == 500
    # Nothing of the failed request was kept, and the next request works as usual.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 6
    assert staff.get("/patients").status_code == 200


@pytest.mark.parametrize(
    ("path", "patient"), [("/_test/unrenderable", False), ("/s/_test-unrenderable", True)]
)
def test_when_the_page_itself_fails_a_plain_page_goes_out(
    failing_app: Flask, path: str, patient: bool, caplog: pytest.LogCaptureFixture
) -> None:
    body = assert_friendly_500(failing_app.test_client().get(path))
    assert "<title>" in body
    assert "Go to the start page" not in body  # not the rendered template: the plain page
    assert ('class="patient"' in body) is patient
    assert "cannot read" not in body
    assert any("could not be rendered" in r.getMessage() for r in caplog.records)


@pytest.fixture
def broken_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that is gone: even the rollback fails."""

    def rollback(self: sa.orm.Session) -> None:
        raise sa.exc.OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    monkeypatch.setattr(sa.orm.Session, "rollback", rollback)


@pytest.mark.parametrize("path", ["/_test/failed-flush", "/s/_test-failed-flush"])
def test_a_database_that_cannot_roll_back_still_gets_a_page(
    staff: FlaskClient, path: str, broken_rollback: None
) -> None:
    body = assert_friendly_500(staff.get(path))
    assert ('class="patient"' in body) is path.startswith("/s/")


@pytest.mark.parametrize(
    ("method", "path", "status", "headers"),
    [
        ("GET", "/no-such-page", 404, {}),
        ("GET", "/s/not-a-real-link", 404, {}),
        ("GET", "/static/no-such-file.css", 404, {}),
        ("DELETE", "/login", 405, {}),
        ("POST", "/login", 400, {}),  # no CSRF token
        ("GET", "/no-such-page", 404, {"Accept": "application/json"}),
    ],
)
def test_every_error_response_is_protected(
    failing_app: Flask, method: str, path: str, status: int, headers: dict[str, str]
) -> None:
    response = failing_app.test_client().open(path, method=method, headers=headers)
    assert response.status_code == status
    assert_protected(response)


def test_an_unknown_patient_link_gets_the_patient_wording(failing_app: Flask) -> None:
    response = failing_app.test_client().get("/s/not-a-real-link")
    assert response.status_code == 404
    assert 'class="patient"' in response.get_data(as_text=True)
