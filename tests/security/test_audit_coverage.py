"""Every view of patient data and every change is in the audit log: generated from the URL map.

For each staff route (not the patient side, not sign-in):
- a GET of a page that names a patient, or an object of one patient (a course, a questionnaire),
  adds an audit event;
- a POST adds one, when it does what it is for. The test does what a person would: it opens the
  page that holds the route's form, fills the form as it stands (a choice made, a reason typed,
  `CASES` says what to change), presses the button, and confirms a preview when there is one.

A new POST route fails `test_every_change_is_audited` until `CASES` says which page holds its
form (or it is `EXEMPT`, with the reason); a new kind of object in a URL fails until
tests/security/test_route_roles.py says how to fill it in (this test builds its objects there).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule

from proms.admin.enrollment import enroll
from proms.admin.models import Patient, Protocol
from proms.admin.protocol_editing import save_edit, spec_of
from proms.admin.services import BUNDLED_PROTOCOL, bundled_protocol, install_protocol
from proms.auth import mfa, sessions
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.auth.services import RequestInfo
from proms.db import db, utcnow
from proms.scheduling.models import Notification, NotificationStatus
from tests.helpers import PASSWORD, World, add_patient, login, patient_today
from tests.security import routes
from tests.security.routes import Objects
from tests.security.test_route_roles import is_public_endpoint

# URL arguments that name one patient's data: a GET of such a page is a view of patient data.
PATIENT_OBJECTS = {"patient_id", "enrollment_id", "assessment_id", "notification_id", "alert_id"}

# Pages that show patients without naming one in the URL: their GET is audited too.
PATIENT_LISTS = {"care.patients", "admin.worklist", "care.alerts"}

# Staff routes that change nothing, or change only the signed-in user's session, with why.
EXEMPT: dict[str, str] = {}

# Public routes that are audited all the same (their own tests check it): sign-in and sign-out
# (tests/auth/test_login.py), a password set with a one-time link (test_password_links.py).
# The patient side records what patients do in their answers, not in the audit log.


# Filling in forms as a browser would ------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: list[tuple[str, str, str, bool]] = field(default_factory=list)  # name, type, value, on
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, posts to

    def button(self, wanted: tuple[str, str] | None, action: str) -> tuple[str, str] | None:
        """The button that posts to `action`, named `wanted` (and with its value, if given);
        the first such if `wanted` is None."""
        for name, value, target in self.buttons:
            if target != action:
                continue
            if wanted is None or (name == wanted[0] and (not wanted[1] or value == wanted[1])):
                return name, value
        if wanted is None and not self.buttons and self.action == action:
            return "", ""  # a form sent with Enter
        return None

    def data(self, changes: dict[str, Any], button: tuple[str, str]) -> MultiDict[str, Any]:
        """What pressing `button` sends: the fields as they stand, one choice in each radio
        group (the first, if none is chosen), with `changes` instead of what they name."""
        sent: MultiDict[str, Any] = MultiDict()
        radios_chosen = {name for name, kind, _, on in self.fields if kind == "radio" and on}
        for name, kind, value, on in self.fields:
            if name in changes:
                continue
            if kind == "radio":
                if on or (name not in radios_chosen and name not in sent):
                    sent.add(name, value)
            elif kind != "checkbox" or on:
                sent.add(name, value)
        for name, value in changes.items():
            for item in value if isinstance(value, list) else [value]:
                sent.add(name, item)
        if button[0]:
            sent.add(*button)
        return sent


class _Forms(HTMLParser):
    """The POST forms of a page, with their controls."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page  # where a form without an action posts
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: list[str] | None = None
        self._textarea_name = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._form = Form(action=urlsplit(a.get("action") or self.page).path)
            self.forms.append(self._form)
        if self._form is None:
            return
        name = a.get("name", "")
        kind = a.get("type", "text").lower() if tag == "input" else tag
        if (tag == "input" and kind == "submit") or (tag == "button" and a.get("type") != "button"):
            target = urlsplit(a["formaction"]).path if a.get("formaction") else self._form.action
            self._form.buttons.append((name, a.get("value", ""), target))
        elif tag == "input" and name and kind != "file":
            self._form.fields.append((name, kind, a.get("value", ""), "checked" in a))
        elif tag == "select":
            self._select, self._options = name, []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._textarea_name = [], name

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            chosen = [value for value, on in self._options if on] or [
                value for value, _ in self._options[:1]
            ]
            for value in chosen:
                self._form.fields.append((self._select, "select", value, True))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._textarea).removeprefix("\n")
            self._form.fields.append((self._textarea_name, "textarea", text, True))
            self._textarea = None
        elif tag == "form":
            self._form = None


def _form(page: str, html: str, action: str, button: tuple[str, str] | None) -> Form | None:
    """The form on the page at `page` that posts to `action` and has the button."""
    parser = _Forms(urlsplit(page).path)
    parser.feed(html)
    return next((f for f in parser.forms if f.button(button, action) is not None), None)


# What each POST needs --------------------------------------------------------------------------


@dataclass
class Context:
    world: World
    objects: Objects
    client: FlaskClient
    number: int  # distinct per case: for unique names and MRNs


Values = Callable[[Context], dict[str, Any]]


@dataclass
class Case:
    """Where a POST route's form is and what a person changes in it before pressing the button."""

    page: str | None = None  # the endpoint of the page with the form; default: the route's own
    changes: Values = lambda _: {}
    button: tuple[str, str] | None = None  # (name, value) of the button pressed; default: any
    confirm: tuple[str, str] | None = None  # the button that confirms a preview (same action)
    setup: Callable[[Context], object] | None = None  # state the form needs first


def _day(days: int) -> Callable[[Context], str]:
    return lambda c: (patient_today(_patient(c)) + dt.timedelta(days=days)).isoformat()


def _patient(context: Context) -> Patient:
    found = db.session.get(Patient, context.objects.patient_id)
    assert found is not None
    return found


def _set_message(status: NotificationStatus) -> Callable[[Context], None]:
    def setup(context: Context) -> None:
        row = db.session.get(Notification, context.objects.notification_id)
        assert row is not None
        row.status = status
        if status is not NotificationStatus.PENDING:
            row.attempts = 1
        db.session.commit()

    return setup


def _opted_out(context: Context) -> None:
    patient = _patient(context)
    patient.opted_out_at = utcnow()
    patient.opt_out_reason = "asked on the phone"
    db.session.commit()


def _own_protocol(context: Context) -> Protocol:
    """A protocol of the case's own (the URL names it), so that no other case sees its edits."""
    spec = {**bundled_protocol(BUNDLED_PROTOCOL), "slug": f"own-{context.number}"}
    protocol = install_protocol(db.session, context.world.clinic_a, spec)
    db.session.commit()
    context.objects = dataclasses.replace(context.objects, protocol_id=protocol.id)
    return protocol


def _new_version(context: Context) -> None:
    """A course on the case's own protocol, then a version 2 of it: the course can move."""
    protocol = _own_protocol(context)
    patient = _patient(context)
    enroll(
        db.session, patient, protocol, patient_today(patient) + dt.timedelta(days=60), now=utcnow()
    )
    spec = spec_of(protocol)
    spec.name = f"{spec.name} (revised)"
    save_edit(db.session, protocol, spec, None)
    db.session.commit()


def _import_file(context: Context) -> dict[str, Any]:
    csv = (
        "mrn,given_name,family_name,birth_date,email,protocol,anchor_date\n"
        f"IMP{context.number},Ida,Import,1961-02-03,ida{context.number}@example.org,"
        f"ketamine-infusion-course,{_day(40)(context)}\n"
    )
    return {"file": (io.BytesIO(csv.encode()), "patients.csv")}


def _acting_admin(context: Context) -> StaffUser:
    db.session.expire_all()
    return context.world.user("a", Role.ADMIN)


def _turn_two_step_off(context: Context) -> None:
    """The acting admin has not set it up yet (as if reset): the set-up page shows a key."""
    mfa.reset(db.session, _acting_admin(context))
    db.session.commit()


def _code_of_the_key_shown(context: Context) -> dict[str, Any]:
    """What the phone app shows for the key the set-up page just offered."""
    secret = _acting_admin(context).mfa_pending_secret
    assert secret is not None
    return {"code": mfa.code_at(secret, mfa.time_step(utcnow()))}


def _another_browser(context: Context) -> None:
    """The acting admin is signed in somewhere else too; the URL names that session."""
    record, _raw = sessions.start(
        db.session, _acting_admin(context), now=utcnow(), origin=RequestInfo()
    )
    db.session.commit()
    context.objects = dataclasses.replace(context.objects, staff_session_id=record.id)


def _colleague_has_two_step(context: Context) -> None:
    user = db.session.get(StaffUser, context.objects.user_id)
    assert user is not None
    user.mfa_secret = mfa.new_secret()
    user.mfa_enabled_at = utcnow()
    db.session.commit()


CASES: dict[str, Case] = {
    "admin.paper_answers": Case(changes=lambda c: {"source": "paper"}),
    "admin.edit_clinic": Case(changes=lambda c: {"name": f"Clinic A {c.number}"}),
    "admin.install_bundled_protocol": Case(
        page="admin.protocols",
        setup=lambda c: _retire_bundled(c),
    ),
    "admin.new_protocol": Case(
        changes=lambda c: {
            "slug": f"new-{c.number}",
            "name": f"New protocol {c.number}",
            "timepoints-0-key": "baseline",
            "timepoints-0-label": "Baseline",
            "timepoints-0-offset_days": "0",
            "timepoints-0-instruments": "peg",
        },
        button=("save", "y"),
    ),
    "admin.staff_member": Case(button=("action", "deactivate")),
    "admin.invite_staff": Case(
        changes=lambda c: {
            "email": f"invited{c.number}@a.example.org",
            "full_name": "Ivy Invited",
            "roles": ["clinician"],
        }
    ),
    "admin.change_anchor": Case(changes=lambda c: {"anchor_on": _day(5)(c)}, confirm=("save", "")),
    "admin.record_day": Case(page="admin.enrollment", changes=lambda c: {"day1-outcome": "given"}),
    "admin.withdraw": Case(changes=lambda c: {"reason": "moved away"}),
    "admin.import_enrollments": Case(changes=_import_file, confirm=("", "")),
    "admin.mark_message_sent": Case(
        page="admin.worklist", setup=_set_message(NotificationStatus.UNKNOWN)
    ),
    "admin.resend_message": Case(
        page="admin.worklist", setup=_set_message(NotificationStatus.FAILED)
    ),
    "admin.send_message_now": Case(page="admin.enrollment"),
    "auth.change_password": Case(
        changes=lambda c: {
            "current_password": PASSWORD,
            "new_password": "another horse battery",
            "confirm": "another horse battery",
        }
    ),
    "care.patients": Case(changes=lambda c: {"q": "Test"}),
    "admin.edit_patient": Case(changes=lambda c: {"given_name": f"Renamed{c.number}"}),
    "admin.enroll": Case(
        changes=lambda c: {"anchor_on": _day(200)(c)},
        confirm=("save", ""),
    ),
    "care.make_link": Case(page="care.patient"),
    "admin.opt_in": Case(page="care.patient", setup=_opted_out),
    "admin.opt_out": Case(page="care.patient", changes=lambda c: {"reason": "no more"}),
    "admin.new_patient": Case(
        changes=lambda c: {
            "mrn": f"NEW{c.number}",
            "given_name": "Nora",
            "family_name": "New",
            "birth_on": "1970-01-02",
            "email": f"nora{c.number}@example.org",
        }
    ),
    "admin.edit_protocol": Case(
        changes=lambda c: {"name": f"Renamed protocol {c.number}"},
        button=("save", "y"),
        setup=_own_protocol,
    ),
    "admin.move_version": Case(setup=_new_version),
    "care.add_note": Case(page="care.patient", changes=lambda c: {"text": "Called: feels better."}),
    "care.download_export": Case(page="care.exports_page"),
    "care.acknowledge_alert": Case(page="care.patient"),
    "care.resolve_alert": Case(page="care.patient"),
    "auth.two_step_setup": Case(setup=_turn_two_step_off, changes=_code_of_the_key_shown),
    "auth.new_recovery_codes": Case(page="auth.account"),
    "auth.end_session": Case(page="auth.account", setup=_another_browser),
    "auth.end_other_sessions": Case(page="auth.account", setup=_another_browser),
    "admin.sign_out_everywhere": Case(page="admin.staff_member"),
    "admin.reset_two_step": Case(page="admin.staff_member", setup=_colleague_has_two_step),
}


def _retire_bundled(context: Context) -> None:
    """The clinic without the bundled protocol, so that its install button shows."""
    protocol = context.world.protocol_a
    protocol.slug = f"renamed-{context.number}"
    db.session.commit()


# The walk --------------------------------------------------------------------------------------


def _rule(app: Flask, endpoint: str) -> Rule:
    return next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)


def _audit_count() -> int:
    with db.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one()


def _user(world: World, allowed: frozenset[Role]) -> StaffUser:
    return world.user("a", Role.ADMIN if Role.ADMIN in allowed else sorted(allowed)[0])


def _client(app: Flask, user: StaffUser) -> FlaskClient:
    client = app.test_client()
    assert login(client, user.email).status_code == 302
    return client


_numbers = itertools.count(1)


def _fresh(world: World) -> Objects:
    """One of each object, of a patient no other case has touched."""
    patient = add_patient(world.clinic_a, f"AUD{next(_numbers)}")
    db.session.commit()
    with_patient = dataclasses.replace(world, patients_a=[patient, *world.patients_a])
    return routes.make_objects(with_patient, "a")


def _staff_rules(app: Flask, method: str) -> list[Rule]:
    return [
        rule
        for rule in routes.rules(app)
        if not is_public_endpoint(rule.endpoint) and method in (rule.methods or set())
    ]


def _shows_patients(rule: Rule) -> bool:
    return bool(PATIENT_OBJECTS & set(rule.arguments)) or rule.endpoint in PATIENT_LISTS


def test_every_view_of_patient_data_is_audited(app: Flask, world: World) -> None:
    missing = []
    rules = [rule for rule in _staff_rules(app, "GET") if _shows_patients(rule)]
    assert len(rules) >= 6
    clients: dict[int, FlaskClient] = {}
    for rule in rules:
        user = _user(world, app.view_functions[rule.endpoint].allowed_roles)
        client = clients.setdefault(user.id, _client(app, user))
        url = routes.url(app, rule, _fresh(world))
        before = _audit_count()
        response = client.get(url)
        assert response.status_code == 200, (rule.rule, response.status_code)
        if _audit_count() == before:
            missing.append(rule.endpoint)
    assert not missing, f"pages that show patient data without an audit event: {missing}"


def test_every_change_is_audited(app: Flask, world: World) -> None:
    rules = [rule for rule in _staff_rules(app, "POST") if rule.endpoint not in EXEMPT]
    unknown = sorted(rule.endpoint for rule in rules if rule.endpoint not in CASES)
    assert not unknown, f"add these POST routes to CASES (or EXEMPT, with the reason): {unknown}"
    # Each route signs in afresh: some forty sign-ins from one address within the minute.
    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"
    missing, problems = [], []
    # The password change last: the others sign in with the password it changes.
    rules.sort(key=lambda rule: (rule.endpoint == "auth.change_password", rule.rule))
    for rule in rules:
        case = CASES[rule.endpoint]
        user = _user(world, app.view_functions[rule.endpoint].allowed_roles)
        client = _client(app, user)
        context = Context(world, _fresh(world), client, next(_numbers))
        if case.setup is not None:
            case.setup(context)
        action = routes.url(app, rule, context.objects)
        page = routes.url(app, _rule(app, case.page), context.objects) if case.page else action
        before = _audit_count()
        problem = _press(client, page, action, case, context)
        if problem:
            problems.append(f"{rule.endpoint}: {problem}")
        elif _audit_count() == before:
            missing.append(rule.endpoint)
    assert not problems, "the test could not do what these routes are for:\n" + "\n".join(problems)
    assert not missing, f"changes without an audit event: {missing}"


def _press(client: FlaskClient, page: str, action: str, case: Case, context: Context) -> str:
    """Fill and send the form; '' when the route did its work, else what went wrong."""
    shown = client.get(page)
    if shown.status_code != 200:
        return f"GET {page}: {shown.status_code}"
    form = _form(page, shown.get_data(as_text=True), action, case.button)
    if form is None:
        return f"no form posting to {action} on {page} (with the button {case.button})"
    button = form.button(case.button, action)
    assert button is not None
    response = client.post(action, data=form.data(case.changes(context), button))
    if case.confirm is not None:
        if response.status_code != 200:
            return f"POST {action}: {response.status_code}, not a preview to confirm"
        confirm = case.confirm if case.confirm[0] else None
        preview = _form(action, response.get_data(as_text=True), action, confirm)
        if preview is None:
            return f"no confirmation form after the preview of {action}"
        pressed = preview.button(confirm, action)
        assert pressed is not None
        response = client.post(action, data=preview.data({}, pressed))
    body = response.get_data(as_text=True)  # all of it: a download is audited as it ends
    if response.status_code >= 400:
        return f"POST {action}: {response.status_code} {body[:2000]}"
    return ""
