"""Security headers and cookie flags on every response: pages, redirects and every error page.

Every route's own answers are checked by tests/security/test_route_roles.py, which inspects each
response of its matrix with `protection_problems`. This file adds what the matrix does not
produce: each error page (400, 403, 404, 405, 410, 413, 429, 500, for staff and patients, in
HTML and JSON), a static file, HSTS over HTTPS, and the cookies: the staff session (through both
steps of sign-in), the survey's, and production's and development's (plain HTTP, not Secure).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from proms.auth.models import Role
from proms.db import db, utcnow
from proms.scheduling.links import mint_token
from proms.scheduling.models import Assessment
from proms.security import SECURITY_HEADERS, public
from tests.helpers import CSRF_RE, World, csrf_token, login
from tests.security.routes import make_objects, protection_problems


def assert_protected(response: TestResponse, status: int, *, secure: bool = True) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert protection_problems(response, secure=secure) == []


def _failing_app(make_app: Callable[..., Flask], **config: object) -> Flask:
    """An app with a staff page and a patient page that raise: the 500s of either layout."""
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False, **config)

    @public
    def boom() -> str:
        raise RuntimeError("internals")

    app.add_url_rule("/_test/boom", "test_boom", boom)
    app.add_url_rule("/s/_test/boom", "test_patient_boom", boom)
    return app


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/login", {}, 400),  # no CSRF token
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/no-such-page", {"Accept": "application/json"}, 404),
        ("GET", "/s/not-a-real-link", {}, 404),
        ("GET", "/static/no-such-file.css", {}, 404),
        ("DELETE", "/login", {}, 405),
        ("OPTIONS", "/login", {}, 200),  # answered by Flask itself
        ("GET", "/_test/boom", {}, 500),
        ("GET", "/s/_test/boom", {}, 500),
        ("GET", "/_test/boom", {"Accept": "application/json"}, 500),
        ("GET", "/login?x=%00", {}, 400),  # unreadable input
    ],
)
def test_error_pages_are_protected(
    make_app: Callable[..., Flask],
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    client = _failing_app(make_app).test_client()
    assert_protected(client.open(path, method=method, headers=headers), status)


def test_a_refused_role_too_large_a_form_and_a_closed_link_are_protected(
    app: Flask, world: World, staff_client: Callable[..., FlaskClient]
) -> None:
    clinician = staff_client(world.user("a", Role.CLINICIAN))
    assert_protected(clinician.get("/audit"), 403)
    anonymous = app.test_client()
    too_large = {"email": "x" * (app.config["PUBLIC_FORM_MAX_BYTES"] + 1)}
    assert_protected(anonymous.post("/login", data=too_large), 413)
    objects = make_objects(world, "a")
    baseline = db.session.get(Assessment, objects.assessment_id)
    assert baseline is not None
    expired = mint_token(db.session, baseline, now=utcnow(), max_age=-dt.timedelta(minutes=1))
    db.session.commit()
    assert_protected(anonymous.get(f"/s/{expired}"), 410)


def test_too_many_tries_is_protected(make_app: Callable[..., Flask]) -> None:
    client = make_app(LOGIN_RATE_LIMIT="1 per minute").test_client()
    form = {"email": "a@example.org", "password": "x", "csrf_token": csrf_token(client)}
    client.post("/login", data=form)
    response = client.post("/login", data=form)
    assert_protected(response, 429)
    assert response.headers["Retry-After"]


def test_static_files_carry_the_headers_and_https_adds_hsts(client: FlaskClient) -> None:
    response = client.get("/static/proms.css")
    assert response.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: meaningless
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_sign_in_cookies_are_httponly_lax_and_secure(app: Flask, world: World) -> None:
    client = app.test_client()
    page = client.get("/login")
    assert_protected(page, 200)
    assert page.headers.getlist("Set-Cookie"), "the form's CSRF token lives in the session"
    assert page.headers["Set-Cookie"].startswith("__Host-proms=")  # Secure, Path=/, no Domain
    for role in (Role.CLINICIAN, Role.ADMIN):  # the admin through the code step
        signed_in = login(app.test_client(), world.user("a", role).email)
        assert_protected(signed_in, 302)
        assert signed_in.headers.getlist("Set-Cookie")


def test_the_survey_cookie_is_httponly_lax_and_secure(app: Flask, world: World) -> None:
    token = make_objects(world, "a").survey_token
    client = app.test_client()
    landing = client.get(f"/s/{token}")
    match = CSRF_RE.search(landing.get_data(as_text=True))
    assert match
    started = client.post(f"/s/{token}", data={"csrf_token": match.group(1)})
    assert_protected(started, 303)
    names = [cookie.partition("=")[0] for cookie in started.headers.getlist("Set-Cookie")]
    assert "__Host-proms-survey" in names


@pytest.mark.parametrize(
    ("env", "secure", "name"),
    [("production", True, "__Host-proms"), ("development", False, "proms")],
)
def test_cookies_are_secure_everywhere_but_development(
    make_app: Callable[..., Flask], env: str, secure: bool, name: str
) -> None:
    """Development serves plain HTTP on localhost, where a Secure cookie would never come back."""
    production = {
        "SECRET_KEY": "s" * 40,
        "AUDIT_CHAIN_KEY": "a" * 40,
        "PUBLIC_BASE_URL": "https://proms.example.org",
    }
    app = make_app(ENV=env, **(production if env == "production" else {}))
    page = app.test_client().get("/login")
    assert_protected(page, 200, secure=secure)
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{name}=")
    assert ("Secure" in cookie) is secure
