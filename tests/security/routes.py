"""What the security tests share: every route of the URL map, filled with real objects.

`rules(app)` lists every route but static files; `url(app, rule, objects)` fills its arguments
from one clinic's `Objects` (a patient, a course, a link, ...), and fails the test, naming the
argument, when it does not know how: a new route whose arguments nobody described cannot slip
through the generated tests. `database_rows()` is everything stored, to show that a refused
request changed nothing; `protection_problems(response)`, what a response lacks of the
security headers and cookie flags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import sqlalchemy as sa
from flask import Flask, current_app
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from proms.admin.enrollment import enroll
from proms.admin.models import Channel
from proms.auth import tokens
from proms.auth.models import Role, StaffSession
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.db import Base, db, utcnow
from proms.outcomes.models import Alert, AlertKind, AlertTier
from proms.scheduling.links import link_max_age, mint_token
from proms.scheduling.models import (
    Assessment,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.security import REDIRECT_HEADERS, SECURITY_HEADERS
from tests.helpers import PASSWORD, World, patient_today


@dataclass
class Objects:
    """One of each object a URL can name, in a clinic, and the raw tokens of its links."""

    patient_id: int
    enrollment_id: int
    assessment_id: int
    protocol_id: int
    clinic_id: int
    user_id: int
    notification_id: int
    alert_id: int
    survey_token: str  # the patient's questionnaire link (/s/<token>)
    unsubscribe_token: str  # an email's unsubscribe link (/u/<token>)
    password_token: str  # a staff member's "choose a password" link (/password/<token>)
    staff_session_id: int  # a signed-in browser of the colleague (user_id)


def make_objects(world: World, clinic: str) -> Objects:
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
    now = utcnow()
    # Someone none of the test's browsers signs in as: signing them out, resetting their
    # two-step sign-in or their password changes nothing for the browsers being tested.
    colleague = create_staff(
        db.session,
        hasher_from_config(current_app.config),
        # Unique: some tests make a fresh set of objects for every case.
        email=f"colleague-{secrets.token_hex(4)}@{clinic}.example.org",
        full_name=f"colleague {clinic}",
        password=PASSWORD,
        clinic=world.clinic_a if clinic == "a" else world.clinic_b,
        role=Role.CLINICIAN,
    )
    their_browser = StaffSession(
        token_hash=hashlib.sha256(secrets.token_bytes(32)).digest(), user_id=colleague.id
    )
    db.session.add(their_browser)
    db.session.flush()
    objects = Objects(
        patient_id=patient.id,
        enrollment_id=enrollment.id,
        assessment_id=baseline.id,
        protocol_id=protocol.id,
        clinic_id=patient.clinic_id,
        user_id=colleague.id,
        notification_id=min(
            db.session.scalars(
                sa.select(Notification.id).where(Notification.assessment_id == baseline.id)
            )
        ),
        alert_id=_alert(baseline).id,
        survey_token=mint_token(
            db.session, baseline, now=now, max_age=link_max_age(current_app.config)
        ),
        unsubscribe_token=_sent_email(patient.id),
        password_token=tokens.mint(db.session, colleague, purpose=tokens.Purpose.RESET, now=now),
        staff_session_id=their_browser.id,
    )
    db.session.commit()
    return objects


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
    db.session.flush()
    return alert


def _sent_email(patient_id: int) -> str:
    """The raw unsubscribe token of an email sent to the patient (as the dispatcher makes it)."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        Notification(
            idempotency_key=f"test:{secrets.token_hex(8)}",
            patient_id=patient_id,
            kind=NotificationKind.INVITE,
            channel=Channel.EMAIL,
            send_after=now - dt.timedelta(hours=1),
            status=NotificationStatus.SENT,
            sent_at=now - dt.timedelta(minutes=30),
            attempts=1,
            unsubscribe_hash=hashlib.sha256(raw.encode()).digest(),
        )
    )
    return raw


# How to fill each URL argument, from the objects of a clinic. A new argument name needs a line
# here (and, if the object is new, a field of Objects made in make_objects).
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
    "number": lambda o: 1,  # the first question of a questionnaire
    "part": lambda o: 1,  # the first part of its review
    "session_id": lambda o: o.staff_session_id,
}
# An argument whose meaning depends on the route: `token` is a different link on each.
ENDPOINT_ARGUMENTS: dict[tuple[str, str], Callable[[Objects], object]] = {
    ("surveys.landing", "token"): lambda o: o.survey_token,
    ("surveys.start", "token"): lambda o: o.survey_token,
    ("surveys.new_link", "token"): lambda o: o.survey_token,
    ("surveys.unsubscribe", "token"): lambda o: o.unsubscribe_token,
    ("surveys.unsubscribe_confirm", "token"): lambda o: o.unsubscribe_token,
    ("auth.set_password", "token"): lambda o: o.password_token,
}


def rules(app: Flask) -> list[Rule]:
    """Every route but static files, in URL order."""
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"),
        key=lambda rule: (rule.rule, rule.endpoint),
    )


def methods(rule: Rule) -> list[str]:
    """The methods a route serves, HEAD and OPTIONS (answered by Flask itself) aside."""
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


class Unfillable(AssertionError):
    """A route has a URL argument that ARGUMENTS does not describe."""


def url(app: Flask, rule: Rule, objects: Objects) -> str:
    """The route's URL with the objects' values; Unfillable (a test failure) if one is unknown."""
    values = {}
    for name in sorted(rule.arguments):
        fill = ENDPOINT_ARGUMENTS.get((rule.endpoint, name)) or ARGUMENTS.get(name)
        if fill is None:
            raise Unfillable(
                f"{rule.rule} ({rule.endpoint}): tests/security/routes.py cannot fill "
                f"<{name}>: add it to ARGUMENTS (or ENDPOINT_ARGUMENTS)"
            )
        values[name] = fill(objects)
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def database_rows() -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order: two calls compare equal if nothing changed."""
    rows = {}
    for table in Base.metadata.sorted_tables:
        found = db.session.execute(sa.select(table)).all()
        rows[table.name] = sorted((tuple(row) for row in found), key=repr)
    db.session.rollback()  # end the read: the next request must not wait for this transaction
    return rows


def changed_tables(
    before: dict[str, list[tuple[object, ...]]], after: dict[str, list[tuple[object, ...]]]
) -> list[str]:
    return sorted(name for name in before if before[name] != after[name])


def protection_problems(response: TestResponse, *, secure: bool = True) -> list[str]:
    """What a response lacks of the security headers (proms.security) and cookie flags.

    A page gets every header of SECURITY_HEADERS and `Cache-Control: no-store`; a redirect, which
    renders nothing, the headers that act on it (REDIRECT_HEADERS) and no-store. Every cookie is
    HttpOnly and SameSite=Lax, and Secure unless `secure` is False (development's plain HTTP).
    """
    problems = []
    redirect = 300 <= response.status_code < 400 and "Location" in response.headers
    for name, value in (REDIRECT_HEADERS if redirect else SECURITY_HEADERS).items():
        if response.headers.get(name) != value:
            problems.append(f"{name}: {response.headers.get(name)!r}")
    if response.headers.get("Cache-Control") != "no-store":
        problems.append(f"Cache-Control: {response.headers.get('Cache-Control')!r}")
    for cookie in response.headers.getlist("Set-Cookie"):
        name, _, rest = cookie.partition("=")
        flags = {part.strip().lower() for part in rest.split(";")[1:]}
        wanted = {"httponly", "samesite=lax", *(["secure"] if secure else [])}
        if not wanted <= flags:
            problems.append(f"cookie {name} without {sorted(wanted - flags)}")
    return problems


def lands_on_site(location: str) -> bool:
    """Whether a browser that follows this Location stays on this site (http://localhost).

    WHATWG URL parsing in brief: tabs and line breaks removed, leading and trailing spaces and
    controls stripped, a backslash read as a slash in http(s) URLs, relative to the page.
    """
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00 ").replace("\\", "/")
    target = urlsplit(urljoin("http://localhost/login", cleaned))
    return target.scheme == "http" and target.hostname == "localhost" and not target.username
