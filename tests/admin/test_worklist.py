"""The worklist: overdue, due today, open and not started, new-link requests, message
problems and opt-outs, for the coordinator's own clinics only."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from proms.admin.enrollment import enroll
from proms.admin.models import Patient
from proms.auth.models import AuditEvent, Role
from proms.db import db, utcnow
from proms.scheduling.models import (
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from tests.helpers import World, add_patient, patient_today


def _enroll(world: World, patient: Patient, days_ahead: int):  # type: ignore[no-untyped-def]
    return enroll(
        db.session,
        patient,
        world.protocol_a if patient.clinic_id == world.clinic_a.id else world.protocol_b,
        patient_today(patient) + dt.timedelta(days=days_ahead),
        now=utcnow(),
    )


def _section(body: str, key: str) -> str:
    start = body.index(f'<section id="{key}"')
    return body[start : body.index("</section>", start)]


def test_each_section_lists_who_needs_something(world: World, staff_client) -> None:  # type: ignore[no-untyped-def]
    overdue, due_today, started = world.patients_a
    _enroll(world, overdue, 1)  # baseline closes at the end of tomorrow: overdue
    _enroll(world, due_today, 0)  # baseline due today (and closing tonight, so overdue too)
    later = add_patient(world.clinic_a, "LATER", family_name="Later")
    _enroll(world, later, 10)  # open, not started, not urgent
    in_progress = _enroll(world, started, 10)
    in_progress.assessments[0].status = AssessmentStatus.IN_PROGRESS
    asked = add_patient(world.clinic_a, "ASKED", family_name="Asker")
    asked_course = _enroll(world, asked, 60)
    db.session.add(
        Notification(
            idempotency_key="new-link-test",
            patient=asked,
            assessment=asked_course.assessments[0],
            kind=NotificationKind.NEW_LINK,
            channel=asked.preferred_channel,
            send_after=utcnow(),
        )
    )
    failed = db.session.scalars(sa.select(Notification).limit(1)).one()
    failed.status = NotificationStatus.FAILED
    failed.last_error = "mailbox full"
    quiet = add_patient(world.clinic_a, "QUIET", family_name="Quiet", opted_out_at=utcnow())
    _enroll(world, quiet, 60)
    other = world.patients_b[0]
    _enroll(world, other, 1)  # clinic B: never on clinic A's worklist
    db.session.commit()

    client = staff_client(world.user("a", Role.COORDINATOR))
    response = client.get("/worklist")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert overdue.family_name in _section(body, "overdue")
    assert later.family_name in _section(body, "not_started")
    assert started.family_name not in _section(body, "not_started")  # they have begun
    assert asked.family_name in _section(body, "new_link")
    assert "mailbox full" in _section(body, "messages")
    assert quiet.family_name in _section(body, "opted_out")
    assert other.family_name not in body
    assert "Make a link" in _section(body, "overdue")
    assert "Enter answers" in _section(body, "overdue")
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "worklist.view")
    ).one()
    assert overdue.id in event.detail["patient_ids"]
    assert other.id not in event.detail["patient_ids"]


def test_the_worklist_is_the_coordinators_first_page(world: World, staff_client) -> None:  # type: ignore[no-untyped-def]
    coordinator = staff_client(world.user("a", Role.COORDINATOR))
    assert coordinator.get("/").headers["Location"].endswith("/worklist")
    clinician = staff_client(world.user("a", Role.CLINICIAN))
    assert clinician.get("/").headers["Location"].endswith("/patients")
    assert clinician.get("/worklist").status_code == 403
