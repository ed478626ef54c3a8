"""A coordinator enrolls with a preview, moves the anchor, withdraws, records infusion days and
enters paper answers: through the pages, checked in the database."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import sqlalchemy as sa
from flask.testing import FlaskClient

from proms.admin.enrollment import enroll
from proms.admin.models import Enrollment, EnrollmentStatus, Patient, SessionStatus
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db, utcnow
from proms.outcomes.models import Score
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from proms.surveys.models import SurveyResponse
from tests.helpers import World, add_patient, csrf_token, patient_today

StaffClient = Callable[[StaffUser], FlaskClient]


def _coordinator(world: World, staff_client: StaffClient) -> FlaskClient:
    return staff_client(world.user("a", Role.COORDINATOR))


def _enroll_form(client: FlaskClient, patient: Patient, anchor: dt.date, **extra: str) -> dict:
    page = f"/patients/{patient.id}/enroll"
    return {
        "csrf_token": csrf_token(client, page),
        "protocol": str(patient.clinic_id and _protocol_id(patient)),
        "anchor_on": anchor.isoformat(),
        "baseline": "own",
        **extra,
    }


def _protocol_id(patient: Patient) -> int:
    from proms.admin.models import Protocol

    return db.session.scalar(
        sa.select(Protocol.id).where(Protocol.clinic_id == patient.clinic_id, Protocol.is_active)
    )


def _count(model: type, *where: object) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def test_preview_shows_every_message_in_local_time_and_saves_nothing(
    world: World, staff_client: StaffClient
) -> None:
    client = _coordinator(world, staff_client)
    patient = world.patients_a[0]
    anchor = patient_today(patient) + dt.timedelta(days=30)
    response = client.post(
        f"/patients/{patient.id}/enroll", data=_enroll_form(client, patient, anchor, preview="1")
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "What saving creates" in body
    assert body.count("Invitation") == 5
    assert body.count("Reminder 2") == 5
    # Every message at 10:00 on the patient's clock (New York: EST or EDT).
    times = re.findall(r"\d{4}-\d\d-\d\d (\d\d:\d\d) E[SD]T", body)
    assert set(times) == {"10:00"}
    assert _count(Enrollment) == 0
    assert "Save enrollment" in body


def test_saving_creates_assessments_and_messages_together(
    world: World, staff_client: StaffClient
) -> None:
    client = _coordinator(world, staff_client)
    patient = world.patients_a[0]
    anchor = patient_today(patient) + dt.timedelta(days=30)
    response = client.post(
        f"/patients/{patient.id}/enroll", data=_enroll_form(client, patient, anchor, save="1")
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    enrollment = db.session.scalars(sa.select(Enrollment)).one()
    assert response.headers["Location"].endswith(f"/enrollments/{enrollment.id}")
    assert enrollment.anchor_on == anchor
    assert enrollment.created_by_id == world.user("a", Role.COORDINATOR).id
    assert _count(Assessment, Assessment.enrollment_id == enrollment.id) == 5
    pending = db.session.scalars(
        sa.select(Notification).where(Notification.status == NotificationStatus.PENDING)
    ).all()
    assert len(pending) == 15  # an invitation and two reminders for each of five windows
    assert len({n.idempotency_key for n in pending}) == 15
    assert {n.channel.value for n in pending} == {"email"}
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "enrollment.created")
    ).one()
    assert event.patient_id == patient.id
    assert event.detail["after"]["anchor_on"] == anchor.isoformat()
    page = client.get(f"/enrollments/{enrollment.id}").get_data(as_text=True)
    assert "15 in all, 15 still to send" in page


def test_a_day_0_far_from_today_is_questioned(world: World, staff_client: StaffClient) -> None:
    client = _coordinator(world, staff_client)
    patient = world.patients_a[0]
    anchor = patient_today(patient) + dt.timedelta(days=400)  # a typo in the year, probably
    body = client.post(
        f"/patients/{patient.id}/enroll", data=_enroll_form(client, patient, anchor, preview="1")
    ).get_data(as_text=True)
    assert "more than six months from today: check the year" in body


def test_a_patient_without_contact_is_previewed_with_the_reason(
    world: World, staff_client: StaffClient
) -> None:
    patient = add_patient(world.clinic_a, "NOCONTACT", email=None)
    db.session.commit()
    client = _coordinator(world, staff_client)
    anchor = patient_today(patient) + dt.timedelta(days=30)
    body = client.post(
        f"/patients/{patient.id}/enroll", data=_enroll_form(client, patient, anchor, preview="1")
    ).get_data(as_text=True)
    assert "no email or mobile number on file" in body
    assert "15 messages will not be sent" in body


def test_bad_input_is_a_400_with_a_message(world: World, staff_client: StaffClient) -> None:
    client = _coordinator(world, staff_client)
    patient = world.patients_a[0]
    data = _enroll_form(client, patient, dt.date(2026, 1, 1), preview="1")
    data["anchor_on"] = "next tuesday"
    response = client.post(f"/patients/{patient.id}/enroll", data=data)
    assert response.status_code == 400
    assert "Enter the date as a calendar date" in response.get_data(as_text=True)
    data["anchor_on"] = "2026-01-01"
    data["protocol"] = str(world.protocol_b.id)  # another clinic's protocol: not a choice
    assert client.post(f"/patients/{patient.id}/enroll", data=data).status_code == 400
    assert _count(Enrollment) == 0


def _enrolled(world: World, days_ahead: int = 30, **fields: object) -> Enrollment:
    patient = world.patients_a[0]
    for name, value in fields.items():
        setattr(patient, name, value)
    enrollment = enroll(
        db.session,
        patient,
        world.protocol_a,
        patient_today(patient) + dt.timedelta(days=days_ahead),
        now=utcnow(),
    )
    db.session.commit()
    return enrollment


def test_moving_the_anchor_previews_then_moves_what_is_not_answered(
    world: World, staff_client: StaffClient
) -> None:
    enrollment = _enrolled(world)
    before = {a.id: a.opens_at for a in enrollment.assessments}
    client = _coordinator(world, staff_client)
    page = f"/enrollments/{enrollment.id}/anchor"
    new_anchor = enrollment.anchor_on + dt.timedelta(days=7)
    data = {"csrf_token": csrf_token(client, page), "anchor_on": new_anchor.isoformat()}
    preview = client.post(page, data={**data, "preview": "1"})
    assert preview.status_code == 200
    assert "What changes" in preview.get_data(as_text=True)
    db.session.expire_all()
    assert {
        a.id: a.opens_at for a in db.session.get(Enrollment, enrollment.id).assessments
    } == before
    saved = client.post(page, data={**data, "save": "1"})
    assert saved.status_code == 303
    db.session.expire_all()
    moved = db.session.get(Enrollment, enrollment.id)
    assert moved.anchor_on == new_anchor
    assert all(a.opens_at == before[a.id] + dt.timedelta(days=7) for a in moved.assessments)
    rows = db.session.scalars(sa.select(Notification)).all()
    assert sum(r.status is NotificationStatus.PENDING for r in rows) == 15
    assert sum(r.cancel_reason == "rescheduled" for r in rows) == 15
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "enrollment.anchor_changed")
    ).one()
    assert event.detail["before"]["anchor_on"] != event.detail["after"]["anchor_on"]


def test_withdrawing_needs_a_reason_and_cancels_everything_pending(
    world: World, staff_client: StaffClient
) -> None:
    enrollment = _enrolled(world)
    client = _coordinator(world, staff_client)
    page = f"/enrollments/{enrollment.id}/withdraw"
    token = csrf_token(client, page)
    refused = client.post(page, data={"csrf_token": token, "reason": " "})
    assert refused.status_code == 400
    assert "Give the reason" in refused.get_data(as_text=True)
    assert client.post(page, data={"csrf_token": token, "reason": "moved away"}).status_code == 303
    db.session.expire_all()
    found = db.session.get(Enrollment, enrollment.id)
    assert found.status is EnrollmentStatus.WITHDRAWN
    assert found.withdrawal_reason == "moved away"
    assert all(a.status is AssessmentStatus.CANCELLED for a in found.assessments)
    rows = db.session.scalars(sa.select(Notification)).all()
    assert len(rows) == 15
    assert all(r.status is NotificationStatus.CANCELLED for r in rows)
    assert {r.cancel_reason for r in rows} == {"withdrawn"}


def test_recording_the_five_infusion_days(world: World, staff_client: StaffClient) -> None:
    enrollment = _enrolled(world, days_ahead=-2)
    client = _coordinator(world, staff_client)
    token = csrf_token(client, f"/enrollments/{enrollment.id}")
    missed = client.post(
        f"/enrollments/{enrollment.id}/days/3",
        data={"csrf_token": token, "day3-outcome": "missed"},
    )
    assert missed.status_code == 400
    assert "Say why the infusion was missed" in missed.get_data(as_text=True)
    for day in range(1, 6):
        data = {"csrf_token": token, f"day{day}-outcome": "given"}
        if day == 2:
            data[f"day{day}-side_effects"] = ["dissociation", "nausea"]
        if day == 4:
            data = {"csrf_token": token, "day4-outcome": "missed", "day4-missed_reason": "unwell"}
        response = client.post(f"/enrollments/{enrollment.id}/days/{day}", data=data)
        assert response.status_code == 303, response.get_data(as_text=True)
    db.session.expire_all()
    sessions = db.session.get(Enrollment, enrollment.id).sessions
    assert [s.status for s in sessions] == [
        SessionStatus.DONE,
        SessionStatus.DONE,
        SessionStatus.DONE,
        SessionStatus.MISSED,
        SessionStatus.DONE,
    ]
    assert sessions[1].side_effects == ["dissociation", "nausea"]
    assert sessions[3].missed_reason == "unwell"
    assert sessions[0].scheduled_on == enrollment.anchor_on
    bad = client.post(
        f"/enrollments/{enrollment.id}/days/1",
        data={"csrf_token": token, "day1-outcome": "given", "day1-side_effects": "levitation"},
    )
    assert bad.status_code == 400
    assert (
        client.post(f"/enrollments/{enrollment.id}/days/9", data={"csrf_token": token}).status_code
        == 404
    )


def test_paper_answers_are_scored_like_a_patients(world: World, staff_client: StaffClient) -> None:
    enrollment = _enrolled(world, days_ahead=3)  # the baseline window is open
    baseline = enrollment.assessments[0]
    client = _coordinator(world, staff_client)
    page = f"/assessments/{baseline.id}/answers"
    form = client.get(page)
    assert form.status_code == 200
    body = form.get_data(as_text=True)
    # Opening the form writes nothing: the questionnaire is still "not started".
    db.session.expire_all()
    assert db.session.get(Assessment, baseline.id).status is AssessmentStatus.SCHEDULED
    assert _count(SurveyResponse, SurveyResponse.assessment_id == baseline.id) == 0
    names = sorted(set(re.findall(r'name="(q\d+)"', body)), key=lambda n: int(n[1:]))
    assert len(names) > 10
    data = {"csrf_token": csrf_token(client, page), "source": "paper"}
    incomplete = client.post(page, data={**data, names[0]: "1"})
    assert incomplete.status_code == 400
    assert "Not answered" in incomplete.get_data(as_text=True)
    assert _count(SurveyResponse, SurveyResponse.assessment_id == baseline.id) == 0
    for name in names:
        values = re.findall(rf'name="{name}"[^>]* value="([^"]*)"', body)
        data[name] = values[1]  # the second option of each question (never "Not answered")
    data[names[-1]] = ""  # the last one left blank on the paper
    saved = client.post(page, data=data)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    db.session.expire_all()
    assessment = db.session.get(Assessment, baseline.id)
    assert assessment.status is AssessmentStatus.COMPLETED
    responses = db.session.scalars(
        sa.select(SurveyResponse).where(SurveyResponse.assessment_id == baseline.id)
    ).all()
    assert {r.entry_source for r in responses} == {"paper"}
    assert {r.entered_by_id for r in responses} == {world.user("a", Role.COORDINATOR).id}
    assert _count(Score, Score.enrollment_id == enrollment.id) >= 5
    reminders = db.session.scalars(
        sa.select(Notification).where(Notification.assessment_id == baseline.id)
    ).all()
    # Enrolled mid-window: the invitation went at once and a reminder two days later (the one
    # five days later would fall after the window); both cancelled by the answers.
    assert len(reminders) == 2
    assert all(r.status is NotificationStatus.CANCELLED for r in reminders)
    again = client.get(page)
    assert again.status_code == 303  # no longer open: back to the course with a message


def test_a_returning_patient_may_reuse_a_recent_baseline(
    world: World, staff_client: StaffClient
) -> None:
    first = _enrolled(world, days_ahead=-20)
    baseline = first.assessments[0]
    baseline.status = AssessmentStatus.COMPLETED
    baseline.completed_at = utcnow() - dt.timedelta(days=21)
    first.status = EnrollmentStatus.COMPLETED
    db.session.commit()
    patient = world.patients_a[0]
    client = _coordinator(world, staff_client)
    anchor = patient_today(patient)
    form = client.get(f"/patients/{patient.id}/enroll").get_data(as_text=True)
    assert f"reuse:{first.id}" in form
    response = client.post(
        f"/patients/{patient.id}/enroll",
        data=_enroll_form(client, patient, anchor, save="1", baseline=f"reuse:{first.id}"),
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    second = db.session.scalars(sa.select(Enrollment).where(Enrollment.id != first.id)).one()
    assert second.baseline_from_id == first.id
    new_baseline = second.assessments[0]
    assert new_baseline.status is AssessmentStatus.CANCELLED
    assert _count(Notification, Notification.assessment_id == new_baseline.id) == 0
