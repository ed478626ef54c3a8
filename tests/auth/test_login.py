"""Staff login: lockout, audit, sessions, idle timeout, logout."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from sqlalchemy import select

from proms.auth.models import AuditEvent, LoginThrottle, Role, StaffUser
from proms.auth.services import find_throttle
from proms.db import db, utcnow
from tests.helpers import PASSWORD, World, csrf_token, login


def audit_actions(email: str) -> list[tuple[str, bool]]:
    rows = db.session.execute(
        select(AuditEvent.action, AuditEvent.is_success)
        .where(AuditEvent.actor_email == email)
        .order_by(AuditEvent.id)
    )
    return [(action, success) for action, success in rows]


def throttle(email: str) -> LoginThrottle | None:
    db.session.expire_all()
    return find_throttle(db.session, email)


def fetch_user(email: str) -> StaffUser:
    db.session.expire_all()
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
    assert user is not None
    return user


def test_login_page_has_a_csrf_protected_form(client) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'name="csrf_token"' in body
    assert 'autocomplete="current-password"' in body


def test_right_password_logs_in_and_audits(client, world: World) -> None:
    response = login(client, "clinician@a.example.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"  # the start page: by role, worklist or patients
    assert audit_actions("clinician@a.example.org") == [("login.succeeded", True)]
    assert fetch_user("clinician@a.example.org").last_login_at is not None


def test_email_is_case_insensitive(client, world: World) -> None:
    assert login(client, "  Clinician@A.Example.ORG ").status_code == 302


def test_wrong_password_is_401_and_audited(client, world: World) -> None:
    response = login(client, "clinician@a.example.org", "wrong password!!")
    assert response.status_code == 401
    assert "do not match an active account" in response.get_data(as_text=True)
    assert audit_actions("clinician@a.example.org") == [("login.failed", False)]
    assert throttle("clinician@a.example.org").failed_count == 1


def test_unknown_email_gets_the_same_answer_and_is_audited(client, world: World) -> None:
    response = login(client, "nobody@a.example.org", "whatever password")
    assert response.status_code == 401
    assert "do not match an active account" in response.get_data(as_text=True)
    assert audit_actions("nobody@a.example.org") == [("login.failed", False)]


def test_inactive_account_cannot_log_in(client, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    user.is_active = False
    db.session.commit()
    assert login(client, user.email).status_code == 401


def test_ten_wrong_passwords_lock_the_account(client, world: World, app: Flask) -> None:
    """Five failures lock; attempts while locked are refused (even the right password)."""
    email = "clinician@a.example.org"
    statuses = [login(client, email, f"wrong password {n}").status_code for n in range(10)]
    lock_after = app.config["LOGIN_LOCK_AFTER"]
    assert statuses == [401] * (lock_after - 1) + [429] * (10 - lock_after + 1)
    state = throttle(email)
    assert state.failed_count == lock_after  # attempts during the lock do not count
    assert state.locked_until is not None
    # Every attempt has its audit row.
    actions = audit_actions(email)
    assert len(actions) == 10
    assert actions[:lock_after] == [("login.failed", False)] * lock_after
    assert actions[lock_after:] == [("login.locked", False)] * (10 - lock_after)

    refused = login(client, email, PASSWORD)
    assert refused.status_code == 429
    assert "locked for" in refused.get_data(as_text=True)
    assert audit_actions(email)[-1] == ("login.locked", False)


def run_out_the_lock(email: str) -> None:
    state = throttle(email)
    assert state.locked_until is not None
    state.locked_until -= dt.timedelta(hours=2)
    db.session.commit()


def test_after_the_lock_runs_out_the_right_password_works(client, world: World) -> None:
    email = "clinician@a.example.org"
    for n in range(5):
        login(client, email, f"wrong password {n}")
    run_out_the_lock(email)
    assert login(client, email).status_code == 302
    assert throttle(email) is None  # the count starts again from zero


def test_a_wrong_password_after_the_lock_locks_twice_as_long(client, world: World, app) -> None:
    email = "clinician@a.example.org"
    for n in range(5):
        login(client, email, f"wrong password {n}")
    run_out_the_lock(email)
    before = utcnow()
    assert login(client, email, "wrong again!!").status_code == 429
    after = utcnow()
    state = throttle(email)
    assert state.failed_count == 6
    # Locked from the moment of that request, however long the request took.
    twice = dt.timedelta(seconds=2 * app.config["LOGIN_LOCK_BASE_SECONDS"])
    assert before + twice <= state.locked_until <= after + twice


def test_unknown_addresses_lock_exactly_like_real_ones(client, world: World) -> None:
    """The answers must not tell an attacker which addresses have accounts."""
    real = [
        login(client, "clinician@a.example.org", f"wrong {n} password").status_code
        for n in range(7)
    ]
    unknown = [
        login(client, "nobody@a.example.org", f"wrong {n} password").status_code for n in range(7)
    ]
    assert real == unknown == [401, 401, 401, 401, 429, 429, 429]
    assert throttle("nobody@a.example.org").email_sha256 != "nobody@a.example.org"


def test_a_lock_on_one_address_leaves_others_alone(client, world: World) -> None:
    for n in range(5):
        login(client, "clinician@a.example.org", f"wrong password {n}")
    assert login(client, "admin@a.example.org").status_code == 302


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/patients?page=2", "/patients?page=2"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_only_follows_local_paths(client, world: World, target: str, expected: str) -> None:
    response = client.post(
        "/login",
        query_string={"next": target},
        data={
            "email": "clinician@a.example.org",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_login_starts_a_fresh_session(client, world: World) -> None:
    token_before = csrf_token(client)
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    login(client, "clinician@a.example.org")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") != token_before


def test_session_cookie_flags(client, world: World) -> None:
    response = login(client, "clinician@a.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-proms=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=Lax" in cookie


def test_development_cookies_are_not_secure(make_app, world: World) -> None:
    app = make_app(ENV="development")
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_NAME"] == "proms"


@pytest.fixture
def idle_clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The clock the idle timeout reads, set by the test (not the time the test happens to take)."""
    clock = [utcnow()]
    monkeypatch.setattr("proms.auth.utcnow", lambda: clock[0])
    return clock


def test_idle_timeout_signs_out(
    client, world: World, app: Flask, idle_clock: list[dt.datetime]
) -> None:
    login(client, "clinician@a.example.org")
    assert client.get("/patients").status_code == 200
    idle_clock[0] += dt.timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"], seconds=1)
    response = client.get("/patients")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/patients").status_code == 302  # still signed out


def test_activity_keeps_the_session_alive(
    client, world: World, app: Flask, idle_clock: list[dt.datetime]
) -> None:
    login(client, "clinician@a.example.org")
    assert client.get("/patients").status_code == 200
    almost = dt.timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"], seconds=-1)
    for _ in range(2):  # twice: each request starts the idle time again
        idle_clock[0] += almost
        assert client.get("/patients").status_code == 200


def test_logout_needs_csrf_and_ends_its_session(app: Flask, world: World) -> None:
    first, second = app.test_client(), app.test_client()
    login(first, "clinician@a.example.org")
    login(second, "clinician@a.example.org")
    with first.session_transaction() as session:
        stolen = dict(session)

    assert first.post("/logout").status_code == 400  # no CSRF token
    token = csrf_token(first, "/patients")
    response = first.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert first.get("/patients").status_code == 302
    # A replay of the old cookie gets nothing; another browser's session is its own (the
    # account page and an admin's "sign out everywhere" end those: tests/auth/test_sessions.py).
    assert second.get("/patients").status_code == 200
    replay = app.test_client()
    with replay.session_transaction() as session:
        session.update(stolen)
    assert replay.get("/patients").status_code == 302
    assert ("logout", True) in audit_actions("clinician@a.example.org")


def test_logged_in_user_visiting_login_goes_to_patients(client, world: World) -> None:
    login(client, "clinician@a.example.org")
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"  # the start page: by role, worklist or patients


@pytest.mark.parametrize("target", ["////evil.example/phish", "///evil.example", "//evil"])
def test_next_refuses_every_protocol_relative_form(client, world: World, target: str) -> None:
    response = client.post(
        "/login",
        query_string={"next": target},
        data={
            "email": "clinician@a.example.org",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.headers["Location"] == "/"  # the start page: by role, worklist or patients


def test_sign_in_attempts_are_rate_limited_per_client(make_app, world: World) -> None:
    app = make_app(LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [
        login(client, f"nobody{n}@a.example.org", "wrong password").status_code for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
