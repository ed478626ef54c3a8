"""Coordinators create a link to a patient's open questionnaire from the patient page."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from proms.admin.services import enroll_patient
from proms.auth.models import AuditEvent, Role
from proms.db import db, utcnow
from proms.surveys.links import LinkState, check_token, find_token
from tests.helpers import World, csrf_token, patient_today


def open_baseline(world: World):  # type: ignore[no-untyped-def]
    patient = world.patients_a[0]
    anchor_on = patient_today(patient) + dt.timedelta(days=3)
    enroll_patient(db.session, patient, world.protocol_a, anchor_on)
    db.session.commit()
    return patient


def test_a_coordinator_creates_a_link_shown_once(staff_client, world: World) -> None:
    patient = open_baseline(world)
    client = staff_client(world.user("a", Role.COORDINATOR))
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Create a link" in page
    response = client.post(
        f"/patients/{patient.id}/link",
        data={"csrf_token": csrf_token(client, f"/patients/{patient.id}")},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    url = re.search(r"<code[^>]*>(http://[^<]+)</code>", body).group(1)
    assert '<svg role="img" aria-label="QR code of the patient link"' in body
    token = url.rsplit("/", 1)[1]
    assert check_token(find_token(db.session, token), utcnow()).state is LinkState.OK
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "link.created"))
    assert (event.patient_id, event.actor_id) == (patient.id, world.user("a", Role.COORDINATOR).id)
    assert token not in str(event.detail)


def test_a_clinician_has_no_button_and_is_refused(staff_client, world: World) -> None:
    patient = open_baseline(world)
    client = staff_client(world.user("a", Role.CLINICIAN))
    assert "Create a link" not in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    token = csrf_token(client, f"/patients/{patient.id}")
    assert (
        client.post(f"/patients/{patient.id}/link", data={"csrf_token": token}).status_code == 403
    )


def test_no_open_questionnaire_says_so(staff_client, world: World) -> None:
    patient = world.patients_a[1]
    client = staff_client(world.user("a", Role.ADMIN))
    assert "No questionnaire is open today" in client.get(f"/patients/{patient.id}").get_data(
        as_text=True
    )
    token = csrf_token(client, f"/patients/{patient.id}")
    response = client.post(
        f"/patients/{patient.id}/link", data={"csrf_token": token}, follow_redirects=True
    )
    assert "no questionnaire open today" in response.get_data(as_text=True)


def test_the_link_post_needs_csrf(staff_client, world: World) -> None:
    patient = open_baseline(world)
    client = staff_client(world.user("a", Role.COORDINATOR))
    assert client.post(f"/patients/{patient.id}/link").status_code == 400
