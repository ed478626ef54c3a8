"""`next` never leads off the site: sign-in goes on to a path of this site or to the start page.

Sign-in is the one place that redirects to an address it was given (`?next=`, through the code
step of two-step sign-in too: proms.auth.views.safe_next). Each hostile value below is read the
way a browser reads a Location header (tabs and line breaks dropped, backslashes taken as
slashes, relative to the page) and must land on this host. tests/security/test_route_roles.py
sends `next` to every route as well and checks that none of them redirects off the site.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from proms.auth.models import Role
from proms.auth.views import safe_next
from tests.helpers import PASSWORD, World, csrf_token, enrol_if_required, next_code
from tests.security.routes import lands_on_site

HOSTILE = [
    "//evil.example",
    "///evil.example",
    "https://evil.example",
    "https://evil.example/patients",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",  # a path of this site: %2F is not a slash to a browser
    "/%5Cevil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http:evil.example",
    "https:/\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/\r\n/evil.example",
    "/a\nLocation: https://evil.example",  # a header of its own, were it let through
    "/\uff0f/evil.example",  # fullwidth solidus
    "\uff0f\uff0fevil.example",
    "/\u2215evil.example",  # division slash
    "/\uff3cevil.example",  # fullwidth reverse solidus
    "/\u3002evil.example",  # ideographic full stop (a dot to IDNA)
    "https://evil\u3002example",
    "/.//evil.example",
    "/@evil.example",
    "https://localhost@evil.example",
    "/\u200b/evil.example",  # zero-width space
]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    # Dozens of sign-ins from one address in a minute: counting them is not what is tested here.
    # (RATELIMIT_ENABLED=False would stay with the shared limiter for the apps that follow.)
    application = make_app(LOGIN_RATE_LIMIT="1000 per minute")
    with application.app_context():
        yield application


def test_the_check_itself_keeps_every_hostile_value_on_the_site(app: Flask) -> None:
    with app.test_request_context():
        for value in HOSTILE:
            assert lands_on_site(safe_next(value)), value


def sign_in(client: FlaskClient, email: str, target: str) -> tuple[int, str]:
    """Sign in from a sign-in page reached with ?next=target; the last status and Location."""
    page = client.get("/login", query_string={"next": target})
    if page.status_code == 400:  # refused before anything read it (a line break in an address)
        return page.status_code, ""
    assert page.status_code == 200
    assert 'action="/login?next=' in page.get_data(as_text=True)  # carried, encoded
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    if response.status_code == 302 and response.headers["Location"] == "/login/code":
        response = client.post(
            "/login/code",
            data={"code": next_code(email), "csrf_token": csrf_token(client, "/login/code")},
        )
    return response.status_code, response.headers.get("Location", "")


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ADMIN])  # the admin after a code
def test_sign_in_never_sends_anyone_off_the_site(app: Flask, world: World, role: Role) -> None:
    email = world.user("a", role).email
    enrol_if_required(email)
    signed_in = 0
    for value in HOSTILE:
        status, location = sign_in(app.test_client(), email, value)
        if status == 400:
            assert re.search(r"[\r\n]", value), value  # only a line break is refused outright
            continue
        assert status == 302, (value, status)
        assert lands_on_site(location), (value, location)
        signed_in += 1
    assert signed_in >= len(HOSTILE) - 5


def test_sign_in_goes_on_to_a_page_of_this_site(app: Flask, world: World) -> None:
    """The control: the check does not throw every `next` away."""
    email = world.user("a", Role.COORDINATOR).email
    status, location = sign_in(app.test_client(), email, "/patients?filter=open")
    assert (status, location) == (302, "/patients?filter=open")
