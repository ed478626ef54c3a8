"""Two-step sign-in: enrolment, codes from the app, reuse, recovery codes, lockout, who must."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.auth import mfa
from proms.auth.models import AuditEvent, RecoveryCode, Role, StaffSession, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff, find_staff
from proms.db import db, utcnow
from proms.demo import DEMO_ADMIN_TOTP_SECRET
from tests.helpers import PASSWORD, TOTP_SECRET, World, csrf_token, login, next_code

ADMIN = "admin@a.example.org"
CLINICIAN = "clinician@a.example.org"
SECRET_RE = re.compile(r'<code id="secret"[^>]*>([A-Z2-7 ]+)</code>')
RECOVERY_RE = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


def fetch(email: str) -> StaffUser:
    db.session.expire_all()
    user = find_staff(db.session, email)
    assert user is not None
    return user


def actions(email: str) -> list[tuple[str, bool]]:
    user = fetch(email)
    rows = db.session.execute(
        select(AuditEvent.action, AuditEvent.is_success)
        .where(AuditEvent.actor_id == user.id)
        .order_by(AuditEvent.id)
    )
    return [(action, success) for action, success in rows]


def password_step(client: FlaskClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )


def code_step(client: FlaskClient, code: str, form_page: str = "/login/code"):  # type: ignore[no-untyped-def]
    return client.post(
        "/login/code", data={"code": code, "csrf_token": csrf_token(client, form_page)}
    )


def enrol_through_the_page(client: FlaskClient) -> tuple[str, list[str]]:
    """Set up two-step sign-in as a person would: read the key off the page, type a code."""
    page = client.get("/account/two-step").get_data(as_text=True)
    secret = SECRET_RE.search(page)
    assert secret, page
    key = secret.group(1).replace(" ", "")
    response = client.post(
        "/account/two-step",
        data={
            "code": pyotp.TOTP(key).now(),
            "csrf_token": csrf_token(client, "/account/two-step"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = RECOVERY_RE.findall(response.get_data(as_text=True))
    return key, codes


def test_an_admin_without_two_step_sets_it_up_before_anything_else(
    client: FlaskClient, world: World
) -> None:
    response = password_step(client, ADMIN)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/two-step"
    for path in ("/patients", "/clinics", "/account", "/password"):
        blocked = client.get(path)
        assert blocked.status_code == 302, path
        assert blocked.headers["Location"] == "/account/two-step", path

    page = client.get("/account/two-step")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<svg" in body  # the QR code, drawn on the server
    assert "<script" not in body
    assert "must use two-step sign-in" in body
    key = SECRET_RE.search(body)
    assert key
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", key.group(1))  # in groups of four
    # A reload shows the same key (it waits in the database until a code confirms it).
    assert key.group(1) in client.get("/account/two-step").get_data(as_text=True)
    assert fetch(ADMIN).mfa_secret is None


def test_enrolment_needs_a_right_code_and_shows_recovery_codes_once(
    client: FlaskClient, world: World
) -> None:
    password_step(client, ADMIN)
    wrong = client.post(
        "/account/two-step",
        data={"code": "000000", "csrf_token": csrf_token(client, "/account/two-step")},
    )
    assert wrong.status_code == 400
    assert "That code does not match" in wrong.get_data(as_text=True)
    assert fetch(ADMIN).mfa_secret is None

    key, codes = enrol_through_the_page(client)
    user = fetch(ADMIN)
    assert user.mfa_secret == key
    assert user.mfa_pending_secret is None
    assert len(codes) == mfa.RECOVERY_CODE_COUNT == len(set(codes))
    stored = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    assert len(stored) == mfa.RECOVERY_CODE_COUNT
    assert {row.code_hash for row in stored} == {mfa.hash_recovery_code(c) for c in codes}
    assert client.get("/patients").status_code == 200  # nothing else is blocked now
    assert not any(code in client.get("/account").get_data(as_text=True) for code in codes)
    assert ("mfa.setup_failed", False) in actions(ADMIN)
    assert ("mfa.enabled", True) in actions(ADMIN)

    # The code that confirmed the key cannot sign in as well.
    confirming = pyotp.TOTP(key).now()
    other = client.application.test_client()
    assert password_step(other, ADMIN).headers["Location"] == "/login/code"
    assert code_step(other, confirming).status_code == 401


def test_sign_in_with_a_code_after_the_password(client: FlaskClient, world: World) -> None:
    login(client, ADMIN)  # enrols the admin with TOTP_SECRET
    client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})
    response = password_step(client, ADMIN)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/code"
    # The password alone signs nobody in.
    assert client.get("/patients").status_code == 302
    assert db.session.scalar(select(StaffSession).where(StaffSession.ended_at.is_(None))) is None
    page = client.get("/login/code").get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in page

    response = code_step(client, next_code(ADMIN))
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/patients").status_code == 200
    events = actions(ADMIN)
    assert events[-3:-1] == [("login.password_accepted", True), ("login.succeeded", True)]
    last = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login.succeeded").order_by(AuditEvent.id)
    ).all()[-1]
    assert last.detail == {"second_step": "totp"}


def test_the_code_page_needs_a_password_first(client: FlaskClient, world: World) -> None:
    response = client.get("/login/code")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert code_step(client, "123456", "/login").status_code == 302  # nothing is checked


def test_a_used_code_is_refused(app: Flask, world: World) -> None:
    first, second = app.test_client(), app.test_client()
    login(first, ADMIN)
    used = mfa.code_at(TOTP_SECRET, fetch(ADMIN).mfa_last_step or 0)
    password_step(second, ADMIN)
    response = code_step(second, used)
    assert response.status_code == 401
    assert "used already" in response.get_data(as_text=True)
    assert second.get("/patients").status_code == 302
    assert ("login.code_failed", False) in actions(ADMIN)


def test_codes_one_step_either_side_count_and_each_step_once(app: Flask, world: World) -> None:
    user = find_staff(db.session, CLINICIAN)
    assert user is not None
    user.mfa_secret = TOTP_SECRET
    db.session.flush()
    now = dt.datetime(2026, 11, 30, 6, 0, 10, tzinfo=dt.UTC)
    step = mfa.time_step(now)
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step + 2), now=now) is None
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step - 2), now=now) is None
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step - 1), now=now) == "totp"
    # The step before the last one used is refused even though it is inside the window.
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step - 1), now=now) is None
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step + 1), now=now) == "totp"
    assert mfa.verify(db.session, user, mfa.code_at(TOTP_SECRET, step), now=now) is None
    assert fetch(CLINICIAN).mfa_last_step == step + 1
    # Spaces (as apps show them) are fine; letters, long input and nothing are not.
    later = now + dt.timedelta(seconds=90)
    code = mfa.code_at(TOTP_SECRET, mfa.time_step(later))
    assert mfa.verify(db.session, user, f" {code[:3]} {code[3:]} ", now=later) == "totp"
    for bad in ("", "abcdef", "1" * 41, "12345"):
        assert mfa.verify(db.session, user, bad, now=later) is None


def test_a_recovery_code_signs_in_once(app: Flask, world: World) -> None:
    client = app.test_client()
    password_step(client, ADMIN)
    _key, codes = enrol_through_the_page(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})

    password_step(client, ADMIN)
    response = code_step(client, codes[3].upper().replace("-", " "))  # as typed from paper
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/patients").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})

    password_step(client, ADMIN)
    assert code_step(client, codes[3]).status_code == 401  # used
    assert code_step(client, codes[4]).status_code == 302  # another one works
    assert mfa.unused_recovery_codes(db.session, fetch(ADMIN)) == mfa.RECOVERY_CODE_COUNT - 2
    methods = [
        event.detail.get("second_step")
        for event in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login.succeeded")
        )
    ]
    assert methods.count("recovery") == 2


def test_new_recovery_codes_replace_the_old(app: Flask, world: World) -> None:
    client = app.test_client()
    password_step(client, ADMIN)
    _key, old = enrol_through_the_page(client)
    response = client.post(
        "/account/recovery-codes", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert response.status_code == 200
    new = RECOVERY_RE.findall(response.get_data(as_text=True))
    assert len(new) == mfa.RECOVERY_CODE_COUNT
    assert not set(new) & set(old)
    assert ("mfa.recovery_codes_renewed", True) in actions(ADMIN)
    other = app.test_client()
    password_step(other, ADMIN)
    assert code_step(other, old[0]).status_code == 401
    assert code_step(other, new[0]).status_code == 302


def test_wrong_codes_lock_the_account_like_wrong_passwords(make_app, world: World) -> None:  # type: ignore[no-untyped-def]
    app = make_app(LOGIN_LOCK_AFTER=3)
    client = app.test_client()
    with app.app_context():
        login(client, ADMIN)  # enrolled; one good sign-in
        client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})
        password_step(client, ADMIN)
        assert code_step(client, "000000").status_code == 401
        # The right password again does not clear the count of wrong codes.
        assert password_step(client, ADMIN).headers["Location"] == "/login/code"
        assert code_step(client, "000001").status_code == 401
        locked = code_step(client, "000002")
        assert locked.status_code == 303
        assert locked.headers["Location"] == "/login"
        assert "Too many wrong codes" in client.get("/login").get_data(as_text=True)
        # Locked: the password is refused too, and no code is looked at.
        assert password_step(client, ADMIN).status_code == 429
        # The waiting sign-in was dropped: a code leads back to the password.
        refused = code_step(client, next_code(ADMIN), "/login")
        assert refused.headers["Location"] == "/login"
        assert client.get("/patients").status_code == 302
        assert [a for a in actions(ADMIN) if a[0] == "login.code_failed"] == [
            ("login.code_failed", False)
        ] * 3


def test_the_code_page_is_rate_limited(make_app, world: World) -> None:  # type: ignore[no-untyped-def]
    app = make_app(LOGIN_RATE_LIMIT="3 per minute", LOGIN_LOCK_AFTER=50)
    client = app.test_client()
    with app.app_context():
        login(client, ADMIN)
        client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})
        password_step(client, ADMIN)
        statuses = [code_step(client, "000000").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_admin_of_any_clinic_must_use_it_others_may(app: Flask, world: World) -> None:
    clinician = find_staff(db.session, CLINICIAN)
    assert clinician is not None
    assert not mfa.is_required(db.session, clinician)
    client = app.test_client()
    response = password_step(client, CLINICIAN)
    assert response.headers["Location"] == "/"  # no code, no enrolment
    assert client.get("/patients").status_code == 200

    # Admin of clinic B as well: required, whatever clinic A says.
    hasher = hasher_from_config(app.config)
    both = create_staff(
        db.session,
        hasher,
        email="both@a.example.org",
        full_name="Both",
        password=PASSWORD,
        clinic=world.clinic_a,
        role=Role.CLINICIAN,
    )
    from proms.auth.services import grant

    grant(db.session, both, world.clinic_b, Role.ADMIN)
    db.session.commit()
    other = app.test_client()
    assert password_step(other, "both@a.example.org").headers["Location"] == "/account/two-step"


def test_anyone_may_turn_it_on_from_their_account(client: FlaskClient, world: World) -> None:
    login(client, CLINICIAN)
    page = client.get("/account").get_data(as_text=True)
    assert "Set up two-step sign-in" in page
    enrol_through_the_page(client)
    assert "unused recovery codes left" in client.get("/account").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/patients")})
    assert password_step(client, CLINICIAN).headers["Location"] == "/login/code"


def test_a_clinic_can_require_it_of_all_its_staff(app: Flask, world: World) -> None:
    admin = app.test_client()
    login(admin, ADMIN)
    nurse = app.test_client()
    login(nurse, CLINICIAN)
    other_clinic = app.test_client()
    login(other_clinic, "clinician@b.example.org")
    path = f"/clinics/{world.clinic_a.id}/edit"
    form = admin.get(path).get_data(as_text=True)
    assert "Require two-step sign-in for all staff" in form
    response = admin.post(
        path,
        data={
            "name": "Clinic A",
            "time_zone": "America/New_York",
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
            "baseline_reuse_days": "30",
            "requires_mfa": "y",
            "csrf_token": csrf_token(admin, path),
        },
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert world.clinic_a.requires_mfa
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "clinic.updated")
    ).one()
    assert event.detail["after"]["requires_mfa"] is True
    # Signed-in staff of clinic A set it up at their next page; clinic B's are not asked.
    blocked = nurse.get("/patients")
    assert blocked.status_code == 302
    assert blocked.headers["Location"] == "/account/two-step"
    assert other_clinic.get("/patients").status_code == 200
    assert password_step(app.test_client(), CLINICIAN).headers["Location"] == "/account/two-step"


def second_admin(app: Flask, world: World) -> StaffUser:
    user = create_staff(
        db.session,
        hasher_from_config(app.config),
        email="admin2@a.example.org",
        full_name="Second Admin",
        password=PASSWORD,
        clinic=world.clinic_a,
        role=Role.ADMIN,
    )
    db.session.commit()
    return user


def test_an_admin_resets_a_lost_phone(app: Flask, world: World) -> None:
    target = second_admin(app, world)
    phone = app.test_client()
    login(phone, target.email)
    admin = app.test_client()
    login(admin, ADMIN)
    member = f"/clinics/{world.clinic_a.id}/staff/{target.id}"
    page = admin.get(member).get_data(as_text=True)
    assert "Reset two-step sign-in" in page
    response = admin.post(
        f"{member}/two-step/reset", data={"csrf_token": csrf_token(admin, member)}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == member
    user = fetch(target.email)
    assert user.mfa_secret is None
    assert user.mfa_last_step is None
    assert phone.get("/patients").status_code == 302  # signed out everywhere
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.two_step_reset")
    ).one()
    assert event.actor_id == fetch(ADMIN).id
    assert event.clinic_id == world.clinic_a.id
    assert event.detail == {"staff_user_id": target.id, "was_on": True, "sessions_ended": 1}
    # Their next sign-in sets it up again.
    again = app.test_client()
    assert password_step(again, target.email).headers["Location"] == "/account/two-step"


def test_reset_is_refused_for_oneself_and_outside_the_clinic(app: Flask, world: World) -> None:
    admin = app.test_client()
    login(admin, ADMIN)
    me = fetch(ADMIN)
    own = f"/clinics/{world.clinic_a.id}/staff/{me.id}"
    token = csrf_token(admin, own)
    assert admin.post(f"{own}/two-step/reset", data={"csrf_token": token}).status_code == 403
    assert fetch(ADMIN).mfa_secret == TOTP_SECRET
    stranger = world.user("b", Role.CLINICIAN)
    elsewhere = f"/clinics/{world.clinic_b.id}/staff/{stranger.id}/two-step/reset"
    assert admin.post(elsewhere, data={"csrf_token": token}).status_code == 404
    nurse = app.test_client()
    login(nurse, CLINICIAN)
    target = f"/clinics/{world.clinic_a.id}/staff/{me.id}/two-step/reset"
    assert nurse.post(target, data={"csrf_token": csrf_token(nurse, "/patients")}).status_code in (
        403,
        404,
    )
    assert fetch(ADMIN).mfa_secret == TOTP_SECRET


def test_demo_code_prints_the_demo_admins_code(app: Flask, runner) -> None:  # type: ignore[no-untyped-def]
    before = mfa.time_step(utcnow())
    result = runner.invoke(args=["demo", "code"])
    after = mfa.time_step(utcnow())
    assert result.exit_code == 0, result.output
    code = result.output.splitlines()[0]
    assert code in {mfa.code_at(DEMO_ADMIN_TOTP_SECRET, step) for step in (before, after)}


@pytest.mark.parametrize("path", ["/account", "/account/two-step"])
def test_account_pages_need_a_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_new_password_comes_first_then_the_set_up(client: FlaskClient, world: World) -> None:
    user = fetch(ADMIN)
    user.must_change_password = True
    db.session.commit()
    response = password_step(client, ADMIN)
    assert response.headers["Location"] == "/password"
    assert client.get("/patients").headers["Location"] == "/password"
    assert client.get("/password").status_code == 200
    response = client.post(
        "/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase",
            "csrf_token": csrf_token(client, "/password"),
        },
    )
    assert response.status_code == 303
    assert client.get("/patients").headers["Location"] == "/account/two-step"
    assert client.get("/password").headers["Location"] == "/account/two-step"


def test_the_command_line_resets_two_step_for_a_lone_admin(
    app: Flask, world: World, runner
) -> None:  # type: ignore[no-untyped-def]
    phone = app.test_client()
    login(phone, ADMIN)
    result = runner.invoke(args=["staff", "reset-two-step", "--email", "Admin@A.example.org"])
    assert result.exit_code == 0, result.output
    assert "1 session(s) ended" in result.output
    assert fetch(ADMIN).mfa_secret is None
    assert phone.get("/patients").status_code == 302
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.two_step_reset")
    ).one()
    assert event.actor_email is not None
    assert event.actor_email.startswith("cli:")
    assert event.detail["staff_email"] == ADMIN
    missing = runner.invoke(args=["staff", "reset-two-step", "--email", "nobody@a.example.org"])
    assert missing.exit_code != 0
    assert "No staff account" in missing.output
