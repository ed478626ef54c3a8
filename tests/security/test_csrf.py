"""Every POST route refuses a form without its CSRF token, and the refusal changes nothing.

Generated from the URL map: each POST route, filled with real objects of the signed-in admin's
clinic (tests/security/routes.py), gets a post with no token, a made-up one, the valid token of
another browser's session, and its own valid token sent from another site (Origin): 400 each
time, and every table holds the same rows afterwards.

Two kinds of route are exempt from CSRFProtect, and only these: Twilio's webhooks, which prove
themselves with a signature, and an email's one-click unsubscribe (RFC 8058,
proms.security.CROSS_SITE_POSTS), which the token in its address authorises. Without their own
proof they are refused too, and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from proms.auth.models import Role, StaffUser
from proms.security import CROSS_SITE_POSTS, csrf
from tests.helpers import CSRF_RE, World, csrf_token
from tests.security.routes import changed_tables, database_rows, make_objects, rules, url

StaffClient = Callable[[StaffUser], FlaskClient]

# Exempt from the CSRF token, each with its own proof of who is asking.
SIGNED_WEBHOOKS = {"webhooks.twilio_inbound", "webhooks.twilio_status"}
TWILIO_TOKEN = "a" * 32


def _exempt(app: Flask, endpoint: str) -> bool:
    """Whether CSRFProtect leaves the endpoint alone (its own record of exemptions)."""
    view = app.view_functions[endpoint]
    blueprint = app.blueprints.get(endpoint.rpartition(".")[0])
    exempt_views: set[str] = csrf._exempt_views
    exempt_blueprints: set[object] = csrf._exempt_blueprints
    return f"{view.__module__}.{view.__name__}" in exempt_views or blueprint in exempt_blueprints


def _post_routes(app: Flask) -> list[str]:
    return [rule.endpoint for rule in rules(app) if "POST" in (rule.methods or ())]


def test_only_the_documented_routes_are_exempt(app: Flask) -> None:
    exempt = {endpoint for endpoint in _post_routes(app) if _exempt(app, endpoint)}
    assert exempt == SIGNED_WEBHOOKS | CROSS_SITE_POSTS, (
        "a POST route without CSRF needs its own proof of who is asking, and a test of it here"
    )


def test_every_post_without_a_valid_token_is_refused_and_changes_nothing(
    app: Flask, world: World, staff_client: StaffClient
) -> None:
    app.config["TWILIO_AUTH_TOKEN"] = TWILIO_TOKEN  # webhooks on: refused for their signature
    objects = make_objects(world, "a")
    admin = staff_client(world.user("a", Role.ADMIN))
    own_token = _token_of(admin)
    elsewhere = csrf_token(app.test_client(), "/login")  # valid, but another browser's
    attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no token", {}, {}),
        ("a made-up token", {"csrf_token": "IjQ2ZjE3ZGQ1In0.Z0Z0Zw.bm90LWEtdG9rZW4"}, {}),
        ("another browser's token", {"csrf_token": elsewhere}, {}),
        ("from another site", {"csrf_token": own_token}, {"Origin": "https://evil.example"}),
    ]
    problems: list[str] = []
    checked = 0
    before = database_rows()
    for rule in rules(app):
        if "POST" not in (rule.methods or ()):
            continue
        path = url(app, rule, objects)
        expected = 403 if rule.endpoint in SIGNED_WEBHOOKS else 400
        answers = []
        for name, form, headers in attempts:
            if name == "from another site" and rule.endpoint in SIGNED_WEBHOOKS | CROSS_SITE_POSTS:
                # Posted from elsewhere by design (Twilio, a mail client): no Origin check.
                continue
            status = admin.post(path, data=form, headers=headers).status_code
            answers.append(f"{name}: {status}")
            if status != expected:
                problems.append(f"POST {rule.rule} with {name}: {status} (not {expected})")
            checked += 1
        # Read once per route (every table, so it costs): a change names the route and what it
        # answered to each attempt.
        after = database_rows()
        changed = changed_tables(before, after)
        if changed:
            problems.append(f"POST {rule.rule} changed {changed} ({'; '.join(answers)})")
        before = after
    assert not problems, "\n".join(problems)
    assert checked >= 3 * 30
    # Still signed in: the refused posts (sign-out among them) did nothing to the session.
    assert admin.get("/patients").status_code == 200


def test_one_click_unsubscribe_needs_the_token_of_its_address(app: Flask, world: World) -> None:
    """The mail client's post carries no CSRF token and no cookie: a wrong address token is
    refused and changes nothing; the right one works (what the exemption is for)."""
    objects = make_objects(world, "a")
    client = app.test_client()
    one_click = {"List-Unsubscribe": "One-Click"}
    before = database_rows()
    wrong = client.post(f"/u/{objects.unsubscribe_token[:-2]}xy", data=one_click)
    assert wrong.status_code == 404
    assert changed_tables(before, database_rows()) == []
    right = client.post(f"/u/{objects.unsubscribe_token}", data=one_click)
    assert right.status_code == 200
    assert "patient" in changed_tables(before, database_rows())


def _token_of(client: FlaskClient) -> str:
    page = client.get("/password", follow_redirects=True)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no form on {page.request.path}"
    return match.group(1)
