"""Adding and editing patients, every field checked on the server; opting out and back in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from proms.admin import patients
from proms.admin.enrollment import enroll
from proms.admin.errors import AdminError
from proms.admin.models import Channel, Patient
from proms.auth.models import AuditEvent, Role
from proms.auth.services import grant
from proms.db import db, utcnow
from proms.scheduling.models import Notification, NotificationStatus
from tests.helpers import World, csrf_token, patient_today

GOOD = {
    "mrn": " 12345 ",
    "given_name": "Alma",
    "family_name": "Lopez",
    "birth_on": "1971-03-02",
    "email": "alma.lopez@example.org",
    "phone": "(216) 555-0142",
    "preferred_channel": "sms",
    "time_zone": "America/New_York",
    "language": "es",
}


def post(client, path: str, **fields: Any):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, path), **fields})


def add(client, **changes: Any):  # type: ignore[no-untyped-def]
    return post(client, "/patients/new", **{**GOOD, **changes})


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def by_mrn(mrn: str) -> Patient | None:
    return db.session.scalar(select(Patient).where(Patient.mrn == mrn))


# Adding ---------------------------------------------------------------------------------------


def test_a_coordinator_adds_a_patient(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    page = client.get("/patients/new").get_data(as_text=True)
    assert 'name="clinic_id"' not in page  # one clinic: nothing to choose
    assert 'value="America/New_York"' in page  # the clinic's time zone by default
    response = add(client)
    assert response.status_code == 303
    patient = by_mrn("12345")  # trimmed
    assert patient is not None
    assert response.headers["Location"] == f"/patients/{patient.id}"
    assert patient.clinic_id == world.clinic_a.id
    assert patient.phone == "+12165550142"  # E.164, read as a number of the clinic's country
    assert patient.preferred_channel is Channel.SMS
    assert (patient.birth_on, patient.language) == (dt.date(1971, 3, 2), "es")
    created = events("patient.created")
    assert len(created) == 1
    assert created[0].patient_id == patient.id
    assert created[0].actor_id == world.user("a", Role.COORDINATOR).id
    assert created[0].detail["after"]["phone"] == "+12165550142"
    assert created[0].detail["before"] == {}
    assert "Added Lopez, Alma." in client.get(f"/patients/{patient.id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mrn": "  "}, "Enter the MRN."),
        ({"mrn": "x" * 65}, "An MRN has at most 64 characters."),
        ({"given_name": ""}, "Enter the given name."),
        ({"family_name": "y" * 101}, "A family name has at most 100 characters."),
        ({"birth_on": "2999-01-01"}, "The date of birth is in the future."),
        ({"birth_on": "1899-12-31"}, "The date of birth is before 1900: check the year."),
        ({"birth_on": "03/02/1971"}, "Enter the date as YYYY-MM-DD, such as 1960-05-17."),
        ({"email": "alma@"}, "This is not a valid email address"),
        ({"phone": "555-01"}, "This is not a valid phone number"),
        ({"phone": "call me"}, "This is not a phone number: check the digits."),
        ({"time_zone": "Mars/Olympus"}, "Unknown time zone &#39;Mars/Olympus&#39;"),
        (
            {"phone": "", "preferred_channel": "sms"},
            "Text messages need a mobile phone number: enter one, or choose another channel.",
        ),
        (
            {"email": "", "preferred_channel": "email"},
            "Email needs an email address: enter one, or choose another channel.",
        ),
        ({"language": "fr"}, "Not a valid choice."),
    ],
)
def test_each_field_is_checked_with_a_message_next_to_it(
    staff_client, world: World, changes: dict[str, str], message: str
) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    response = add(client, **changes)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    field = next(iter(changes)) if len(changes) == 1 else "preferred_channel"
    assert f'id="{field}-error">{message}' in body
    assert by_mrn("12345") is None
    assert events("patient.created") == []


def test_a_duplicate_mrn_names_the_patient_who_has_it(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    response = add(client, mrn="A0")
    assert response.status_code == 400
    assert "MRN A0 is already TestA0, Pat&#39;s." in response.get_data(as_text=True)


def test_the_same_mrn_in_another_clinic_is_another_patient(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    assert add(client, mrn="B0").status_code == 303


def test_a_number_of_another_country_needs_its_code(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    assert add(client, phone="+44 7400 123456").status_code == 303
    patient = by_mrn("12345")
    assert patient is not None
    assert patient.phone == "+447400123456"


def test_without_a_country_a_number_needs_its_code(world: World) -> None:
    with pytest.raises(AdminError, match="Enter the number with its country code"):
        patients.clean_phone("216 555 0142", "UTC")
    assert patients.clean_phone("+1 216 555 0142", "UTC") == "+12165550142"


def test_a_coordinator_of_two_clinics_chooses_the_clinic(staff_client, world: World) -> None:
    user = world.user("a", Role.COORDINATOR)
    grant(db.session, user, world.clinic_b, Role.COORDINATOR)
    db.session.commit()
    client = staff_client(user)
    assert 'name="clinic_id"' in client.get("/patients/new").get_data(as_text=True)
    response = add(client, clinic_id=str(world.clinic_b.id), time_zone="", mrn="A0")
    assert response.status_code == 303  # A0 is free in clinic B
    patient = db.session.scalar(
        select(Patient).where(Patient.mrn == "A0", Patient.clinic_id == world.clinic_b.id)
    )
    assert patient is not None
    assert patient.time_zone == "America/Chicago"  # empty: the clinic's


def test_a_clinic_where_the_user_only_reads_cannot_be_chosen(staff_client, world: World) -> None:
    user = world.user("a", Role.COORDINATOR)
    grant(db.session, user, world.clinic_b, Role.CLINICIAN)
    db.session.commit()
    client = staff_client(user)
    assert add(client, clinic_id=str(world.clinic_b.id)).status_code == 400
    assert by_mrn("12345") is None


# Editing --------------------------------------------------------------------------------------


def test_editing_saves_and_audits_before_and_after(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    client = staff_client(world.user("a", Role.COORDINATOR))
    page = client.get(f"/patients/{patient.id}/edit").get_data(as_text=True)
    assert 'value="A0"' in page
    assert "Planned messages use these details when they are sent" in page
    fields = {**GOOD, "mrn": "A0", "given_name": "Patricia", "family_name": "TestA0"}
    response = post(client, f"/patients/{patient.id}/edit", **fields)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/patients/{patient.id}"
    db.session.refresh(patient)
    assert (patient.given_name, patient.phone) == ("Patricia", "+12165550142")
    [event] = events("patient.updated")
    assert event.detail["before"]["given_name"] == "Pat"
    assert event.detail["after"]["given_name"] == "Patricia"
    assert event.detail["before"]["phone"] is None
    assert "mrn" not in event.detail["after"]  # unchanged fields are left out
    shown = client.get(f"/patients/{patient.id}/edit").get_data(as_text=True)
    assert "Now (216) 555-0142." in shown  # the phone filter: national in the clinic's country


def test_editing_to_another_patients_mrn_is_refused(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    client = staff_client(world.user("a", Role.COORDINATOR))
    fields = {**GOOD, "mrn": "A1"}
    response = post(client, f"/patients/{patient.id}/edit", **fields)
    assert response.status_code == 400
    assert "MRN A1 is already TestA1, Pat&#39;s." in response.get_data(as_text=True)
    db.session.refresh(patient)
    assert patient.mrn == "A0"
    assert events("patient.updated") == []


# Opting out and back in -----------------------------------------------------------------------


def pending(patient: Patient) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.patient_id == patient.id,
                Notification.status == NotificationStatus.PENDING,
            )
        )
    )


def test_opting_out_cancels_planned_messages_and_opting_in_restores_them(
    staff_client, world: World
) -> None:
    patient = world.patients_a[0]
    anchor_on = patient_today(patient) + dt.timedelta(days=30)
    enroll(db.session, patient, world.protocol_a, anchor_on, now=utcnow())
    db.session.commit()
    planned = len(pending(patient))
    assert planned > 0
    user = world.user("a", Role.COORDINATOR)
    client = staff_client(user)
    path = f"/patients/{patient.id}/opt-out"
    refused = post(client, path, reason=" ")
    assert refused.status_code == 400
    refused_page = refused.get_data(as_text=True)
    assert 'id="reason-error">Give the reason the patient opted out.' in refused_page
    assert f'href="/patients/{patient.id}/edit">Edit details</a>' in refused_page
    response = post(client, path, reason="Asked not to be contacted")
    assert response.status_code == 303
    db.session.refresh(patient)
    assert patient.opted_out_by_id == user.id
    assert patient.opt_out_reason == "Asked not to be contacted"
    assert pending(patient) == []
    [event] = events("patient.opted_out")
    assert event.detail["after"]["opt_out_reason"] == "Asked not to be contacted"
    assert event.detail["messages"] == planned
    again = post(client, path, reason="twice")
    assert again.status_code == 303
    assert "The patient has already opted out." in client.get(again.headers["Location"]).get_data(
        as_text=True
    )
    db.session.refresh(patient)
    assert patient.opt_out_reason == "Asked not to be contacted"
    shown = post(client, path, reason="")  # the form page again: who, when and why
    assert shown.status_code == 400
    assert f"by {user.full_name}: “Asked not to be contacted”" in shown.get_data(as_text=True)
    assert "Opt back in" in shown.get_data(as_text=True)
    restored = post(client, f"/patients/{patient.id}/opt-in")
    assert restored.status_code == 303
    db.session.refresh(patient)
    assert patient.opted_out_at is None
    assert len(pending(patient)) == planned
    [back] = events("patient.opted_in")
    assert back.detail["before"]["opt_out_reason"] == "Asked not to be contacted"
    assert back.detail["after"]["opt_out_reason"] is None


# Who may -------------------------------------------------------------------------------------


def test_a_clinician_reads_but_cannot_change(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    client = staff_client(world.user("a", Role.CLINICIAN))
    assert client.get("/patients/new").status_code == 403
    assert client.get(f"/patients/{patient.id}/edit").status_code == 403
    token = csrf_token(client, "/instruments")
    response = client.post(
        f"/patients/{patient.id}/opt-out", data={"csrf_token": token, "reason": "x"}
    )
    assert response.status_code == 403
    db.session.refresh(patient)
    assert patient.opted_out_at is None


def test_another_clinics_patient_is_not_found(staff_client, world: World) -> None:
    patient = world.patients_b[0]
    client = staff_client(world.user("a", Role.COORDINATOR))
    assert client.get(f"/patients/{patient.id}/edit").status_code == 404
    token = csrf_token(client, "/instruments")
    assert client.post(
        f"/patients/{patient.id}/opt-in", data={"csrf_token": token}
    ).status_code == (404)


def test_anonymous_is_sent_to_sign_in(client, world: World) -> None:
    response = client.get("/patients/new")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize(("role", "shown"), [(Role.COORDINATOR, True), (Role.CLINICIAN, False)])
def test_the_contact_actions_partial_shows_to_those_who_may_use_it(
    app, world: World, role: Role, shown: bool
) -> None:
    from flask import render_template_string
    from flask_login import login_user

    patient = world.patients_a[0]
    patient.phone = "+12165550142"
    with app.test_request_context("/"):
        login_user(world.user("a", role))
        html = render_template_string(
            '{% include "admin/patients/_contact_actions.html" %}', patient=patient
        )
    assert ("Opt out of messages" in html) is shown
    assert ("Edit details" in html) is shown
