"""Admins' clinic pages: their clinics, one clinic with its staff, and its settings."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.admin.models import Clinic
from proms.auth.models import AuditEvent, Role
from proms.db import db
from tests.helpers import World, csrf_token

GOOD = {
    "name": "Clinic A North",
    "time_zone": "America/Chicago",
    "contact_phone": "(312) 555-0123",
    "contact_email": "Front.Desk@A.example.org",
    "show_patient_scores": "y",
    "quiet_hours_start": "22:00",
    "quiet_hours_end": "07:30",
    "baseline_reuse_days": "45",
}


@pytest.fixture
def admin(staff_client, world: World) -> FlaskClient:
    return staff_client(world.user("a", Role.ADMIN))


def edit_path(world: World) -> str:
    return f"/clinics/{world.clinic_a.id}/edit"


def edit(client: FlaskClient, world: World, **changes: str):
    data = {**GOOD, **changes}
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(
        edit_path(world), data={**data, "csrf_token": csrf_token(client, edit_path(world))}
    )


def clinic_a(world: World) -> Clinic:
    db.session.expire_all()
    found = db.session.get(Clinic, world.clinic_a.id)
    assert found is not None
    return found


def test_the_clinic_list_shows_only_the_admins_clinics(admin: FlaskClient, world: World) -> None:
    body = admin.get("/clinics").get_data(as_text=True)
    assert "Clinic A" in body
    assert "Clinic B" not in body
    assert "(216) 555-0100" in body  # the stored E.164, as people in the clinic write it


def test_the_clinic_page_lists_its_staff(admin: FlaskClient, world: World) -> None:
    response = admin.get(f"/clinics/{world.clinic_a.id}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for role in Role:
        assert world.user("a", role).email in body
        assert world.user("b", role).email not in body
    assert "21:00 to 08:00" in body
    assert f"/clinics/{world.clinic_a.id}/staff/{world.user('a', Role.CLINICIAN).id}" in body


def test_the_form_shows_the_current_settings(admin: FlaskClient, world: World) -> None:
    body = admin.get(edit_path(world)).get_data(as_text=True)
    assert 'value="Clinic A"' in body
    assert 'value="(216) 555-0100"' in body
    assert 'value="21:00"' in body
    assert '<option value="Europe/Madrid">' in body
    assert 'list="time-zones"' in body


def test_saving_stores_normalised_values_and_audits(admin: FlaskClient, world: World) -> None:
    response = edit(admin, world)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/clinics/{world.clinic_a.id}"
    clinic = clinic_a(world)
    assert clinic.name == "Clinic A North"
    assert clinic.time_zone == "America/Chicago"
    assert clinic.contact_phone == "+13125550123"
    assert clinic.contact_email == "front.desk@a.example.org"
    assert clinic.show_patient_scores is True
    assert clinic.quiet_hours_start == dt.time(22, 0)
    assert clinic.quiet_hours_end == dt.time(7, 30)
    assert clinic.baseline_reuse_days == 45

    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clinic.updated"))
    assert event is not None
    assert event.clinic_id == world.clinic_a.id
    assert event.actor_id == world.user("a", Role.ADMIN).id
    assert event.detail["before"]["time_zone"] == "America/New_York"
    assert event.detail["after"]["time_zone"] == "America/Chicago"
    assert event.detail["before"]["contact_phone"] == "+12165550100"
    assert event.detail["after"]["contact_phone"] == "+13125550123"
    assert event.detail["after"]["quiet_hours_end"] == "07:30:00"
    assert "Clinic A North" in admin.get(f"/clinics/{world.clinic_a.id}").get_data(as_text=True)


def test_empty_contact_details_are_stored_as_none(admin: FlaskClient, world: World) -> None:
    assert edit(admin, world, contact_phone="", contact_email="").status_code == 303
    clinic = clinic_a(world)
    assert clinic.contact_phone is None
    assert clinic.contact_email is None


def test_a_number_abroad_needs_its_country_code(admin: FlaskClient, world: World) -> None:
    assert edit(admin, world, contact_phone="+34 912 345 678").status_code == 303
    assert clinic_a(world).contact_phone == "+34912345678"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "Unknown time zone"),
        ({"time_zone": ""}, "Enter the clinic&#39;s time zone"),
        ({"contact_phone": "555"}, "This is not a valid phone number"),
        ({"contact_phone": "call us"}, "This is not a phone number"),
        ({"contact_phone": "912 345 678", "time_zone": "UTC"}, "with its country code"),
        ({"contact_email": "desk@"}, "Enter a valid email address"),
        ({"quiet_hours_start": "25:00"}, "Enter a time of day as hours and minutes"),
        ({"quiet_hours_end": ""}, "Enter the time quiet hours end"),
        ({"quiet_hours_end": "22:00"}, "Quiet hours must end at a different time"),
        ({"baseline_reuse_days": "366"}, "Enter a number of days from 0 to 365."),
        ({"baseline_reuse_days": "-1"}, "Enter a number of days from 0 to 365."),
        ({"baseline_reuse_days": "ten"}, "Enter a whole number of days from 0 to 365."),
        ({"name": "  "}, "Enter the clinic&#39;s name."),
    ],
)
def test_bad_settings_are_400_with_a_message(
    admin: FlaskClient, world: World, changes: dict[str, str], message: str
) -> None:
    response = edit(admin, world, **changes)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert message in body
    assert 'aria-invalid="true"' in body
    clinic = clinic_a(world)
    assert clinic.name == "Clinic A"
    assert clinic.time_zone == "America/New_York"
    assert (
        db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clinic.updated")) is None
    )


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN])
def test_coordinators_and_clinicians_get_403(staff_client, world: World, role: Role) -> None:
    client = staff_client(world.user("a", role))
    assert client.get("/clinics").status_code == 403
    assert client.get(f"/clinics/{world.clinic_a.id}").status_code == 403
    assert client.get(edit_path(world)).status_code == 403
    token = csrf_token(client, "/patients")
    assert client.post(edit_path(world), data={**GOOD, "csrf_token": token}).status_code == 403
    assert clinic_a(world).name == "Clinic A"


def test_an_admin_of_another_clinic_gets_404(staff_client, world: World) -> None:
    other = staff_client(world.user("b", Role.ADMIN))
    assert other.get(f"/clinics/{world.clinic_a.id}").status_code == 404
    assert other.get(edit_path(world)).status_code == 404
    token = csrf_token(other, "/patients")
    assert other.post(edit_path(world), data={**GOOD, "csrf_token": token}).status_code == 404
    assert other.get("/clinics/999999").status_code == 404
    assert clinic_a(world).name == "Clinic A"


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient, world: World) -> None:
    response = client.get(f"/clinics/{world.clinic_a.id}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
