"""The alerts inbox: most pressing first, filters, paging, acknowledge and resolve (who, when, a
note, audited), scoping to the user's clinics, and a fixed number of SQL statements per page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.admin.models import Patient
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db, utcnow
from proms.outcomes.models import AlertKind, AlertStatus, AlertTier
from tests.care.alerting import START, add_alert, course
from tests.helpers import World, add_patient, counted_statements, csrf_token

StaffClient = Callable[[StaffUser], FlaskClient]
ACTION = re.compile(r'/alerts/(\d+)/resolve"')


def listed(client: FlaskClient, query: str = "") -> list[int]:
    """The ids of the open alerts on an inbox page, in page order."""
    page = client.get(f"/alerts{query}")
    assert page.status_code == 200, page.get_data(as_text=True)
    return [int(n) for n in ACTION.findall(page.get_data(as_text=True))]


@pytest.fixture
def clinician(world: World, staff_client: StaffClient) -> FlaskClient:
    return staff_client(world.user("a", Role.CLINICIAN))


def test_urgent_first_then_next_visit_then_information_oldest_first(
    world: World, clinician: FlaskClient
) -> None:
    first, second = world.patients_a[:2]
    one, two = course(world, first), course(world, second)
    raised = [
        add_alert(one[0], AlertTier.INFORMATION, 1),
        add_alert(two[0], AlertTier.URGENT, 30),
        add_alert(one[1], AlertTier.NEXT_VISIT, 2),
        add_alert(two[1], AlertTier.URGENT, 10),
        add_alert(one[2], AlertTier.NEXT_VISIT, 20),
    ]
    other = add_alert(course(world, world.patients_b[0])[0], AlertTier.URGENT, 0)
    db.session.commit()
    information, late_urgent, early_next, early_urgent, late_next = (a.id for a in raised)

    assert listed(clinician) == [early_urgent, late_urgent, early_next, late_next, information]
    assert other.id not in listed(clinician, "?status=all")  # another clinic's alert
    assert listed(clinician, "?tier=urgent") == [early_urgent, late_urgent]


def test_filters_by_status_and_kind_and_pages(
    app: Flask, world: World, clinician: FlaskClient
) -> None:
    clinician_a = world.user("a", Role.CLINICIAN)
    points = course(world, world.patients_a[0])
    open_one = add_alert(points[0], AlertTier.URGENT, 1)
    seen = add_alert(
        points[1], AlertTier.URGENT, 2, status=AlertStatus.ACKNOWLEDGED, by=clinician_a
    )
    done = add_alert(points[2], AlertTier.URGENT, 3, status=AlertStatus.RESOLVED, by=clinician_a)
    worse = add_alert(
        points[3], AlertTier.NEXT_VISIT, 4, kind=AlertKind.WORSENING, rule="worsening:peg:total"
    )
    db.session.commit()

    assert listed(clinician) == [open_one.id, seen.id, worse.id]  # not resolved, by default
    assert listed(clinician, "?status=open") == [open_one.id, worse.id]
    assert listed(clinician, "?kind=worsening") == [worse.id]
    resolved = clinician.get("/alerts?status=resolved").get_data(as_text=True)
    assert f"/alerts/{done.id}/" not in resolved  # nothing left to do with it...
    assert "Resolved by clinician a" in resolved  # ...but who resolved it shows
    assert clinician.get("/alerts?tier=soon").status_code == 400
    assert clinician.get("/alerts?page=2").status_code == 404

    app.config["ALERTS_PER_PAGE"] = 2
    assert listed(clinician) == [open_one.id, seen.id]
    second = clinician.get("/alerts?page=2").get_data(as_text=True)
    assert [int(n) for n in ACTION.findall(second)] == [worse.id]
    assert "Page 2 of 2" in second


def _post(client: FlaskClient, url: str, **data: str) -> Any:
    return client.post(url, data={"csrf_token": csrf_token(client, "/alerts"), **data})


def test_acknowledge_then_resolve_records_who_when_and_the_note(
    world: World, clinician: FlaskClient, staff_client: StaffClient
) -> None:
    patient = world.patients_a[0]
    alert = add_alert(course(world, patient)[0], AlertTier.URGENT, 0)
    db.session.commit()
    url = f"/alerts/{alert.id}"

    answer = _post(
        clinician, f"{url}/acknowledge", note="Called her; visit on Friday.", tier="urgent"
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/alerts?tier=urgent"  # back to the inbox as it was
    db.session.refresh(alert)
    who = world.user("a", Role.CLINICIAN)
    assert (alert.status, alert.acknowledged_by_id) == (AlertStatus.ACKNOWLEDGED, who.id)
    assert alert.acknowledgement_note == "Called her; visit on Friday."
    assert alert.acknowledged_at is not None
    assert utcnow() - alert.acknowledged_at < dt.timedelta(minutes=1)

    # A second acknowledgement (another clinician, a second click) changes nothing.
    coordinator = staff_client(world.user("a", Role.COORDINATOR))
    again = _post(coordinator, f"{url}/acknowledge", note="Me too")
    assert again.status_code == 303
    assert "already acknowledged by clinician a" in coordinator.get("/alerts").get_data(
        as_text=True
    )
    db.session.refresh(alert)
    assert (alert.acknowledged_by_id, alert.acknowledgement_note) == (
        who.id,
        "Called her; visit on Friday.",
    )

    # Resolved from the patient page: back there; it leaves the list of open alerts.
    done = _post(coordinator, f"{url}/resolve", note="Seen in clinic.", back="patient")
    assert done.headers["Location"] == f"/patients/{patient.id}#alerts"
    db.session.refresh(alert)
    assert alert.status is AlertStatus.RESOLVED
    assert alert.resolved_by_id == world.user("a", Role.COORDINATOR).id
    assert alert.resolution_note == "Seen in clinic."
    assert alert.acknowledged_by_id == who.id  # the acknowledgement stays
    assert listed(clinician) == []
    assert _post(coordinator, f"{url}/resolve").status_code == 303  # once only: no error

    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action.like("alert.%")).order_by(AuditEvent.id)
    ).all()
    changes = [(e.action, e.actor_id, e.patient_id) for e in events if e.action != "alert.list"]
    assert changes == [
        ("alert.acknowledged", who.id, patient.id),
        ("alert.resolved", world.user("a", Role.COORDINATOR).id, patient.id),
    ]
    acknowledged = next(e for e in events if e.action == "alert.acknowledged")
    assert acknowledged.detail["before"]["status"] == "open"
    assert acknowledged.detail["after"]["status"] == "acknowledged"
    assert acknowledged.detail["after"]["acknowledgement_note"] == "Called her; visit on Friday."
    assert acknowledged.detail["alert_id"] == alert.id


def test_a_note_too_long_is_a_clear_400_and_changes_nothing(
    world: World, clinician: FlaskClient
) -> None:
    alert = add_alert(course(world, world.patients_a[0])[0], AlertTier.URGENT, 0)
    db.session.commit()
    answer = _post(clinician, f"/alerts/{alert.id}/acknowledge", note="x" * 1001)
    assert answer.status_code == 400
    assert "A note holds at most 1,000 characters." in answer.get_data(as_text=True)
    db.session.refresh(alert)
    assert alert.status is AlertStatus.OPEN


def test_another_clinic_s_alert_is_not_found_and_analysts_may_not_act(
    world: World, staff_client: StaffClient
) -> None:
    alert = add_alert(course(world, world.patients_a[0])[0], AlertTier.URGENT, 0)
    db.session.commit()
    outsider = staff_client(world.user("b", Role.CLINICIAN))
    for action in ("acknowledge", "resolve"):
        answer = outsider.post(
            f"/alerts/{alert.id}/{action}", data={"csrf_token": csrf_token(outsider, "/alerts")}
        )
        assert answer.status_code == 404
    assert alert.id not in listed(outsider, "?status=all")
    analyst = staff_client(world.user("a", Role.ANALYST))
    assert analyst.get("/alerts").status_code == 403
    refused = analyst.post(
        f"/alerts/{alert.id}/acknowledge", data={"csrf_token": csrf_token(analyst, "/instruments")}
    )
    assert refused.status_code == 403
    db.session.refresh(alert)
    assert alert.status is AlertStatus.OPEN


def test_a_script_in_a_name_or_note_is_shown_as_text(world: World, clinician: FlaskClient) -> None:
    script = "<script>alert(1)</script>"
    patient = add_patient(world.clinic_a, "XSS", given_name=script, family_name=script)
    alert = add_alert(course(world, patient)[0], AlertTier.URGENT, 0)
    alert.acknowledgement_note = script
    alert.status, alert.acknowledged_at = AlertStatus.ACKNOWLEDGED, START
    db.session.commit()
    page = clinician.get("/alerts").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert script not in page


def test_an_inbox_page_runs_as_many_statements_for_forty_alerts_as_for_two(
    world: World, clinician: FlaskClient
) -> None:
    """Each row shows its patient, clinic, time point and who acted: joined in, not fetched."""
    clinician_a = world.user("a", Role.CLINICIAN)

    def statements() -> int:
        clinician.get("/alerts?status=all")  # warm: the session's user is loaded the same way
        with counted_statements() as seen:
            assert clinician.get("/alerts?status=all").status_code == 200
        return len(seen)

    def raise_alerts(patient: Patient, statuses: list[AlertStatus]) -> None:
        for n, (assessment, status) in enumerate(
            zip(course(world, patient), statuses, strict=False)
        ):
            add_alert(assessment, AlertTier.URGENT, n, status=status, by=clinician_a)
        db.session.commit()

    mixed = [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.OPEN]
    raise_alerts(world.patients_a[0], mixed[:2])
    few = statements()
    for n in range(10):
        raise_alerts(add_patient(world.clinic_a, f"MANY{n}"), mixed)
    many = statements()
    print(f"statements of an inbox page: {few} (2 alerts), {many} (42 alerts)")  # noqa: T201
    assert many == few
