"""Clinic scoping: staff see only the patients of the clinics they belong to.

The requirement: a clinician of clinic A gets 404 for any patient of clinic B, on every route that
shows patient data; staff see only their clinics' patients; every patient view is audited.

The routes are not a hand-written list: every rule of the URL map with a `patient_id` argument is
tested, so a new patient page is covered the day it is added (and a rule with further arguments
fails here until this file says how to fill them in).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from proms import create_app
from proms.admin.models import Patient
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.auth.roles import CARE_TEAM
from proms.auth.services import grant
from proms.db import db
from tests.helpers import World, add_patient, csrf_token

StaffClient = Callable[[StaffUser], FlaskClient]

# Values for route arguments other than patient_id, by endpoint (none needed yet).
OTHER_ARGUMENTS: dict[str, dict[str, object]] = {}

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _patient_rules(app: Flask) -> list[Rule]:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if "patient_id" in rule.arguments),
        key=lambda rule: rule.rule,
    )


def _probe_rules(*, shown_only: bool = False) -> list[str]:
    """The patient routes of a freshly built app, read at collection time for test ids.

    `shown_only`: the routes that show patient data on a GET (others act, e.g. make a link).
    """
    probe = create_app(
        {"ENV": "test", "TESTING": True, "SECRET_KEY": "probe", "DATABASE_URL": "sqlite://"}
    )
    return [
        rule.rule
        for rule in _patient_rules(probe)
        if not shown_only or "GET" in (rule.methods or set())
    ]


PATIENT_ROUTES = _probe_rules()
SHOWN_ROUTES = _probe_rules(shown_only=True)
# Roles that see patients; analysts see none (tests/security/test_route_roles.py checks their 403s).
ROLES = sorted(CARE_TEAM)


# Helpers ---------------------------------------------------------------------------------------


def _rule(app: Flask, rule_text: str) -> Rule:
    return next(rule for rule in _patient_rules(app) if rule.rule == rule_text)


def _url(app: Flask, rule: Rule, patient_id: int) -> str:
    extra = set(rule.arguments) - {"patient_id"} - set(OTHER_ARGUMENTS.get(rule.endpoint, {}))
    if extra:
        pytest.fail(
            f"{rule.rule} has arguments {sorted(extra)} besides patient_id: add values for them "
            "to OTHER_ARGUMENTS so that its scoping is tested"
        )
    values = {**OTHER_ARGUMENTS.get(rule.endpoint, {}), "patient_id": patient_id}
    return app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


CSRF_VALUE_RE = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+(")')


def _normalized(body: str) -> str:
    """The page without its CSRF token (signed with a timestamp, so it differs per second)."""
    return CSRF_VALUE_RE.sub(r"\1TOKEN\2", body)


def _request(client: FlaskClient, method: str, url: str) -> TestResponse:
    if method in SAFE_METHODS:
        return client.open(url, method=method)
    # An unsafe method gets a valid token, so a 404 is the scoping's doing and not the CSRF check.
    return client.open(url, method=method, data={"csrf_token": csrf_token(client, "/patients")})


def _committed(statement: sa.Executable) -> list[sa.Row]:
    """Rows as stored (committed), read on a connection of their own."""
    with db.engine.connect() as connection:
        return list(connection.execute(statement).all())


def _view_events(patient_id: int | None = None) -> list[sa.Row]:
    query = sa.select(
        AuditEvent.action,
        AuditEvent.actor_id,
        AuditEvent.patient_id,
        AuditEvent.clinic_id,
        AuditEvent.is_success,
    ).where(AuditEvent.action.like("patient.%"), AuditEvent.action != "patient.list")
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    return _committed(query.order_by(AuditEvent.id))


def _search(client: FlaskClient, query: str, page: int | None = None) -> TestResponse:
    """The patient search form: a POST, so that names and MRNs stay out of URLs."""
    data = {"q": query, "csrf_token": csrf_token(client, "/patients")}
    if page is not None:
        data["page"] = str(page)
    return client.post("/patients", data=data)


PATIENT_LINK_RE = re.compile(r'href="/patients/(\d+)"')


def _listed_ids(body: str) -> set[int]:
    return {int(found) for found in PATIENT_LINK_RE.findall(body)}


# Ids no patient has: just past the last row, further on, past a 32-bit and a 64-bit integer.
MISSING_IDS: dict[str, Callable[[int], int]] = {
    "next-id": lambda highest: highest + 1,
    "far-id": lambda highest: highest + 1000,
    "beyond-int32": lambda _: 2**31,
    "beyond-int64": lambda _: 2**63,
}


def _missing_id(kind: str) -> int:
    highest = db.session.scalar(sa.select(sa.func.max(Patient.id))) or 0
    return MISSING_IDS[kind](highest)


# The routes exist ------------------------------------------------------------------------------


def test_patient_routes_are_found(app: Flask) -> None:
    """The parametrized tests below cannot pass vacuously: there are patient routes to test."""
    rules = _patient_rules(app)
    assert rules, "no route with a patient_id argument in app.url_map"
    assert [rule.rule for rule in rules] == PATIENT_ROUTES
    assert "care.patient" in {rule.endpoint for rule in rules}


# One clinic's staff and the other clinic's patients --------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize("route", PATIENT_ROUTES)
def test_other_clinics_patients_are_not_found(
    app: Flask, world: World, staff_client: StaffClient, route: str, role: Role
) -> None:
    rule = _rule(app, route)
    client = staff_client(world.user("a", role))
    for method in _methods(rule):
        for patient in world.patients_b:
            response = _request(client, method, _url(app, rule, patient.id))
            body = response.get_data(as_text=True)
            assert response.status_code == 404, (method, route, patient.mrn, body)
            assert "There is nothing here." in body
            assert f">{patient.mrn}<" not in body
            assert patient.family_name not in body


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize("route", PATIENT_ROUTES)
def test_own_clinics_patients_are_shown(
    app: Flask, world: World, staff_client: StaffClient, route: str, role: Role
) -> None:
    rule = _rule(app, route)
    client = staff_client(world.user("a", role))
    allowed = app.view_functions[rule.endpoint].allowed_roles
    for method in _methods(rule):
        for patient in world.patients_a:
            response = _request(client, method, _url(app, rule, patient.id))
            if role not in allowed:
                # Staff of the clinic, in a role without this action: forbidden, not "not found".
                assert response.status_code == 403, (method, route, role)
            elif method in SAFE_METHODS:
                assert response.status_code == 200, (method, route, patient.mrn)
                assert patient.family_name in response.get_data(as_text=True)
            else:
                # A bare post may well be refused as invalid, but never as "not found".
                assert response.status_code not in (404, 500), (method, route, patient.mrn)


@pytest.mark.parametrize("missing", list(MISSING_IDS))
@pytest.mark.parametrize("route", SHOWN_ROUTES)
def test_other_clinics_patient_looks_exactly_like_a_missing_one(
    app: Flask, world: World, staff_client: StaffClient, route: str, missing: str
) -> None:
    """Nothing in the 404 tells "exists elsewhere" from "does not exist"."""
    rule = _rule(app, route)
    client = staff_client(world.user("a", Role.CLINICIAN))
    other_clinics = client.get(_url(app, rule, world.patients_b[0].id))
    assert other_clinics.status_code == 404
    response = client.get(_url(app, rule, _missing_id(missing)))
    assert response.status_code == 404, response.get_data(as_text=True)[:2000]
    assert response.content_type == other_clinics.content_type
    assert _normalized(response.get_data(as_text=True)) == _normalized(
        other_clinics.get_data(as_text=True)
    )


# Anonymous requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", SHOWN_ROUTES)
def test_anonymous_requests_go_to_login_and_see_nothing(
    app: Flask, world: World, client: FlaskClient, route: str
) -> None:
    rule = _rule(app, route)
    everyone = world.patients_a + world.patients_b
    for patient_id in [p.id for p in everyone] + [_missing_id("next-id"), _missing_id("far-id")]:
        response = client.get(_url(app, rule, patient_id))
        assert response.status_code == 302, patient_id
        assert urlsplit(response.headers["Location"]).path == "/login"
        body = response.get_data(as_text=True)
        for patient in everyone:
            assert patient.family_name not in body
    assert _view_events() == []


def test_anonymous_patient_list_and_search_go_to_login(world: World, client: FlaskClient) -> None:
    token = csrf_token(client, "/login")  # an anonymous session's valid token
    for response in (
        client.get("/patients"),
        client.get("/patients?page=1"),
        client.post("/patients", data={"q": "Test", "csrf_token": token}),
    ):
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/login"
        body = response.get_data(as_text=True)
        for patient in world.patients_a + world.patients_b:
            assert patient.family_name not in body
    assert _committed(sa.select(AuditEvent.id).where(AuditEvent.action.like("patient.%"))) == []


# The patient list ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize(("clinic", "other"), [("a", "b"), ("b", "a")])
def test_patient_list_shows_own_clinic_only(
    app: Flask, world: World, staff_client: StaffClient, clinic: str, other: str, role: Role
) -> None:
    own = {p.id for p in getattr(world, f"patients_{clinic}")}
    response = staff_client(world.user(clinic, role)).get("/patients")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _listed_ids(body) == own
    assert f"{len(own)} patients" in body
    for patient in getattr(world, f"patients_{other}"):
        assert patient.family_name not in body


def test_patient_list_pages_never_reach_another_clinic(
    app: Flask, world: World, staff_client: StaffClient
) -> None:
    for n in range(3, 8):
        add_patient(world.clinic_a, f"A{n}")
        add_patient(world.clinic_b, f"B{n}")
    db.session.commit()
    own = set(_committed(sa.select(Patient.id).where(Patient.clinic_id == world.clinic_a.id)))
    app.config["PATIENTS_PER_PAGE"] = 2
    client = staff_client(world.user("a", Role.CLINICIAN))
    listed: set[int] = set()
    searched: set[int] = set()
    last = (len(own) + 1) // 2
    for page in range(1, last + 2):
        expected = 200 if page <= last else 404  # past the last page: not found
        response = client.get(f"/patients?page={page}")
        assert response.status_code == expected
        listed |= _listed_ids(response.get_data(as_text=True))
        response = _search(client, "Test", page=page)  # matches every patient of both clinics
        assert response.status_code == expected
        searched |= _listed_ids(response.get_data(as_text=True))
    assert listed == {row.id for row in own}
    assert searched == {row.id for row in own}


@pytest.fixture
def quixote(world: World) -> Patient:
    """A clinic-B patient whose name and MRN match nothing in clinic A."""
    patient = add_patient(world.clinic_b, "ZQ-9041", given_name="Zebulon", family_name="Quixote")
    world.patients_b.append(patient)
    db.session.commit()
    return patient


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
def test_search_never_finds_another_clinics_patients(
    world: World, quixote: Patient, staff_client: StaffClient, role: Role
) -> None:
    client = staff_client(world.user("a", role))
    b_only = [
        world.patients_b[0].mrn,  # "B0"
        world.patients_b[0].mrn.lower(),
        world.patients_b[1].family_name,  # "TestB1"
        quixote.family_name,
        quixote.family_name[:4].lower(),
        quixote.given_name,
        quixote.mrn,
    ]
    for query in b_only:
        response = _search(client, query)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, query
        assert _listed_ids(body) == set(), query
        assert "0 patients matching" in body, query
        assert "Quixote, Zebulon" not in body
    # A search that matches patients of both clinics shows clinic A's alone.
    for query in ("Pat", "Test", "t"):
        body = _search(client, query).get_data(as_text=True)
        assert _listed_ids(body) == {p.id for p in world.patients_a}, query
    # The search itself works: clinic A's own MRN is found.
    body = _search(client, "A1").get_data(as_text=True)
    assert _listed_ids(body) == {world.patients_a[1].id}


def test_patient_list_audit_names_only_visible_patients(
    world: World, staff_client: StaffClient
) -> None:
    user = world.user("a", Role.COORDINATOR)
    client = staff_client(user)
    token = csrf_token(client, "/patients")  # the plain list
    for query in ("Test", "B0"):  # matching both clinics; matching clinic B alone
        client.post("/patients", data={"q": query, "csrf_token": token})
    rows = _committed(
        sa.select(AuditEvent.actor_id, AuditEvent.detail)
        .where(AuditEvent.action == "patient.list")
        .order_by(AuditEvent.id)
    )
    a_ids = {p.id for p in world.patients_a}
    assert [set(row.detail["patient_ids"]) for row in rows] == [a_ids, a_ids, set()]
    assert {row.actor_id for row in rows} == {user.id}


# Staff of both clinics -------------------------------------------------------------------------


@pytest.mark.parametrize("route", SHOWN_ROUTES)
def test_member_of_both_clinics_sees_both(
    app: Flask, world: World, quixote: Patient, staff_client: StaffClient, route: str
) -> None:
    user = world.user("a", Role.CLINICIAN)
    grant(db.session, user, world.clinic_b, Role.COORDINATOR)
    db.session.commit()
    client = staff_client(user)

    body = client.get("/patients").get_data(as_text=True)
    everyone = world.patients_a + world.patients_b
    assert _listed_ids(body) == {p.id for p in everyone}
    search = _search(client, "Quixote").get_data(as_text=True)
    assert _listed_ids(search) == {quixote.id}
    search = _search(client, "Test").get_data(as_text=True)
    assert _listed_ids(search) == {p.id for p in everyone if p is not quixote}

    rule = _rule(app, route)
    allowed = app.view_functions[rule.endpoint].allowed_roles
    for patient in everyone:
        response = client.get(_url(app, rule, patient.id))
        held = Role.CLINICIAN if patient in world.patients_a else Role.COORDINATOR
        assert response.status_code == (200 if held in allowed else 403), patient.mrn

    # Clinic B's own staff still see clinic B alone.
    b_body = staff_client(world.user("b", Role.CLINICIAN)).get("/patients").get_data(as_text=True)
    assert _listed_ids(b_body) == {p.id for p in world.patients_b}


# The audit log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize("route", SHOWN_ROUTES)
def test_every_patient_view_is_audited(
    app: Flask, world: World, staff_client: StaffClient, route: str, role: Role
) -> None:
    rule = _rule(app, route)
    user = world.user("a", role)
    client = staff_client(user)
    allowed = app.view_functions[rule.endpoint].allowed_roles
    for patient in world.patients_a:
        if role not in allowed:
            assert client.get(_url(app, rule, patient.id)).status_code == 403
            assert _view_events(patient.id) == []
            continue
        assert client.get(_url(app, rule, patient.id)).status_code == 200
        events = _view_events(patient.id)
        assert len(events) == 1, events
        event = events[0]
        assert event.actor_id == user.id
        assert event.patient_id == patient.id
        assert event.clinic_id == world.clinic_a.id
        assert event.is_success
        if rule.endpoint == "care.patient":
            assert event.action == "patient.view"


@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize("route", SHOWN_ROUTES)
def test_refused_view_is_not_audited_as_a_view(
    app: Flask, world: World, staff_client: StaffClient, route: str, role: Role
) -> None:
    rule = _rule(app, route)
    client = staff_client(world.user("a", role))
    for patient in world.patients_b:
        assert client.get(_url(app, rule, patient.id)).status_code == 404
        assert [e for e in _view_events(patient.id) if e.is_success] == []
    assert (
        _committed(
            sa.select(AuditEvent.id).where(
                AuditEvent.action == "patient.view",
                AuditEvent.patient_id.in_([p.id for p in world.patients_b]),
            )
        )
        == []
    )
