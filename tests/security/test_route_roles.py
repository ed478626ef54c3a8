"""Every route has a role rule, and every rule holds: generated from the URL map.

For each endpoint: anonymous visitors are sent to sign in (or served, for public routes); each
role of the clinic the object belongs to gets through or gets 403 as the rule says; staff of
another clinic get 404 for the object and never see it. A new route without `@requires(...)` or
`@public` fails `test_every_route_declares_its_rule`, and one whose URL arguments this file
cannot fill in fails `test_every_route_is_checked` until ARGUMENTS says how.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from proms.admin.enrollment import enroll
from proms.auth.models import Role, StaffUser
from proms.db import db, utcnow
from proms.outcomes.models import Alert, AlertKind, AlertTier
from proms.scheduling.models import Assessment, Notification
from tests.helpers import World, csrf_token, patient_today

StaffClient = Callable[[StaffUser], FlaskClient]

# Routes served without sign-in. Anything else must be staff-only.
PUBLIC_BLUEPRINTS = {"surveys", "health", "webhooks"}
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.logout", "auth.set_password"}


@dataclass
class Objects:
    """One of each object a URL can name, in a clinic."""

    patient_id: int
    enrollment_id: int
    assessment_id: int
    protocol_id: int
    clinic_id: int
    user_id: int
    notification_id: int
    alert_id: int


def _objects(world: World, clinic: str) -> Objects:
    patients = world.patients_a if clinic == "a" else world.patients_b
    protocol = world.protocol_a if clinic == "a" else world.protocol_b
    patient = patients[0]
    enrollment = enroll(
        db.session,
        patient,
        protocol,
        patient_today(patient) + dt.timedelta(days=3),
        now=utcnow(),
    )
    db.session.commit()
    baseline: Assessment = enrollment.assessments[0]
    return Objects(
        patient_id=patient.id,
        enrollment_id=enrollment.id,
        assessment_id=baseline.id,
        protocol_id=protocol.id,
        clinic_id=patient.clinic_id,
        user_id=world.user(clinic, Role.CLINICIAN).id,
        notification_id=min(n.id for n in _messages(baseline)),
        alert_id=_alert(baseline).id,
    )


def _alert(assessment: Assessment) -> Alert:
    """An urgent alert at the time point (acknowledged and resolved by the role checks)."""
    patient = assessment.enrollment.patient
    alert = Alert(
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        assessment_id=assessment.id,
        kind=AlertKind.SEVERITY,
        tier=AlertTier.URGENT,
        rule="severity:peg:total>=8",
        timepoint_key=assessment.timepoint.key,
        detail={"instrument": "peg", "scale": "total", "value": 9.0, "unit": "points"},
    )
    db.session.add(alert)
    db.session.commit()
    return alert


def _messages(assessment: Assessment) -> list[Notification]:
    return list(
        db.session.scalars(select(Notification).where(Notification.assessment_id == assessment.id))
    )


# How to fill each URL argument, from the objects of a clinic.
ARGUMENTS: dict[str, Callable[[Objects], object]] = {
    "patient_id": lambda o: o.patient_id,
    "enrollment_id": lambda o: o.enrollment_id,
    "assessment_id": lambda o: o.assessment_id,
    "protocol_id": lambda o: o.protocol_id,
    "clinic_id": lambda o: o.clinic_id,
    "user_id": lambda o: o.user_id,
    "day": lambda o: 1,
    "notification_id": lambda o: o.notification_id,
    "alert_id": lambda o: o.alert_id,
}


def _rules(app: Flask) -> list[Rule]:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"),
        key=lambda rule: (rule.rule, rule.endpoint),
    )


def test_every_route_declares_its_rule(app: Flask) -> None:
    missing = [
        rule.endpoint
        for rule in _rules(app)
        if not hasattr(app.view_functions[rule.endpoint], "allowed_roles")
    ]
    assert not missing, f"routes without @requires(...) or @public: {missing}"


def test_public_routes_are_the_patient_side_and_sign_in(app: Flask) -> None:
    declared_public = {
        rule.endpoint
        for rule in _rules(app)
        if getattr(app.view_functions[rule.endpoint], "allowed_roles", ()) is None
    }
    unexpected = sorted(e for e in declared_public if not _is_public_endpoint(e))
    assert not unexpected, f"public routes that should be staff-only: {unexpected}"


def _is_public_endpoint(endpoint: str) -> bool:
    return endpoint in PUBLIC_ENDPOINTS or endpoint.partition(".")[0] in PUBLIC_BLUEPRINTS


def _url(app: Flask, rule: Rule, objects: Objects) -> str:
    unknown = set(rule.arguments) - ARGUMENTS.keys()
    if unknown:
        pytest.fail(f"{rule.rule}: add values for {sorted(unknown)} to ARGUMENTS")
    values = {name: ARGUMENTS[name](objects) for name in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def _request(client: FlaskClient, method: str, url: str, form_page: str = "/patients") -> int:
    """The status of a request; an unsafe one carries a valid CSRF token, so the role rule (not
    the CSRF check) decides."""
    if method == "GET":
        return client.get(url).status_code
    return client.open(
        url, method=method, data={"csrf_token": csrf_token(client, form_page)}
    ).status_code


def test_every_route_is_checked(app: Flask, world: World, staff_client: StaffClient) -> None:
    """Anonymous, each role of the object's clinic, and each role of the other clinic."""
    own = _objects(world, "a")
    other = _objects(world, "b")
    clients = {role: staff_client(world.user("a", role)) for role in Role}
    outsiders = {role: staff_client(world.user("b", role)) for role in Role}
    anonymous = app.test_client()
    checked = 0
    # Reads before actions: a POST that works (a withdrawal) must not change what later GETs see.
    rules = sorted(_rules(app), key=lambda r: ("GET" not in (r.methods or ()), r.rule))
    for rule in rules:
        if _is_public_endpoint(rule.endpoint):
            continue
        allowed = app.view_functions[rule.endpoint].allowed_roles
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = _url(app, rule, own)
            status = _request(anonymous, method, url, form_page="/login")
            assert status == 302, (rule.rule, "anonymous", method, status)
            for role, client in outsiders.items():
                if not rule.arguments:
                    continue  # a list of one's own clinics: nothing of clinic A to find
                status = _request(client, method, url)
                assert status == 404, (rule.rule, method, f"{role.value} of clinic b", status)
            for role, client in clients.items():
                status = _request(client, method, url)
                if role in allowed:
                    assert status not in (403, 404, 500), (rule.rule, method, role.value, status)
                else:
                    assert status == 403, (rule.rule, method, role.value, status)
            checked += 1
        # The other clinic's own objects stay reachable for its staff with the right role.
        if rule.arguments and "GET" in (rule.methods or ()):
            for role in allowed:
                status = outsiders[role].get(_url(app, rule, other)).status_code
                assert status not in (403, 404, 500), (rule.rule, "own clinic b", role.value)
    assert checked >= 20
