"""Every form the fuzzer posts to: its endpoint, whose browser sends it, and the page it is on.

The list is checked against the URL map (tests/fuzz/test_coverage.py): a route that takes a POST
and has no entry here, in WEBHOOKS or in OWN_TESTS fails that test, which names it. A target
names only the page; the fields come from the page itself (tests/fuzz/harness.py), so a field
added to a form is fuzzed without a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.db import db
from tests.fuzz.formclasses import hidden_fields
from tests.fuzz.harness import PageField, PageForm, form_for, page_forms
from tests.fuzz.world import FuzzWorld
from tests.helpers import csrf_token, login

ClientMaker = Callable[[Flask, FuzzWorld], FlaskClient]


def anonymous(app: Flask, fw: FuzzWorld) -> FlaskClient:
    return app.test_client()


def admin(app: Flask, fw: FuzzWorld) -> FlaskClient:
    client = app.test_client()
    response = login(client, fw.admin.email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def survey_started(app: Flask, fw: FuzzWorld) -> FlaskClient:
    """A patient who pressed Start on her link (the date-of-birth page is next)."""
    client = app.test_client()
    token = csrf_token(client, f"/s/{fw.survey_token}")
    response = client.post(f"/s/{fw.survey_token}", data={"csrf_token": token})
    assert response.status_code == 303, response.status_code
    return client


def survey_checked(app: Flask, fw: FuzzWorld) -> FlaskClient:
    """A patient past the date-of-birth check: the questions are open to her."""
    client = survey_started(app, fw)
    born = fw.patient.birth_on
    response = client.post(
        "/s/check",
        data={
            "day": born.day,
            "month": born.month,
            "year": born.year,
            "csrf_token": csrf_token(client, "/s/check"),
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


@dataclass(frozen=True)
class Target:
    """A POST endpoint and how to reach its form."""

    endpoint: str
    client: ClientMaker
    page: Callable[[FuzzWorld], str] | None = None  # None: the page is the form's own URL
    url: Callable[[FuzzWorld], dict[str, Any]] = lambda fw: {}  # URL arguments beyond the world's
    form_endpoint: str | None = None  # the form's action, when a button posts elsewhere
    # The form is not on the page in this world's state (e.g. "Opt back in" of a patient who
    # has not opted out): these fields (beside the CSRF token) are posted instead.
    absent_ok: tuple[str, ...] | None = None
    # Statuses of a request the view acted on: only these may change saved rows.
    accepted: frozenset[int] = frozenset({302, 303})
    extra_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def path(self, app: Flask, fw: FuzzWorld, endpoint: str | None = None) -> str:
        return build_url(app, endpoint or self.endpoint, {**fw.url_values(), **self.url(fw)})

    def form(self, app: Flask, client: FlaskClient, fw: FuzzWorld) -> PageForm:
        action = self.path(app, fw, self.form_endpoint)
        page = self.page(fw) if self.page else action
        if self.absent_ok is None:
            return with_hidden_fields(form_for(client, page, action))
        forms = page_forms(client, page)
        # A page that redirected (no state for it in this world) has no token: another page's
        # is the session's all the same (the sign-in page's, or the sign-out button's).
        token = next((f.token() for f in forms if f.token()), None)
        for other in ("/login", "/patients"):
            token = token or next((f.token() for f in page_forms(client, other) if f.token()), None)
        assert token, f"no CSRF token for {action}"
        found = [f for f in forms if f.action == action and f.method == "POST"]
        if found:
            return with_hidden_fields(found[0])
        fields = [PageField("csrf_token", "hidden", [token])]
        fields += [PageField(name, "text") for name in self.absent_ok]
        return PageForm(action=action, method="POST", enctype="", fields=fields)


def with_hidden_fields(form: PageForm) -> PageForm:
    """The page's form plus the fields of its class that the page does not show."""
    extra = [PageField(name, "from class") for name in sorted(hidden_fields(form.names()))]
    return PageForm(form.action, form.method, form.enctype, [*form.fields, *extra])


def build_url(app: Flask, endpoint: str, values: Mapping[str, Any]) -> str:
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.rule}: give {sorted(missing)} in FuzzWorld.url_values"
    arguments = {name: values[name] for name in rule.arguments}
    return app.url_map.bind("localhost").build(endpoint, arguments)


def _patient_page(fw: FuzzWorld) -> str:
    return f"/patients/{fw.patient.id}"


def _staff_page(fw: FuzzWorld) -> str:
    values = fw.url_values()
    return f"/clinics/{values['clinic_id']}/staff/{values['user_id']}"


def _latest_session() -> int:
    """The admin's own session (signed in last): ending it is a request like any other."""
    latest = db.session.execute(sa.text("SELECT max(id) FROM staff_session")).scalar()
    return int(latest or 1)


TARGETS: list[Target] = [
    # Staff sign-in and passwords.
    Target("auth.login", anonymous, accepted=frozenset({302})),
    Target("auth.logout", admin, page=lambda fw: "/patients"),
    Target("auth.change_password", admin),
    Target(
        "auth.set_password",
        anonymous,
        url=lambda fw: {"token": fw.password_token},
    ),
    # Patients, courses and messages.
    Target("care.patients", admin, accepted=frozenset()),  # a search saves nothing
    Target("admin.new_patient", admin),
    Target("admin.edit_patient", admin),
    Target("admin.enroll", admin),
    Target("admin.opt_out", admin, page=_patient_page),
    Target("admin.opt_in", admin, page=_patient_page, absent_ok=()),
    # The new link is shown on a page of its own (200).
    Target("care.make_link", admin, page=_patient_page, accepted=frozenset({200, 302, 303})),
    Target("care.add_note", admin, page=_patient_page),
    Target("admin.change_anchor", admin),
    Target("admin.withdraw", admin),
    Target("admin.record_day", admin, page=lambda fw: f"/enrollments/{fw.enrollment.id}"),
    Target("admin.paper_answers", admin),
    Target(
        "admin.send_message_now",
        admin,
        page=lambda fw: f"/enrollments/{fw.enrollment.id}",
        absent_ok=(),
    ),
    Target("admin.mark_message_sent", admin, page=lambda fw: "/worklist", absent_ok=()),
    Target("admin.resend_message", admin, page=lambda fw: "/worklist", absent_ok=()),
    # Alerts.
    Target("care.acknowledge_alert", admin, page=lambda fw: "/alerts"),
    Target(
        "care.resolve_alert",
        admin,
        page=lambda fw: "/alerts",
        form_endpoint="care.acknowledge_alert",
    ),
    # Exports (a 200 is the file: nothing saved changes either way).
    Target("care.download_export", admin, page=lambda fw: "/exports", accepted=frozenset()),
    # Clinic settings, staff and protocols.
    Target("admin.edit_clinic", admin),
    Target("admin.invite_staff", admin),
    Target("admin.staff_member", admin),
    # Offered only while a clinic has no protocol; this one has.
    Target("admin.install_bundled_protocol", admin, page=lambda fw: "/protocols", absent_ok=()),
    Target("admin.new_protocol", admin),
    Target("admin.edit_protocol", admin),
    # Offered only when a newer version exists; this world has one version.
    Target(
        "admin.move_version",
        admin,
        page=lambda fw: f"/protocols/{fw.world.protocol_a.id}",
        absent_ok=("enrollment",),
    ),
    # Two-step sign-in and staff sessions (shown only in the states they apply to).
    Target("auth.login_code", anonymous, absent_ok=("code",)),
    Target("auth.two_step_setup", admin, absent_ok=("code",)),
    # New codes are shown on a page of their own (200).
    Target(
        "auth.new_recovery_codes",
        admin,
        page=lambda fw: "/account",
        absent_ok=(),
        accepted=frozenset({200, 302, 303}),
    ),
    Target("auth.end_other_sessions", admin, page=lambda fw: "/account", absent_ok=()),
    Target(
        "auth.end_session",
        admin,
        page=lambda fw: "/account",
        url=lambda fw: {"session_id": _latest_session()},
        absent_ok=(),
    ),
    Target("admin.sign_out_everywhere", admin, page=_staff_page, absent_ok=()),
    Target("admin.reset_two_step", admin, page=_staff_page, absent_ok=()),
    # The patient's pages.
    Target(
        "surveys.start",
        anonymous,
        page=lambda fw: f"/s/{fw.survey_token}",
        url=lambda fw: {"token": fw.survey_token},
    ),
    Target(
        "surveys.new_link",
        anonymous,
        page=lambda fw: f"/s/{fw.expired_token}",
        url=lambda fw: {"token": fw.expired_token},
        accepted=frozenset({200, 303}),
    ),
    Target("surveys.identity", survey_started),
    Target("surveys.question", survey_checked),
    Target("surveys.submit", survey_checked, page=lambda fw: "/s/review"),
    Target(
        "surveys.unsubscribe_confirm",
        anonymous,
        page=lambda fw: f"/u/{fw.unsubscribe_token}",
        url=lambda fw: {"token": fw.unsubscribe_token},
        accepted=frozenset({200, 303}),
    ),
]

# POST routes with tests of their own in this folder.
WEBHOOKS = {"webhooks.twilio_inbound", "webhooks.twilio_status"}  # test_webhooks.py
OWN_TESTS = {"admin.import_enrollments"}  # test_import.py (a CSV file, then its preview)
