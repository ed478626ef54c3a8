"""The audit log page: an admin reads their clinic's events, filtered, and only theirs.

Events are recorded with fixed times through the same service the app uses, so the order, the
clinic's clock and the date filters are checked against known instants. Each event carries a
marker in its detail (shown under "Details"), so a test can see exactly which events a page lists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.admin.audit import PER_PAGE, short_user_agent
from proms.admin.models import Clinic, Patient
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.auth.services import RequestInfo, grant, record_event
from proms.db import db
from tests.helpers import World, counted_statements

StaffClient = Callable[[StaffUser], FlaskClient]

# Clinic A is in New York: 15:00 UTC on 2 March 2026 is 10:00 EST there.
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
MARKER_RE = re.compile(r"<dt>marker</dt><dd>(m[\w-]+)</dd>")


def _event(
    action: str,
    marker: str,
    *,
    at: dt.datetime,
    actor: StaffUser | None = None,
    clinic: Clinic | None = None,
    patient: Patient | None = None,
    **detail: Any,
) -> None:
    record_event(
        db.session,
        action,
        actor=actor,
        actor_email=None if actor else "nobody@example.org",
        clinic_id=clinic.id if clinic else (patient.clinic_id if patient else None),
        patient_id=patient.id if patient else None,
        origin=RequestInfo(ip_address="203.0.113.9", user_agent=FIREFOX),
        detail={"marker": marker, **detail},
        now=at,
    )


def _markers(client: FlaskClient, query: str = "", status: int = 200) -> list[str]:
    response = client.get(f"/audit{query}")
    assert response.status_code == status, response.get_data(as_text=True)
    return MARKER_RE.findall(response.get_data(as_text=True))


@pytest.fixture
def history(world: World) -> World:
    """A few days at both clinics, recorded out of order."""
    a0, a1 = world.patients_a[:2]
    clinician, coordinator = world.user("a", Role.CLINICIAN), world.user("a", Role.COORDINATOR)
    hour = dt.timedelta(hours=1)
    _event("patient.view", "m-view-a0", at=T0, actor=clinician, patient=a0)
    _event(
        "patient.updated",
        "m-update-a0",
        at=T0 + 2 * hour,
        actor=coordinator,
        patient=a0,
        before={"phone": "+12165550101"},
        after={"phone": "+12165550199"},
    )
    _event("patient.view", "m-view-a1", at=T0 + hour, actor=coordinator, patient=a1)
    # 03:00 UTC on 3 March is still 2 March (22:00) in New York.
    _event("login.succeeded", "m-login", at=T0 + 12 * hour, actor=clinician)
    _event(
        "clinic.updated",
        "m-clinic",
        at=T0 + 48 * hour,
        actor=world.user("a", Role.ADMIN),
        clinic=world.clinic_a,
        before={"name": "A"},
        after={"name": "Clinic A"},
    )
    # Not clinic A's: clinic B's events, its staff's sign-in, an unknown address.
    _event(
        "patient.view",
        "m-view-b0",
        at=T0,
        actor=world.user("b", Role.CLINICIAN),
        patient=world.patients_b[0],
    )
    _event("login.succeeded", "m-login-b", at=T0, actor=world.user("b", Role.CLINICIAN))
    _event("login.failed", "m-unknown", at=T0, reason="unknown_email")
    db.session.commit()
    return world


def test_the_clinic_log_newest_first_in_words(history: World, staff_client: StaffClient) -> None:
    client = staff_client(history.user("a", Role.ADMIN))
    response = client.get("/audit")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert MARKER_RE.findall(body) == [
        "m-clinic",
        "m-login",
        "m-update-a0",
        "m-view-a1",
        "m-view-a0",
    ]
    # Who, what (in words, with the patient), when (the clinic's clock), from where.
    assert "<strong>clinician a</strong>" in body
    assert "viewed a patient" in body
    assert history.patients_a[0].display_name in body
    assert "Mon 2026-03-02 10:00 EST" in body
    assert "Mon 2026-03-02 22:00 EST" in body  # the sign-in at 03:00 UTC
    assert "203.0.113.9" in body
    assert "Firefox 128 on Windows" in body
    # A change reads as its fields before and after.
    changes = re.search(r'<table class="list audit-changes">.*?</table>', body, re.S)
    assert changes is not None
    assert re.search(
        r"<th scope=\"row\">phone</th><td>\+12165550101</td><td>\+12165550199</td>",
        body,
    )
    # Nothing of clinic B, nor the unknown address.
    assert history.patients_b[0].display_name not in body
    assert "clinician b" not in body
    assert "nobody@example.org" not in body


def test_reading_the_log_is_audited(history: World, staff_client: StaffClient) -> None:
    admin = history.user("a", Role.ADMIN)
    client = staff_client(admin)
    patient = history.patients_a[0]
    assert _markers(client, f"?patient={patient.id}&action=patient.") == [
        "m-update-a0",
        "m-view-a0",
    ]
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "audit.view")).one()
    assert (event.actor_id, event.clinic_id, event.patient_id) == (
        admin.id,
        history.clinic_a.id,
        patient.id,
    )
    assert event.detail == {"action": "patient.", "patient_id": patient.id, "page": 1, "events": 2}
    # The next reading lists the first one (the page never lists its own visit).
    assert "viewed the audit log" in client.get("/audit").get_data(as_text=True)


FILTERS = [
    ("?action=patient.view", ["m-view-a1", "m-view-a0"]),
    ("?action=patient.", ["m-update-a0", "m-view-a1", "m-view-a0"]),
    ("?action=login.", ["m-login"]),
    # Whole days on the clinic's calendar (New York): the sign-in at 03:00 UTC is on 2 March.
    ("?from_on=2026-03-02&to_on=2026-03-02", ["m-login", "m-update-a0", "m-view-a1", "m-view-a0"]),
    ("?from_on=2026-03-03", ["m-clinic"]),
    ("?to_on=2026-03-01", []),
]


def test_filters(history: World, staff_client: StaffClient) -> None:
    client = staff_client(history.user("a", Role.ADMIN))
    for query, expected in FILTERS:
        assert _markers(client, query) == expected, query


def test_staff_and_patient_filters(history: World, staff_client: StaffClient) -> None:
    client = staff_client(history.user("a", Role.ADMIN))
    coordinator = history.user("a", Role.COORDINATOR)
    assert _markers(client, f"?staff={coordinator.id}") == ["m-update-a0", "m-view-a1"]
    a1 = history.patients_a[1]
    page = client.get(f"/audit?patient={a1.id}").get_data(as_text=True)
    assert MARKER_RE.findall(page) == ["m-view-a1"]
    assert "Only the events about" in page
    assert a1.display_name in page


def test_admins_see_only_their_clinics(history: World, staff_client: StaffClient) -> None:
    admin_b = staff_client(history.user("b", Role.ADMIN))
    assert _markers(admin_b) == ["m-login-b", "m-view-b0"]
    # Clinic A by its id or by one of its patients: not found, as for any other of A's pages.
    assert admin_b.get(f"/audit?clinic={history.clinic_a.id}").status_code == 404
    assert admin_b.get(f"/audit?patient={history.patients_a[0].id}").status_code == 404


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN, Role.ANALYST])
def test_only_admins_read_the_log(history: World, staff_client: StaffClient, role: Role) -> None:
    client = staff_client(history.user("a", role))
    assert client.get("/audit").status_code == 403
    assert client.get(f"/audit?patient={history.patients_a[0].id}").status_code == 403


def test_an_admin_elsewhere_is_not_an_admin_here(history: World, staff_client: StaffClient) -> None:
    """Admin of B and clinician of A: clinic A's log is forbidden, B's is theirs."""
    user = history.user("b", Role.ADMIN)
    grant(db.session, user, history.clinic_a, Role.CLINICIAN)
    db.session.commit()
    client = staff_client(user)
    assert client.get(f"/audit?clinic={history.clinic_a.id}").status_code == 403
    assert client.get(f"/audit?patient={history.patients_a[0].id}").status_code == 403
    assert _markers(client, f"?clinic={history.clinic_b.id}") == ["m-login-b", "m-view-b0"]


def test_an_admin_of_two_clinics_chooses(history: World, staff_client: StaffClient) -> None:
    user = history.user("a", Role.ADMIN)
    grant(db.session, user, history.clinic_b, Role.ADMIN)
    db.session.commit()
    client = staff_client(user)
    # The first clinic by name (Clinic A), then B when chosen; a patient picks its clinic.
    assert "m-clinic" in _markers(client)
    assert _markers(client, f"?clinic={history.clinic_b.id}") == ["m-login-b", "m-view-b0"]
    patient = history.patients_b[0]
    assert _markers(client, f"?patient={patient.id}&clinic={history.clinic_a.id}") == ["m-view-b0"]


BAD_FILTERS = [
    ("?page=0", "There is no such page."),
    ("?from_on=2026-13-01", "Not a valid date value."),
    ("?from_on=2026-03-05&to_on=2026-03-01", "The end date comes before the start date."),
    ("?from_on=1066-10-14", "Choose a date between 2000 and 2999."),
    ("?action=patient.deleted", "Choose one of the kinds of event in the list."),
    ("?staff=abc", "Choose one of the clinic&#39;s staff."),
    ("?clinic=abc", "There is no such clinic."),
    (f"?patient={2**63}", "There is no such record."),
]


def test_bad_filters_say_what_is_wrong(history: World, staff_client: StaffClient) -> None:
    client = staff_client(history.user("a", Role.ADMIN))
    for query, message in BAD_FILTERS:
        response = client.get(f"/audit{query}")
        assert response.status_code == 400, query
        assert message in response.get_data(as_text=True), query
    # Nothing was shown, so nothing was read: no audit event for a refused filter.
    assert not db.session.scalars(
        sa.select(AuditEvent.id).where(AuditEvent.action == "audit.view")
    ).all()


def test_a_staff_member_of_another_clinic_is_not_a_choice(
    history: World, staff_client: StaffClient
) -> None:
    client = staff_client(history.user("a", Role.ADMIN))
    response = client.get(f"/audit?staff={history.user('b', Role.CLINICIAN).id}")
    assert response.status_code == 400


def _many(world: World, count: int) -> None:
    clinician = world.user("a", Role.CLINICIAN)
    for n in range(count):
        patient = world.patients_a[n % len(world.patients_a)]
        _event(
            "patient.view",
            f"m{n:03d}",
            at=T0 + dt.timedelta(minutes=n),
            actor=clinician,
            patient=patient,
        )
    db.session.commit()


def test_pages(world: World, staff_client: StaffClient) -> None:
    _many(world, PER_PAGE + 3)
    client = staff_client(world.user("a", Role.ADMIN))
    first = client.get("/audit").get_data(as_text=True)
    newest = [f"m{n:03d}" for n in reversed(range(PER_PAGE + 3))]
    # The admin's own sign-in (two events without a marker: the password, then the code of
    # two-step sign-in) is the newest of all.
    shown = PER_PAGE - 2
    assert MARKER_RE.findall(first) == newest[:shown]
    older = re.search(r'href="(/audit\?page=2&amp;upto=\d+)" rel="next"', first)
    assert older is not None
    # Reading page 1 added an event at the top; page 2 goes on from where page 1 stopped.
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert MARKER_RE.findall(second) == newest[shown:]
    assert 'rel="next"' not in second
    newer = re.search(r'href="(/audit\?upto=\d+)" rel="prev"', second)
    assert newer is not None
    assert MARKER_RE.findall(client.get(newer.group(1)).get_data(as_text=True)) == (newest[:shown])
    assert client.get("/audit?page=3").status_code == 404


@pytest.mark.parametrize("query", ["", "?action=patient.&staff={staff}", "?patient={patient}"])
def test_statements_do_not_grow_with_the_events(
    app: Flask, world: World, staff_client: StaffClient, query: str
) -> None:
    client = staff_client(world.user("a", Role.ADMIN))
    url = "/audit" + query.format(
        staff=world.user("a", Role.CLINICIAN).id, patient=world.patients_a[0].id
    )
    counts = []
    for events in (3, PER_PAGE):
        _many(world, events)
        with counted_statements() as statements:
            response = client.get(url)
        assert response.status_code == 200
        assert MARKER_RE.findall(response.get_data(as_text=True))
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize(
    ("agent", "short"),
    [
        (FIREFOX, "Firefox 128 on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
            "Edge 126 on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.6478.122 Mobile Safari/537.36",
            "Chrome 126 on Android",
        ),
        ("curl/8.5.0", "curl/8.5.0"),
        (None, "—"),
    ],
)
def test_user_agents_are_shortened(agent: str | None, short: str) -> None:
    assert short_user_agent(agent) == short
