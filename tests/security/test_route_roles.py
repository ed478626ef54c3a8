"""Every route has a role rule, and every rule holds: generated from the URL map.

Each route and method is tried by an anonymous visitor, by each role of the clinic its objects
belong to, and by each role of another clinic, and each gets exactly the status expected:

- a staff route: anonymous visitors are sent to sign in; a role the rule names gets the status in
  ALLOWED (its page, or what its form says to a post that carries only a CSRF token); any other
  role gets 403; every role of another clinic gets 404 for the object (a route without an object
  shows one's own clinic, so there another clinic's staff are like clinic A's), while one of its
  permitted roles still gets its own clinic's object;
- a public route (the patient side, sign-in, health checks): the status in PUBLIC, for everyone
  (SIGNED_IN where a signed-in staff member gets something else).

Every answer is also checked for the security headers and cookie flags (`protection_problems`),
and every request carries `?next=https://evil.example/`: no route may redirect there.

A new route fails here until it is described: without `@requires(...)` or `@public`
(`test_every_route_declares_its_rule`), with URL arguments tests/security/routes.py cannot fill
(`url`), or without its expected status (the failure lists what each route got, to be checked
and copied into ALLOWED or PUBLIC).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from proms.auth.models import Role, StaffUser
from tests.helpers import CSRF_RE, World
from tests.security.routes import (
    Unfillable,
    lands_on_site,
    make_objects,
    methods,
    protection_problems,
    rules,
    url,
)

StaffClient = Callable[[StaffUser], FlaskClient]
Expected = int | frozenset[int]

# Routes served without sign-in. Anything else must be staff-only.
PUBLIC_BLUEPRINTS = {"surveys", "health", "webhooks"}
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.login_code", "auth.logout", "auth.set_password"}

# A permitted role's status on each staff route. GET: the page. POST: the answer to a form that
# carries nothing but a valid CSRF token (400: the form says what is missing; 303: an action
# that needs no fields, done). A set where the first permitted role's action changes what the
# next one gets (the alert it acknowledged is acknowledged).
ALLOWED: dict[tuple[str, str], Expected] = {
    ("index", "GET"): 302,  # to the role's own start page
    ("care.alerts", "GET"): 200,
    ("care.acknowledge_alert", "POST"): 303,
    ("care.resolve_alert", "POST"): 303,
    ("admin.paper_answers", "GET"): 200,
    ("admin.paper_answers", "POST"): 400,
    ("admin.audit_log", "GET"): 200,
    ("admin.clinics", "GET"): 200,
    ("admin.clinic", "GET"): 200,
    ("admin.edit_clinic", "GET"): 200,
    ("admin.edit_clinic", "POST"): 400,
    ("admin.install_bundled_protocol", "POST"): 303,
    ("admin.new_protocol", "GET"): 200,
    ("admin.new_protocol", "POST"): 400,
    ("admin.staff_member", "GET"): 200,
    ("admin.staff_member", "POST"): 400,
    ("admin.invite_staff", "GET"): 200,
    ("admin.invite_staff", "POST"): 400,
    ("admin.enrollment", "GET"): 200,
    ("admin.change_anchor", "GET"): 200,
    ("admin.change_anchor", "POST"): 400,
    ("admin.record_day", "POST"): 400,
    ("admin.withdraw", "GET"): 200,
    ("admin.withdraw", "POST"): 400,
    ("care.exports_page", "GET"): 200,
    ("care.download_export", "POST"): 400,
    ("admin.import_enrollments", "GET"): 200,
    ("admin.import_enrollments", "POST"): 400,
    ("care.instruments", "GET"): 200,
    ("admin.mark_message_sent", "POST"): 303,
    ("admin.resend_message", "POST"): 303,
    ("admin.send_message_now", "POST"): 303,
    ("auth.change_password", "GET"): 200,
    ("auth.change_password", "POST"): 400,
    ("care.patients", "GET"): 200,
    ("care.patients", "POST"): 200,  # the search
    ("care.patient", "GET"): 200,
    ("admin.edit_patient", "GET"): 200,
    ("admin.edit_patient", "POST"): 303,  # fields left out keep their values
    ("admin.enroll", "GET"): 200,
    ("admin.enroll", "POST"): 400,
    ("care.make_link", "POST"): 200,  # the new link, shown once
    ("care.add_note", "POST"): 400,
    ("admin.opt_in", "POST"): 303,
    ("admin.opt_out", "POST"): 400,
    ("care.summary", "GET"): 200,
    ("admin.new_patient", "GET"): 200,
    ("admin.new_patient", "POST"): 400,
    ("admin.protocols", "GET"): 200,
    ("admin.protocol", "GET"): 200,
    ("admin.edit_protocol", "GET"): 200,
    ("admin.edit_protocol", "POST"): 400,
    ("admin.move_version", "GET"): 303,  # nobody to move: back to the protocol
    ("admin.move_version", "POST"): 303,
    ("care.cohort", "GET"): 200,
    ("care.cohort_csv", "GET"): 200,
    ("admin.worklist", "GET"): 200,
    ("auth.account", "GET"): 200,
    ("auth.end_other_sessions", "POST"): 303,
    ("auth.end_session", "POST"): 404,  # the colleague's browser: nobody else's sessions
    ("admin.sign_out_everywhere", "POST"): 303,
    ("admin.reset_two_step", "POST"): 303,
    # Admins always use two-step sign-in (so have it set up); the others of the test do not.
    ("auth.two_step_setup", "GET"): frozenset({200, 303}),
    ("auth.two_step_setup", "POST"): frozenset({303, 400}),
    ("auth.new_recovery_codes", "POST"): frozenset({200, 400}),
}

# What everyone gets from each public route, with the objects of tests/security/routes.py (an
# open questionnaire's link, an email's unsubscribe link, a password link). POST: a form with
# only a valid CSRF token. The survey pages after the link need the survey cookie, which only
# the link's Start gives.
PUBLIC: dict[tuple[str, str], Expected] = {
    ("auth.login", "GET"): 200,
    ("auth.login", "POST"): 400,
    ("auth.login_code", "GET"): 302,  # no password given yet: back to sign in
    ("auth.login_code", "POST"): 302,
    ("auth.logout", "POST"): 302,
    ("auth.set_password", "GET"): 200,
    ("auth.set_password", "POST"): 400,
    ("health.healthz", "GET"): 200,
    ("health.readyz", "GET"): 503,  # tests build tables with create_all: no migration is at head
    ("surveys.landing", "GET"): 200,
    ("surveys.start", "POST"): 303,
    ("surveys.new_link", "POST"): 303,
    ("surveys.identity", "GET"): 403,
    ("surveys.identity", "POST"): 303,
    ("surveys.question", "GET"): 403,
    ("surveys.question", "POST"): 400,
    ("surveys.review", "GET"): 403,
    ("surveys.review_part", "GET"): 403,
    ("surveys.submit", "POST"): 303,
    ("surveys.done", "GET"): 403,
    ("surveys.unsubscribe", "GET"): 200,
    ("surveys.unsubscribe_confirm", "POST"): 303,
    ("webhooks.twilio_inbound", "POST"): 404,  # off: no TWILIO_AUTH_TOKEN
    ("webhooks.twilio_status", "POST"): 404,
}
# Where a signed-in staff member gets something else than PUBLIC says.
SIGNED_IN: dict[tuple[str, str], Expected] = {
    ("auth.login", "GET"): 302,  # signed in already: to the start page
    ("auth.login", "POST"): 302,
}


def test_every_route_declares_its_rule(app: Flask) -> None:
    missing = [
        rule.endpoint
        for rule in rules(app)
        if not hasattr(app.view_functions[rule.endpoint], "allowed_roles")
    ]
    assert not missing, f"routes without @requires(...) or @public: {missing}"


def test_public_routes_are_the_patient_side_and_sign_in(app: Flask) -> None:
    unexpected = sorted(
        rule.endpoint
        for rule in rules(app)
        if _allowed(app, rule) is None and not is_public_endpoint(rule.endpoint)
    )
    assert not unexpected, f"public routes that should be staff-only: {unexpected}"


def test_no_expected_status_is_left_for_a_route_that_is_gone(app: Flask) -> None:
    served = {(rule.endpoint, method) for rule in rules(app) for method in methods(rule)}
    stale = sorted((ALLOWED.keys() | PUBLIC.keys() | SIGNED_IN.keys()) - served)
    assert not stale, f"expected statuses of routes that no longer exist: {stale}"


def _allowed(app: Flask, rule: Rule) -> frozenset[Role] | None:
    allowed: frozenset[Role] | None = app.view_functions[rule.endpoint].allowed_roles
    return allowed


def is_public_endpoint(endpoint: str) -> bool:
    return endpoint in PUBLIC_ENDPOINTS or endpoint.partition(".")[0] in PUBLIC_BLUEPRINTS


def _matches(status: int, expected: Expected) -> bool:
    return status in expected if isinstance(expected, frozenset) else status == expected


# Sent to every route: whatever redirects, nothing follows a `next` off the site.
HOSTILE_NEXT = {"next": "https://evil.example/"}


class Visitor:
    """A browser: anonymous or signed in, with the CSRF token of its session."""

    def __init__(self, name: str, client: FlaskClient, role: Role | None, clinic: str) -> None:
        self.name, self.client, self.role, self.clinic = name, client, role, clinic
        page = client.get("/login" if role is None else "/password", follow_redirects=True)
        match = CSRF_RE.search(page.get_data(as_text=True))
        assert match, f"{name}: no form (so no CSRF token) on {page.request.path}"
        self.token = match.group(1)

    def request(self, method: str, path: str) -> TestResponse:
        """An unsafe request carries the session's valid CSRF token, so that the rule (not the
        CSRF check) decides."""
        data = None if method == "GET" else {"csrf_token": self.token}
        return self.client.open(path, method=method, data=data, query_string=HOSTILE_NEXT)


def _order(pair: tuple[Rule, str]) -> tuple[bool, bool, str, str]:
    """Reads before actions (a POST that works must not change what later GETs see), and
    signing out last of all."""
    rule, method = pair
    return (rule.endpoint == "auth.logout", method != "GET", rule.rule, method)


def test_every_route_for_everyone(app: Flask, world: World, staff_client: StaffClient) -> None:
    own = make_objects(world, "a")
    other = make_objects(world, "b")
    visitors = [Visitor("anonymous", app.test_client(), None, "a")]
    for clinic in ("a", "b"):
        for role in Role:
            client = staff_client(world.user(clinic, role))
            visitors.append(Visitor(f"{role.value} of clinic {clinic}", client, role, clinic))

    wrong: list[str] = []
    undescribed: dict[tuple[str, str], set[int]] = {}
    pairs = sorted(((rule, method) for rule in rules(app) for method in methods(rule)), key=_order)
    for rule, method in pairs:
        key = (rule.endpoint, method)
        allowed = _allowed(app, rule)
        try:
            path = url(app, rule, own)
        except Unfillable as exc:
            wrong.append(str(exc))
            continue
        for visitor in visitors:
            if visitor.clinic == "b" and not rule.arguments:
                # Nothing of clinic A to find: on a route without an object (a list of one's own
                # clinic; a public page) another clinic's staff are like clinic A's.
                continue
            response = visitor.request(method, path)
            status, location = response.status_code, response.headers.get("Location", "")
            if location and not lands_on_site(location):
                wrong.append(f"{method} {rule.rule}: {visitor.name} sent to {location!r}")
            # Whatever the answer, it carries the security headers and cookie flags.
            wrong.extend(
                f"{method} {rule.rule}: {visitor.name} got {status} without {problem}"
                for problem in protection_problems(response)
            )
            if allowed is None:
                expected = SIGNED_IN.get(key, PUBLIC.get(key)) if visitor.role else PUBLIC.get(key)
            elif visitor.role is None:
                expected = 302
                if not location.startswith("/login"):
                    wrong.append(f"{method} {rule.rule}: anonymous sent to {location!r}")
            elif visitor.clinic == "b" and rule.arguments:
                expected = 404  # clinic A's object: not found, whatever the role
            elif visitor.role in allowed:
                expected = ALLOWED.get(key)
            else:
                expected = 403
            if expected is None:
                undescribed.setdefault(key, set()).add(status)
            elif not _matches(status, expected):
                wrong.append(f"{method} {rule.rule}: {visitor.name} got {status}, not {expected}")
        # The other clinic's own objects stay reachable for its staff (one permitted role): the
        # 404s above are about the clinic, not a broken page.
        if allowed and rule.arguments and method == "GET":
            visitor = next(v for v in visitors if v.clinic == "b" and v.role in allowed)
            status = visitor.request(method, url(app, rule, other)).status_code
            if not _matches(status, ALLOWED.get(key, 0)):
                wrong.append(f"GET {rule.rule} of clinic b: {visitor.name} got {status}")
    if undescribed:
        wrong.append("routes without an expected status (check what they got, then add):")
        wrong.extend(f"    {key}: {sorted(found)}," for key, found in sorted(undescribed.items()))
    assert not wrong, "\n".join(wrong)
