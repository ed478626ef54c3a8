"""Enrolling a patient creates the assessments of every time point; constraints hold."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError

from proms.admin.models import Enrollment, EnrollmentStatus, Patient
from proms.admin.services import AdminError, create_clinic, enroll_patient
from proms.db import db
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.scheduling.services import complete_finished_enrollments, expire_closed_assessments
from tests.helpers import World, add_patient


def test_enrollment_creates_one_assessment_per_timepoint(world: World) -> None:
    patient = world.patients_a[0]
    enrollment = enroll_patient(db.session, patient, world.protocol_a, dt.date(2026, 6, 1))
    db.session.commit()
    assessments = db.session.scalars(
        select(Assessment)
        .where(Assessment.enrollment_id == enrollment.id)
        .order_by(Assessment.due_at)
    ).all()
    keys = [a.timepoint.key for a in assessments]
    assert keys == ["baseline", "end_of_course", "month_1", "month_3", "month_6"]
    assert all(a.status is AssessmentStatus.SCHEDULED for a in assessments)
    baseline = assessments[0]
    # Baseline: opens 14 days before the first infusion at 10:00 New York time (EDT in May).
    assert baseline.opens_at == dt.datetime(2026, 5, 18, 14, 0, tzinfo=dt.UTC)
    assert baseline.due_at == dt.datetime(2026, 6, 1, 14, 0, tzinfo=dt.UTC)
    assert baseline.closes_at == dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC)
    # End of course is the fifth infusion day (anchor + 4), its window a week after it.
    assert assessments[1].due_at == dt.datetime(2026, 6, 5, 14, 0, tzinfo=dt.UTC)
    assert assessments[1].closes_at == dt.datetime(2026, 6, 13, 4, 0, tzinfo=dt.UTC)


def test_enrollment_uses_the_patients_time_zone(world: World) -> None:
    patient = add_patient(world.clinic_a, "TZ1", time_zone="America/Los_Angeles")
    enrollment = enroll_patient(db.session, patient, world.protocol_a, dt.date(2026, 1, 5))
    assert enrollment.assessments[0].due_at.hour == 18  # 10:00 PST


def test_a_protocol_of_another_clinic_is_refused(world: World) -> None:
    with pytest.raises(AdminError, match="another clinic"):
        enroll_patient(db.session, world.patients_a[0], world.protocol_b, dt.date(2026, 1, 5))


def test_a_retired_protocol_is_refused(world: World) -> None:
    world.protocol_a.is_active = False
    with pytest.raises(AdminError, match="retired"):
        enroll_patient(db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5))


def test_a_returning_patient_gets_a_new_course(world: World) -> None:
    patient = world.patients_a[0]
    enroll_patient(db.session, patient, world.protocol_a, dt.date(2025, 1, 6))
    enroll_patient(db.session, patient, world.protocol_a, dt.date(2025, 9, 1))
    db.session.commit()
    count = len(
        db.session.scalars(select(Enrollment).where(Enrollment.patient_id == patient.id)).all()
    )
    assert count == 2
    assert len(db.session.scalars(select(Assessment)).all()) == 10


def test_closed_windows_expire(world: World) -> None:
    enroll_patient(db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5))
    now = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)  # after month 1 closed, before month 3 opens
    assert expire_closed_assessments(db.session, now) == 3
    db.session.commit()
    statuses = [
        a.status for a in db.session.scalars(select(Assessment).order_by(Assessment.due_at))
    ]
    assert statuses == [AssessmentStatus.EXPIRED] * 3 + [AssessmentStatus.SCHEDULED] * 2
    assert expire_closed_assessments(db.session, now) == 0  # idempotent


def test_an_enrollment_is_completed_once_every_assessment_is_over(world: World) -> None:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5)
    )
    expire_closed_assessments(db.session, dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    assert complete_finished_enrollments(db.session) == 0  # month 6 is still to come
    expire_closed_assessments(db.session, dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
    assert complete_finished_enrollments(db.session) == 1
    db.session.commit()
    db.session.refresh(enrollment)
    assert enrollment.status is EnrollmentStatus.COMPLETED
    assert complete_finished_enrollments(db.session) == 0


def test_mrn_is_unique_per_clinic_not_globally(world: World) -> None:
    add_patient(world.clinic_b, "A0")  # the same MRN in another clinic is fine
    db.session.commit()
    with pytest.raises(IntegrityError):
        add_patient(world.clinic_a, "A0")
    db.session.rollback()


def test_completed_assessment_needs_its_timestamp(world: World) -> None:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5)
    )
    db.session.commit()
    enrollment.assessments[0].status = AssessmentStatus.COMPLETED
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_withdrawn_enrollment_needs_its_timestamp(world: World) -> None:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5)
    )
    db.session.commit()
    enrollment.status = EnrollmentStatus.WITHDRAWN
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize("phone", ["2165550100", "+1", "+12345678901234567"])
def test_phone_must_look_like_e164(world: World, phone: str) -> None:
    # SQLite checks the length in the CHECK constraint; PostgreSQL already in VARCHAR(16).
    with pytest.raises((IntegrityError, DataError)):
        add_patient(world.clinic_a, "P1", phone=phone)
    db.session.rollback()


def test_naive_datetimes_are_refused(world: World) -> None:
    patient = db.session.get(Patient, world.patients_a[0].id)
    patient.opted_out_at = dt.datetime(2026, 1, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(Exception, match="naive datetime"):
        db.session.flush()
    db.session.rollback()


def test_datetimes_come_back_aware_in_utc(world: World) -> None:
    patient = db.session.get(Patient, world.patients_a[0].id)
    moment = dt.datetime(2026, 7, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    patient.opted_out_at = moment
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id).opted_out_at
    assert stored == moment
    assert stored.tzinfo is dt.UTC


def test_unknown_clinic_time_zone_is_refused(app) -> None:
    with pytest.raises(AdminError, match="Unknown time zone"):
        create_clinic(db.session, slug="x", name="X", time_zone="Not/AZone")


def test_duplicate_clinic_slug_is_refused(world: World) -> None:
    with pytest.raises(AdminError, match="already exists"):
        create_clinic(db.session, slug="a", name="Again", time_zone="UTC")


def test_withdrawing_cancels_what_is_still_to_come(world: World) -> None:
    from proms.admin.services import withdraw_enrollment

    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 1, 5)
    )
    now = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)  # baseline, end of course and month 1 closed
    assert withdraw_enrollment(db.session, enrollment, now=now, reason="moved away") == 2
    expire_closed_assessments(db.session, now)
    db.session.commit()
    statuses = [
        a.status for a in db.session.scalars(select(Assessment).order_by(Assessment.due_at))
    ]
    assert statuses == [AssessmentStatus.EXPIRED] * 3 + [AssessmentStatus.CANCELLED] * 2
    assert enrollment.status is EnrollmentStatus.WITHDRAWN
    assert enrollment.withdrawn_at == now
    with pytest.raises(AdminError, match="already withdrawn"):
        withdraw_enrollment(db.session, enrollment, now=now, reason="again")


def test_an_identity_check_protocol_needs_the_date_of_birth(world: World) -> None:
    world.protocol_a.requires_identity_check = True
    patient = add_patient(world.clinic_a, "NODOB", birth_on=None)
    with pytest.raises(AdminError, match="date of birth"):
        enroll_patient(db.session, patient, world.protocol_a, dt.date(2026, 1, 5))
