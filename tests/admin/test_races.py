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
from tests.live import Browser, Reply, Server, at_once, serve

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


def twice_at_once(
    server: Server, world: World, page: str, path: str, form: dict[str, object]
) -> list[Reply]:
    """Two coordinators open `page` (for its form), then post `form` to `path` at once."""
    browsers = [signed_in(server, world) for _ in range(2)]
    for browser in browsers:
        browser.get(page)
    with server.slow_database():
        return at_once(*((lambda b=b: b.post(path, form)) for b in browsers))


def course_of(world: World, index: int, days_ahead: int) -> Enrollment:
    patient = world.patients_a[index]
    course = enroll(
        db.session,
        patient,
        world.protocol_a,
        patient_today(patient) + dt.timedelta(days=days_ahead),
        now=utcnow(),
    )
    db.session.commit()
    return course


def count(model: type, *where: object) -> int:
    with db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def test_a_double_submitted_enrollment_makes_one_course(server: Server, world: World) -> None:
    protocol_id = world.protocol_a.id
    for round_number in range(ROUNDS):
        patient = world.patients_a[round_number % len(world.patients_a)]
        anchor = patient_today(patient) + dt.timedelta(days=30 + round_number)
        path = f"/patients/{patient.id}/enroll"
        form = {
            "protocol": protocol_id,
            "anchor_on": anchor.isoformat(),
            "baseline": "own",
            "save": "1",
        }
        replies = twice_at_once(server, world, path, path, form)
        assert sorted(r.status for r in replies) == [303, 303], [r.body[:300] for r in replies]
        courses = count(
            Enrollment, Enrollment.patient_id == patient.id, Enrollment.anchor_on == anchor
        )
        assert courses == 1
    # One set of assessments and messages per course: five windows, three messages each.
    assert count(Assessment) == 5 * ROUNDS
    assert count(Notification) == 15 * ROUNDS


def test_a_day_saved_twice_at_once_is_one_row(server: Server, world: World) -> None:
    course = course_of(world, 0, 0)
    for day in range(1, ROUNDS + 1):
        replies = twice_at_once(
            server,
            world,
            f"/enrollments/{course.id}",
            f"/enrollments/{course.id}/days/{day}",
            {f"day{day}-outcome": "given"},
        )
        assert [r.status for r in replies] == [303, 303], [r.body[:300] for r in replies]
    assert count(TreatmentSession, TreatmentSession.enrollment_id == course.id) == ROUNDS


def test_a_double_withdrawal_withdraws_once(server: Server, world: World) -> None:
    course = course_of(world, 1, 9)
    path = f"/enrollments/{course.id}/withdraw"
    replies = twice_at_once(server, world, path, path, {"reason": "moved"})
    assert sorted(r.status for r in replies) == [303, 400]
    refused = next(r for r in replies if r.status == 400)
    assert "This course was withdrawn on" in refused.body  # says what happened
    assert count(Enrollment, Enrollment.status == EnrollmentStatus.WITHDRAWN) == 1


def test_a_double_move_to_a_new_version_moves_once(server: Server, world: World) -> None:
    import copy

    from proms.admin.services import bundled_protocol, install_protocol

    course = course_of(world, 2, 9)
    patient = course.patient
    spec = copy.deepcopy(bundled_protocol("ketamine-infusion-course"))
    spec["version"] = 2
    spec["horizon_days"] = 380
    spec["timepoints"].append(
        {**spec["timepoints"][-1], "key": "month_12", "label": "12 months", "offset_days": 365}
    )
    world.protocol_a.is_active = False
    version_2 = install_protocol(db.session, world.clinic_a, spec)
    db.session.commit()
    path = f"/protocols/{world.protocol_a.id}/move"
    replies = twice_at_once(server, world, path, path, {"enrollment": course.id})
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
