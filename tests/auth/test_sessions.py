"""Server-side session records: what ends a session, and what an ended one's cookie gets."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.auth.models import AuditEvent, Role, StaffSession
from proms.auth.services import find_staff
from proms.db import db, utcnow
from tests.helpers import PASSWORD, World, counted_statements, csrf_token, login

CLINICIAN = "clinician@a.example.org"
ADMIN = "admin@a.example.org"


def cookie(client: FlaskClient) -> dict[str, Any]:
    with client.session_transaction() as session:
        return dict(session)


def replay(app: Flask, stolen: dict[str, Any]) -> FlaskClient:
    """Another browser holding a copy of the cookie."""
    thief = app.test_client()
    with thief.session_transaction() as session:
        session.update(stolen)
    return thief


def records(email: str) -> list[StaffSession]:
    db.session.expire_all()
    user = find_staff(db.session, email)
    assert user is not None
    return list(
        db.session.scalars(
            select(StaffSession).where(StaffSession.user_id == user.id).order_by(StaffSession.id)
        )
    )


def sign_out(client: FlaskClient) -> None:
    client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})


def test_the_cookie_carries_a_random_token_stored_only_hashed(app: Flask, world: World) -> None:
    client = app.test_client()
    login(client, CLINICIAN)
    token = cookie(client)["_user_id"]
    user = find_staff(db.session, CLINICIAN)
    assert user is not None
    assert len(token) >= 43
    assert str(user.id) not in token.split(":")
    [record] = records(CLINICIAN)
    assert record.token_hash == hashlib.sha256(token.encode()).digest()
    assert record.ended_at is None
    assert record.user_agent  # the account page names the browser
    assert record.ip_address == "127.0.0.1"


def test_logout_ends_the_record_and_a_copied_cookie_gets_nothing(app: Flask, world: World) -> None:
    client = app.test_client()
    login(client, CLINICIAN)
    stolen = cookie(client)
    sign_out(client)
    [record] = records(CLINICIAN)
    assert record.end_reason == "logout"
    assert record.ended_at is not None
    thief = replay(app, stolen)
    response = thief.get("/patients")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert thief.get(f"/patients/{world.patients_a[0].id}").status_code == 302
    assert "_user_id" not in cookie(thief)  # the dead token is dropped from the cookie


def test_a_password_change_ends_the_other_sessions(app: Flask, world: World) -> None:
    here, there = app.test_client(), app.test_client()
    login(here, CLINICIAN)
    login(there, CLINICIAN)
    response = here.post(
        "/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase",
            "csrf_token": csrf_token(here, "/password"),
        },
    )
    assert response.status_code == 303
    assert here.get("/patients").status_code == 200  # this browser goes on
    assert there.get("/patients").status_code == 302
    first, second = records(CLINICIAN)
    assert first.ended_at is None
    assert second.end_reason == "password_changed"


def test_an_admin_signs_a_staff_member_out_everywhere(app: Flask, world: World) -> None:
    phone, laptop, admin = app.test_client(), app.test_client(), app.test_client()
    login(phone, CLINICIAN)
    login(laptop, CLINICIAN)
    login(admin, ADMIN)
    target = world.user("a", Role.CLINICIAN)
    member = f"/clinics/{world.clinic_a.id}/staff/{target.id}"
    page = admin.get(member).get_data(as_text=True)
    assert "2 open sessions" in page
    response = admin.post(
        f"{member}/sign-out-everywhere", data={"csrf_token": csrf_token(admin, member)}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == member
    assert phone.get("/patients").status_code == 302
    assert laptop.get("/patients").status_code == 302
    assert admin.get("/patients").status_code == 200
    assert {r.end_reason for r in records(CLINICIAN)} == {"signed_out_by_admin"}
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.signed_out_everywhere")
    ).one()
    assert event.detail == {"staff_user_id": target.id, "sessions_ended": 2}
    assert event.clinic_id == world.clinic_a.id
    assert "0 open sessions" in admin.get(member).get_data(as_text=True)


def test_sign_out_everywhere_is_an_admins_of_the_clinic(app: Flask, world: World) -> None:
    target = world.user("a", Role.CLINICIAN)
    victim = app.test_client()
    login(victim, CLINICIAN)
    path = f"/clinics/{world.clinic_a.id}/staff/{target.id}/sign-out-everywhere"
    coordinator = app.test_client()
    login(coordinator, "coordinator@a.example.org")
    token = csrf_token(coordinator, "/patients")
    assert coordinator.post(path, data={"csrf_token": token}).status_code == 403
    other_admin = app.test_client()
    login(other_admin, "admin@b.example.org")
    token = csrf_token(other_admin, "/patients")
    assert other_admin.post(path, data={"csrf_token": token}).status_code == 404
    assert other_admin.post(path).status_code == 400  # no CSRF token
    assert victim.get("/patients").status_code == 200


def test_the_account_page_lists_sessions_and_ends_the_others(app: Flask, world: World) -> None:
    here, there, elsewhere = app.test_client(), app.test_client(), app.test_client()
    for client in (here, there, elsewhere):
        login(client, CLINICIAN)
    page = here.get("/account").get_data(as_text=True)
    assert page.count("Sign out this browser") == 2  # not offered for this one
    assert "(this browser)" in page
    first, second, _third = records(CLINICIAN)

    token = csrf_token(here, "/account")
    response = here.post(f"/account/sessions/{second.id}/end", data={"csrf_token": token})
    assert response.status_code == 303
    assert there.get("/patients").status_code == 302
    assert elsewhere.get("/patients").status_code == 200
    # Not this browser's own (that is "Sign out"), and nobody else's.
    assert (
        here.post(f"/account/sessions/{first.id}/end", data={"csrf_token": token}).status_code
        == 400
    )
    nurse_b = app.test_client()
    login(nurse_b, "clinician@b.example.org")
    other = records("clinician@b.example.org")[0]
    assert (
        here.post(f"/account/sessions/{other.id}/end", data={"csrf_token": token}).status_code
        == 404
    )
    assert nurse_b.get("/patients").status_code == 200

    response = here.post("/account/sessions/end-others", data={"csrf_token": token})
    assert response.status_code == 303
    assert "1 other browser is signed out" in here.get("/account").get_data(as_text=True)
    assert elsewhere.get("/patients").status_code == 302
    assert here.get("/patients").status_code == 200
    assert [r.end_reason for r in records(CLINICIAN)] == [
        None,
        "signed_out_elsewhere",
        "signed_out_elsewhere",
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The clock the session checks read, set by the test."""
    now = [utcnow()]
    monkeypatch.setattr("proms.auth.utcnow", lambda: now[0])
    return now


def test_a_session_ends_after_its_lifetime_however_busy(
    app: Flask, world: World, clock: list[dt.datetime]
) -> None:
    client = app.test_client()
    login(client, CLINICIAN)
    stolen = cookie(client)
    hours = app.config["SESSION_MAX_HOURS"]
    assert hours == 12
    step = dt.timedelta(minutes=10)  # busy: never idle
    while clock[0] + step < records(CLINICIAN)[0].created_at + dt.timedelta(hours=hours):
        clock[0] += step
        assert client.get("/patients").status_code == 200
    clock[0] += step
    response = client.get("/patients")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "a session lasts 12 hours at most" in client.get("/login").get_data(as_text=True)
    assert records(CLINICIAN)[0].end_reason == "lifetime"
    assert replay(app, stolen).get("/patients").status_code == 302


def test_an_idle_session_ends_on_the_server(
    app: Flask, world: World, clock: list[dt.datetime]
) -> None:
    client = app.test_client()
    login(client, CLINICIAN)
    stolen = cookie(client)
    clock[0] += dt.timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"], seconds=1)
    assert client.get("/patients").headers["Location"] == "/login"
    assert records(CLINICIAN)[0].end_reason == "idle"
    clock[0] = utcnow()  # even back in time, the record stays ended
    assert replay(app, stolen).get("/patients").status_code == 302


def test_last_seen_is_written_at_most_once_a_minute(
    app: Flask, world: World, clock: list[dt.datetime]
) -> None:
    client = app.test_client()
    login(client, CLINICIAN)
    seen = records(CLINICIAN)[0].last_seen_at

    def session_writes() -> int:
        with counted_statements() as statements:
            assert client.get("/patients").status_code == 200
        return sum(s.lstrip().upper().startswith("UPDATE STAFF_SESSION") for s in statements)

    assert [session_writes() for _ in range(3)] == [0, 0, 0]
    clock[0] = seen + dt.timedelta(seconds=app.config["SESSION_TOUCH_SECONDS"])
    assert session_writes() == 1
    assert session_writes() == 0
    assert records(CLINICIAN)[0].last_seen_at > seen


def test_a_deactivated_account_is_signed_out(app: Flask, world: World) -> None:
    nurse, admin = app.test_client(), app.test_client()
    login(nurse, CLINICIAN)
    login(admin, ADMIN)
    target = world.user("a", Role.CLINICIAN)
    member = f"/clinics/{world.clinic_a.id}/staff/{target.id}"
    response = admin.post(
        member, data={"action": "deactivate", "csrf_token": csrf_token(admin, member)}
    )
    assert response.status_code == 303
    assert nurse.get("/patients").status_code == 302
    assert {r.end_reason for r in records(CLINICIAN)} == {"account_changed"}
