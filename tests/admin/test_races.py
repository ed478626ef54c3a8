"""Coordinator actions sent twice at the same moment (a double click, two coordinators), on a
real threaded server, on SQLite and PostgreSQL: one takes effect, the other is told, and no
request answers 5xx."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from proms.admin.enrollment import enroll
from proms.admin.models import Enrollment, EnrollmentStatus, TreatmentSession
from proms.auth.models import Role
from proms.db import db, utcnow
from proms.scheduling.models import Assessment, Notification
from tests.helpers import PASSWORD, World, patient_today
from tests.live import Browser, Server, at_once, serve

ROUNDS = 4


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    app = make_app(SESSION_COOKIE_SECURE=False, LOGIN_RATE_LIMIT="10000 per minute")
    with serve(app) as live, app.app_context():
        yield live


def signed_in(server: Server, world: World) -> Browser:
    browser = server.browser()
    browser.get("/login")
    reply = browser.post(
        "/login", {"email": world.user("a", Role.COORDINATOR).email, "password": PASSWORD}
    )
    assert reply.status == 302, reply.body[:500]
    return browser


def count(model: type, *where: object) -> int:
    with db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def test_a_double_submitted_enrollment_makes_one_course(server: Server, world: World) -> None:
    protocol_id = world.protocol_a.id
    for round_number in range(ROUNDS):
        patient = world.patients_a[round_number % len(world.patients_a)]
        anchor = patient_today(patient) + dt.timedelta(days=30 + round_number)
        browsers = [signed_in(server, world) for _ in range(2)]
        for browser in browsers:
            browser.get(f"/patients/{patient.id}/enroll")
        path = f"/patients/{patient.id}/enroll"
        form = {
            "protocol": protocol_id,
            "anchor_on": anchor.isoformat(),
            "baseline": "own",
            "save": "1",
        }
        with server.slow_database():
            replies = at_once(
                *((lambda b=b, path=path, form=form: b.post(path, form)) for b in browsers)
            )
        assert sorted(r.status for r in replies) == [303, 303], [r.body[:300] for r in replies]
        courses = count(
            Enrollment, Enrollment.patient_id == patient.id, Enrollment.anchor_on == anchor
        )
        assert courses == 1
    # One set of assessments and messages per course: five windows, three messages each.
    assert count(Assessment) == 5 * ROUNDS
    assert count(Notification) == 15 * ROUNDS


def test_a_day_saved_twice_at_once_is_one_row(server: Server, world: World) -> None:
    patient = world.patients_a[0]
    course = enroll(db.session, patient, world.protocol_a, patient_today(patient), now=utcnow())
    db.session.commit()
    for day in range(1, ROUNDS + 1):
        browsers = [signed_in(server, world) for _ in range(2)]
        for browser in browsers:
            browser.get(f"/enrollments/{course.id}")
        with server.slow_database():
            replies = at_once(
                *(
                    (
                        lambda b=b, day=day: b.post(
                            f"/enrollments/{course.id}/days/{day}", {f"day{day}-outcome": "given"}
                        )
                    )
                    for b in browsers
                )
            )
        assert [r.status for r in replies] == [303, 303], [r.body[:300] for r in replies]
    assert count(TreatmentSession, TreatmentSession.enrollment_id == course.id) == ROUNDS


def test_a_double_withdrawal_withdraws_once(server: Server, world: World) -> None:
    patient = world.patients_a[1]
    course = enroll(
        db.session,
        patient,
        world.protocol_a,
        patient_today(patient) + dt.timedelta(days=9),
        now=utcnow(),
    )
    db.session.commit()
    browsers = [signed_in(server, world) for _ in range(2)]
    for browser in browsers:
        browser.get(f"/enrollments/{course.id}/withdraw")
    with server.slow_database():
        replies = at_once(
            *(
                (lambda b=b: b.post(f"/enrollments/{course.id}/withdraw", {"reason": "moved"}))
                for b in browsers
            )
        )
    assert sorted(r.status for r in replies) == [303, 400]
    refused = next(r for r in replies if r.status == 400)
    assert "This course was withdrawn on" in refused.body  # says what happened
    assert count(Enrollment, Enrollment.status == EnrollmentStatus.WITHDRAWN) == 1


def test_a_double_move_to_a_new_version_moves_once(server: Server, world: World) -> None:
    import copy

    from proms.admin.services import bundled_protocol, install_protocol

    patient = world.patients_a[2]
    course = enroll(
        db.session,
        patient,
        world.protocol_a,
        patient_today(patient) + dt.timedelta(days=9),
        now=utcnow(),
    )
    spec = copy.deepcopy(bundled_protocol("ketamine-infusion-course"))
    spec["version"] = 2
    spec["horizon_days"] = 380
    spec["timepoints"].append(
        {**spec["timepoints"][-1], "key": "month_12", "label": "12 months", "offset_days": 365}
    )
    world.protocol_a.is_active = False
    version_2 = install_protocol(db.session, world.clinic_a, spec)
    db.session.commit()
    browsers = [signed_in(server, world) for _ in range(2)]
    path = f"/protocols/{world.protocol_a.id}/move"
    form = {"enrollment": course.id}  # read here: the threads have no app context
    for browser in browsers:
        browser.get(path)
    with server.slow_database():
        replies = at_once(*((lambda b=b: b.post(path, form)) for b in browsers))
    # The second finds the course moved: it says so (303) or finds nothing to move (404).
    statuses = sorted(r.status for r in replies)
    assert statuses in ([303, 303], [303, 404]), statuses
    assert count(Enrollment, Enrollment.protocol_id == version_2.id) == 1
    # The new time point's assessment once, and its messages once.
    assert count(Assessment, Assessment.enrollment_id == course.id) == 6
    keys = count(Notification, Notification.patient_id == patient.id)
    with db.engine.connect() as connection:
        distinct = connection.scalar(
            sa.select(sa.func.count(sa.distinct(Notification.idempotency_key))).where(
                Notification.patient_id == patient.id
            )
        )
    assert keys == distinct
