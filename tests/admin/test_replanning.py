"""Planned messages follow the patient: after an opt-out and a move, after contact details
arrive later, after a new time zone, each window has its own messages once, and never one
before it opens. Services on a fixed clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from proms.admin import enrollment as enrollments
from proms.admin.models import Channel
from proms.admin.patients import details_of, update_patient
from proms.db import db
from proms.scheduling.models import Notification, NotificationStatus
from tests.helpers import World, add_patient

NOW = dt.datetime(2026, 11, 2, 15, 0, tzinfo=dt.UTC)
ANCHOR = dt.date(2026, 12, 14)  # every window still to open


def pending() -> list[Notification]:
    return list(
        db.session.scalars(
            sa.select(Notification)
            .where(Notification.status == NotificationStatus.PENDING)
            .order_by(Notification.send_after)
        )
    )


def check_one_set(rows: list[Notification]) -> None:
    """An invitation and two reminders per window, each inside its window, none twice."""
    assert len(rows) == 15
    assert len({r.idempotency_key for r in rows}) == 15
    for row in rows:
        assert row.assessment is not None
        assert row.assessment.opens_at <= row.send_after < row.assessment.closes_at
        assert f":{row.assessment.opens_at.date().isoformat()}:" in row.idempotency_key


def test_opt_out_then_a_move_then_opt_in_plans_the_new_windows_once(world: World) -> None:
    patient = world.patients_a[0]
    course = enrollments.enroll(db.session, patient, world.protocol_a, ANCHOR, now=NOW)
    enrollments.opt_out(db.session, patient, now=NOW, reason="on holiday", by=None)
    assert pending() == []
    enrollments.change_anchor(db.session, course, ANCHOR + dt.timedelta(days=21), now=NOW)
    assert pending() == []  # still opted out: the moved windows' messages are not to go
    restored = enrollments.opt_in(db.session, patient, now=NOW)
    db.session.commit()
    assert restored == 15
    check_one_set(pending())


def test_an_email_added_later_brings_the_messages_back(world: World) -> None:
    patient = add_patient(world.clinic_a, "LATE", email=None)
    enrollments.enroll(db.session, patient, world.protocol_a, ANCHOR, now=NOW)
    rows = db.session.scalars(sa.select(Notification)).all()
    assert {r.cancel_reason for r in rows} == {"no_contact"}
    details = dataclasses.replace(details_of(patient), email="late@example.org")
    update_patient(db.session, patient, details, now=NOW)
    db.session.commit()
    check_one_set(pending())
    assert {r.channel for r in pending()} == {Channel.EMAIL}


def test_a_new_time_zone_moves_the_messages_to_its_send_time(world: World) -> None:
    patient = world.patients_a[1]
    enrollments.enroll(db.session, patient, world.protocol_a, ANCHOR, now=NOW)
    zone = ZoneInfo("America/Los_Angeles")
    details = dataclasses.replace(details_of(patient), time_zone=zone.key)
    update_patient(db.session, patient, details, now=NOW)
    db.session.commit()
    rows = pending()
    assert {r.send_after.astimezone(zone).time() for r in rows} == {dt.time(10, 0)}
    check_one_set(rows)
    # The windows moved with it: the baseline opens at 10:00 on the same day, Pacific time.
    baseline = rows[0].assessment
    assert baseline.opens_at.astimezone(zone) == dt.datetime(2026, 11, 30, 10, 0, tzinfo=zone)


def test_a_change_that_is_not_about_messages_leaves_them_alone(world: World) -> None:
    patient = world.patients_a[2]
    enrollments.enroll(db.session, patient, world.protocol_a, ANCHOR, now=NOW)
    before = {(r.id, r.status, r.send_after) for r in db.session.scalars(sa.select(Notification))}
    details = dataclasses.replace(details_of(patient), given_name="Patricia")
    update_patient(db.session, patient, details, now=NOW)
    db.session.commit()
    after = {(r.id, r.status, r.send_after) for r in db.session.scalars(sa.select(Notification))}
    assert after == before
