"""`proms demo`: idempotent, realistic enough to click through, refused in production."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select

from proms.admin.models import (
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Patient,
    SessionStatus,
    TreatmentSession,
)
from proms.auth.models import StaffUser
from proms.db import db
from proms.demo import DEMO_STAFF, _synthetic_person, load_demo
from proms.scheduling.models import Assessment, AssessmentStatus
from tests.helpers import login


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_demo_loads_and_is_idempotent(app) -> None:
    now = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    first = load_demo(db.session, now=now)
    db.session.commit()
    assert first.added["patients"] == 220
    snapshot = {
        m.__name__: count(m)
        for m in (Clinic, StaffUser, Patient, Enrollment, Assessment, TreatmentSession)
    }
    second = load_demo(db.session, now=now + dt.timedelta(days=1))
    db.session.commit()
    assert second.added == {}
    assert {
        m.__name__: count(m)
        for m in (Clinic, StaffUser, Patient, Enrollment, Assessment, TreatmentSession)
    } == snapshot
    demo_clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "demo-pain"))
    in_demo = select(func.count()).select_from(Patient).where(Patient.clinic_id == demo_clinic.id)
    assert db.session.scalar(in_demo) == 200


def test_demo_population_is_plausible(app) -> None:
    # Which windows are open depends on the hour, so the moment is fixed, not the suite's: a
    # minute before midnight in New York, on the night the clocks go forward.
    now = dt.datetime(2026, 3, 8, 4, 59, tzinfo=dt.UTC)
    load_demo(db.session, now=now)
    db.session.commit()
    anchors = db.session.scalars(select(Enrollment.anchor_on)).all()
    assert min(anchors) >= now.date() - dt.timedelta(days=549)
    assert max(anchors) <= now.date() + dt.timedelta(days=14)
    # Some patients can answer today, some windows have closed, most courses were completed.
    open_now = db.session.scalar(
        select(func.count())
        .select_from(Assessment)
        .where(
            Assessment.status == AssessmentStatus.SCHEDULED,
            Assessment.opens_at <= now,
            Assessment.closes_at > now,
        )
    )
    assert open_now >= 5
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Assessment)
            .where(Assessment.status == AssessmentStatus.EXPIRED)
        )
        > 100
    )
    done = db.session.scalar(
        select(func.count())
        .select_from(TreatmentSession)
        .where(TreatmentSession.status == SessionStatus.DONE)
    )
    missed = db.session.scalar(
        select(func.count())
        .select_from(TreatmentSession)
        .where(TreatmentSession.status == SessionStatus.MISSED)
    )
    assert done > 10 * missed > 0
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.status == EnrollmentStatus.WITHDRAWN)
        )
        >= 1
    )


def test_the_same_seed_gives_the_same_people() -> None:
    def population(seed: int) -> list[object]:
        rng = random.Random(seed)
        return [_synthetic_person(rng, dt.date(2026, 11, 25), 0, n) for n in range(50)]

    assert population(7) == population(7)
    assert population(7) != population(8)


def test_demo_command_prints_the_logins_and_each_can_sign_in(app, runner) -> None:
    app.config["ENV"] = "development"
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "added 2 clinics" in result.output
    for email, _name, _clinic, _role, password in DEMO_STAFF:
        assert email in result.output
        assert password in result.output
        client = app.test_client()
        assert login(client, email, password).status_code == 302, email
        assert client.get("/patients").status_code == 200
    again = runner.invoke(args=["demo"])
    assert "nothing (already loaded)" in again.output


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("clinician@lakeside.example.org", "proms-demo-lakeside"),
        ("coordinator@lakeside.example.org", "proms-demo-lakeside-coordinator"),
    ],
)
def test_lakeside_staff_see_only_lakeside(app, runner, email: str, password: str) -> None:
    app.config["ENV"] = "development"
    runner.invoke(args=["demo"])
    client = app.test_client()
    login(client, email, password)
    page = client.get("/patients").get_data(as_text=True)
    assert "20 patients" in page
    assert "Demo Pain Management Center" not in page


def test_demo_is_refused_in_production(app, runner) -> None:
    app.config["ENV"] = "production"
    result = runner.invoke(args=["demo"])
    assert result.exit_code != 0
    assert "refused with PROMS_ENV=production" in result.output
    assert count(Patient) == 0
