"""One-time password links and "choose a new password": single use, expiry, forced change."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.auth import tokens
from proms.auth.models import AuditEvent, PasswordToken, Role, StaffUser
from proms.auth.services import end_all_sessions
from proms.db import db, utcnow
from tests.helpers import PASSWORD, World, csrf_token, login
from tests.live import Server, at_once, serve

NEW_PASSWORD = "a brand new passphrase"


def link_for(user: StaffUser, purpose: tokens.Purpose = tokens.Purpose.INVITE, **kwargs) -> str:
    raw = tokens.mint(db.session, user, purpose=purpose, now=kwargs.pop("now", utcnow()), **kwargs)
    db.session.commit()
    return f"/password/{raw}"


def set_password(client: FlaskClient, path: str, password: str = NEW_PASSWORD, confirm=None):
    return client.post(
        path,
        data={
            "new_password": password,
            "confirm": password if confirm is None else confirm,
            "csrf_token": csrf_token(client, path),
        },
    )


def fresh(user: StaffUser) -> StaffUser:
    db.session.expire_all()
    found = db.session.get(StaffUser, user.id)
    assert found is not None
    return found


def test_a_link_sets_the_password_once(client: FlaskClient, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    path = link_for(user)
    page = client.get(path)
    assert page.status_code == 200
    assert user.email in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"  # the token never leaves in a Referer

    response = set_password(client, path)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "Your password is set" in client.get("/login").get_data(as_text=True)
    assert login(client, user.email, NEW_PASSWORD).status_code == 302
    assert login(client.application.test_client(), user.email, PASSWORD).status_code == 401

    again = client.get(path)
    assert again.status_code == 404
    assert "Ask an administrator of your clinic for a new link" in again.get_data(as_text=True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "password.set"))
    assert event is not None
    assert event.actor_id == user.id
    assert event.detail["purpose"] == "invite"
    assert path.split("/")[-1] not in str(event.detail)


def test_a_used_link_cannot_set_a_second_password(app: Flask, world: World) -> None:
    """Two tabs opened on one link: the second submit changes nothing."""
    user = world.user("a", Role.CLINICIAN)
    path = link_for(user)
    first, second = app.test_client(), app.test_client()
    first_token, second_token = csrf_token(first, path), csrf_token(second, path)
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert first.post(path, data={**data, "csrf_token": first_token}).status_code == 303
    other = {"new_password": "another passphrase!", "confirm": "another passphrase!"}
    assert second.post(path, data={**other, "csrf_token": second_token}).status_code == 404
    assert login(app.test_client(), user.email, NEW_PASSWORD).status_code == 302


def test_the_compare_and_set_refuses_a_token_used_meanwhile(app: Flask, world: World) -> None:
    """The race itself: both requests found the link valid, one update wins."""
    user = world.user("a", Role.CLINICIAN)
    raw = link_for(user).split("/")[-1]
    now = utcnow()
    found = tokens.find_valid(db.session, raw, now=now)
    assert found is not None
    assert tokens.consume(db.session, found, now=now) is True
    assert tokens.consume(db.session, found, now=now) is False


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    app = make_app(SESSION_COOKIE_SECURE=False, LOGIN_RATE_LIMIT="10000 per minute")
    with serve(app) as live, app.app_context():
        yield live


def test_submits_at_the_same_moment_set_one_password(server: Server, world: World) -> None:
    """A real threaded server, slowed statements: exactly one of the submits sets a password."""
    user = world.user("a", Role.CLINICIAN)
    path = link_for(user)
    browsers = [server.browser() for _ in range(3)]
    for browser in browsers:
        assert browser.get(path).status == 200
    passwords = [f"passphrase number {n}!" for n in range(3)]
    with server.slow_database():
        replies = at_once(
            *(
                partial(browser.post, path, {"new_password": pw, "confirm": pw})
                for browser, pw in zip(browsers, passwords, strict=True)
            )
        )
    statuses = [reply.status for reply in replies]
    assert sorted(statuses) == [303, 404, 404], [r.body for r in replies]
    winner = passwords[statuses.index(303)]
    results = [login(server.app.test_client(), user.email, pw).status_code for pw in passwords]
    assert results.count(302) == 1
    assert login(server.app.test_client(), user.email, winner).status_code == 302
    sets = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "password.set"))
    assert len(sets.all()) == 1


def test_an_expired_link_is_a_friendly_404(client: FlaskClient, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    path = link_for(user, now=utcnow() - dt.timedelta(days=7, seconds=1))
    response = client.get(path)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "This link no longer works" in body
    assert "Ask an administrator" in body
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client)}
    assert client.post(path, data=data).status_code == 404


def test_unknown_and_absurd_tokens_are_404(client: FlaskClient, world: World) -> None:
    assert client.get("/password/not-a-token").status_code == 404
    assert client.get("/password/" + "x" * 500).status_code == 404


def test_a_newer_link_ends_the_older_one(client: FlaskClient, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    old = link_for(user)
    new = link_for(user, purpose=tokens.Purpose.RESET)
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200


def test_a_deactivated_account_cannot_use_its_link(client: FlaskClient, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    path = link_for(user)
    user.is_active = False
    db.session.commit()
    assert client.get(path).status_code == 404


def test_only_the_hash_is_stored(world: World) -> None:
    raw = link_for(world.user("a", Role.CLINICIAN)).split("/")[-1]
    row = db.session.scalar(select(PasswordToken))
    assert row is not None
    assert row.token_hash == tokens.hash_token(raw)
    assert len(raw) >= 43  # 256 bits, URL-safe base64
    assert raw.encode() not in row.token_hash


def test_bad_new_passwords_are_400_with_messages(client: FlaskClient, world: World) -> None:
    path = link_for(world.user("a", Role.CLINICIAN))
    short = set_password(client, path, "short")
    assert short.status_code == 400
    assert "Use at least 12 characters." in short.get_data(as_text=True)
    mismatch = set_password(client, path, NEW_PASSWORD, confirm=NEW_PASSWORD + "x")
    assert mismatch.status_code == 400
    assert "The two passwords are not the same" in mismatch.get_data(as_text=True)
    assert client.get(path).status_code == 200  # still unused


def test_setting_a_password_ends_every_session_and_lifts_a_lock(app: Flask, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    signed_in = app.test_client()
    assert login(signed_in, user.email).status_code == 302
    for _ in range(app.config["LOGIN_LOCK_AFTER"]):
        login(app.test_client(), user.email, "wrong password!!")
    path = link_for(user, purpose=tokens.Purpose.RESET)
    assert set_password(app.test_client(), path).status_code == 303
    assert signed_in.get("/patients").status_code == 302  # signed out
    assert login(app.test_client(), user.email, NEW_PASSWORD).status_code == 302


# Choose a new password -------------------------------------------------------------------------


def change(client: FlaskClient, current: str = PASSWORD, new: str = NEW_PASSWORD):
    return client.post(
        "/password",
        data={
            "current_password": current,
            "new_password": new,
            "confirm": new,
            "csrf_token": csrf_token(client, "/password"),
        },
    )


def test_a_forced_change_comes_before_anything_else(app: Flask, world: World) -> None:
    user = world.user("a", Role.COORDINATOR)
    user.must_change_password = True
    end_all_sessions(user)
    db.session.commit()
    client = app.test_client()
    response = login(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/password"
    for path in ("/patients", "/clinics", "/instruments"):
        blocked = client.get(path)
        assert blocked.status_code == 302
        assert blocked.headers["Location"] == "/password"
    page = client.get("/password").get_data(as_text=True)
    assert "An administrator asked you to choose a new password" in page

    assert change(client).status_code == 303
    assert client.get("/patients").status_code == 200  # this session goes on
    assert fresh(user).must_change_password is False
    assert login(app.test_client(), user.email, NEW_PASSWORD).status_code == 302
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.actor_id == user.id)
    ).all()
    assert "password.changed" in actions


def test_changing_needs_the_current_password(staff_client, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    client = staff_client(user)
    wrong = change(client, current="not my password")
    assert wrong.status_code == 400
    assert "That is not your current password." in wrong.get_data(as_text=True)
    same = change(client, new=PASSWORD)
    assert same.status_code == 400
    assert "different from your current one" in same.get_data(as_text=True)
    assert login(client.application.test_client(), user.email).status_code == 302


def test_changing_ends_the_other_sessions(app: Flask, world: World) -> None:
    user = world.user("a", Role.CLINICIAN)
    here, elsewhere = app.test_client(), app.test_client()
    login(here, user.email)
    login(elsewhere, user.email)
    assert change(here).status_code == 303
    assert here.get("/patients").status_code == 200
    assert elsewhere.get("/patients").status_code == 302


def test_the_change_page_needs_a_sign_in(client: FlaskClient, world: World) -> None:
    response = client.get("/password")
    assert response.status_code == 302
    assert re.match(r"/login\b", response.headers["Location"])


# proms staff invite ----------------------------------------------------------------------------


def test_the_command_invites_and_prints_the_link(app: Flask, runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "invite",
            "--email",
            "Late.Comer@a.example.org",
            "--name",
            "Late Comer",
            "--clinic",
            "a",
            "--role",
            "coordinator",
            "--role",
            "clinician",
        ]
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"(/password/[A-Za-z0-9_-]{43})\s*$", result.output)
    assert match, result.output
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == "late.comer@a.example.org"))
    assert user is not None
    assert user.roles_in(world.clinic_a.id) == {Role.COORDINATOR, Role.CLINICIAN}
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.invited"))
    assert event is not None
    assert str(event.actor_email).startswith("cli:")
    assert match.group(1).rsplit("/", 1)[-1] not in str(event.detail)

    client = app.test_client()
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    path = match.group(1)
    assert (
        client.post(path, data={**data, "csrf_token": csrf_token(client, path)}).status_code == 303
    )
    assert login(client, user.email, NEW_PASSWORD).status_code == 302


def test_the_command_refuses_an_existing_address(runner, world: World) -> None:
    email = world.user("b", Role.CLINICIAN).email
    args = ["staff", "invite", "--email", email, "--name", "X", "--clinic", "a", "--role", "admin"]
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert "proms staff grant" in result.output
