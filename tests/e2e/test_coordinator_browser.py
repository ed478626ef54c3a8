"""A coordinator's day in a real browser, at a phone's width and at a desktop's.

They add a patient, enroll them with a preview of every planned message in the patient's local
time, move the course and read the difference, record the five infusion days, enter answers
from a paper form, find patients on the worklist and withdraw another patient. Every page fits
the screen (nothing scrolls sideways) and axe-core finds nothing serious; a screenshot of each
page type is saved under artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from playwright.sync_api import expect

from proms.admin.enrollment import enroll
from proms.admin.models import Enrollment, EnrollmentStatus, Patient, Protocol, SessionStatus
from proms.auth.models import Role
from proms.db import db, utcnow
from proms.scheduling.models import AssessmentStatus, Notification, NotificationStatus
from tests.e2e.helpers import LiveServer, Visit, seed_clinic
from tests.helpers import add_patient

CLINIC_ZONE = "America/New_York"
PATIENT_ZONE = "America/Los_Angeles"  # the patient lives three hours behind the clinic
EMAIL = "coordinator@riverside.example.org"
SCREENSHOT_PREFIX = "coordinator"


def seed(live: LiveServer) -> None:
    clinic = seed_clinic(live, EMAIL, Role.COORDINATOR, CLINIC_ZONE)
    leaving = add_patient(
        clinic, "MRN-LEAVE-1", given_name="Walter", family_name="Whitfield-Okonkwo"
    )
    protocol = db.session.scalars(sa.select(Protocol).where(Protocol.clinic_id == clinic.id)).one()
    today = dt.datetime.now(ZoneInfo(CLINIC_ZONE)).date()
    enroll(db.session, leaving, protocol, today + dt.timedelta(days=20), now=utcnow())
    db.session.commit()


def test_a_coordinator_enrolls_moves_records_and_withdraws(visit: Visit) -> None:
    seed(visit.live)
    page, look, url = visit.page, visit.look, visit.live.url

    def heading() -> Any:
        return expect(visit.heading())

    visit.sign_in(EMAIL)
    heading().to_have_text("Worklist")
    look("worklist")

    # Add a patient.
    page.get_by_role("link", name="Add a patient").first.click()
    page.get_by_label("MRN").fill("MRN-2026-0042")
    page.get_by_label("Given name").fill("Alma")
    page.get_by_label("Family name").fill("Lopez")
    page.get_by_label("Email").fill("alma.lopez@example.org")
    page.get_by_label("Time zone").fill(PATIENT_ZONE) if page.get_by_label("Time zone").evaluate(
        "e => e.tagName"
    ) == "INPUT" else page.get_by_label("Time zone").select_option(PATIENT_ZONE)
    look("patient-new")
    page.get_by_role("button", name=re.compile("Add|Save")).first.click()
    heading().to_have_text("Lopez, Alma")
    look("patient")

    # Correct a detail, then opt out of messages (with the reason) and back in.
    page.get_by_role("link", name="Edit details").click()
    page.get_by_label("Mobile phone (optional)").fill("(213) 555-0147")
    look("patient-edit")
    page.get_by_role("button", name=re.compile("Save")).first.click()
    expect(page.locator(".facts")).to_contain_text("(213) 555-0147")
    page.get_by_label("Reason").fill("Asked on the phone not to get texts or emails")
    page.get_by_role("button", name="Opt out of messages").click()
    expect(page.get_by_text("Opted out of messages on")).to_be_visible()
    look("patient-opted-out")
    page.get_by_role("button", name="Opt back in").click()
    expect(page.get_by_role("button", name="Opt out of messages")).to_be_visible()

    # Enroll with a preview: every message at 10:00 on the patient's clock (Pacific time).
    page.get_by_role("link", name="Enroll in a protocol").click()
    today = dt.datetime.now(ZoneInfo(PATIENT_ZONE)).date()
    anchor = today + dt.timedelta(days=20)  # every window still to open
    page.get_by_label("First infusion day (day 0)").fill(anchor.isoformat())
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="What saving creates")).to_be_visible()
    times = set(re.findall(r"\d\d:\d\d P[SD]T", page.locator(".plan").inner_text()))
    assert {t[:5] for t in times} == {"10:00"}, times
    look("enroll-preview")
    page.get_by_role("button", name="Save enrollment").click()
    expect(page.locator(".flash")).to_contain_text("Enrolled in Ketamine infusion course")
    look("course")

    # Bring the course forward two weeks (the baseline opens now) and read the difference.
    page.get_by_role("link", name="Move the course").click()
    moved_to = anchor - dt.timedelta(days=14)
    page.get_by_label("New first infusion day").fill(moved_to.isoformat())
    page.get_by_role("button", name="Preview the change").click()
    expect(page.get_by_role("heading", name="What changes")).to_be_visible()
    look("anchor-preview")
    page.get_by_role("button", name="Move the course").click()
    expect(page.locator(".flash")).to_contain_text("5 questionnaires moved")

    # Five infusion days: four given (one with side effects), one missed.
    for day in range(1, 6):
        section = page.locator(f"#day-{day}")
        section.locator("summary").click()
        if day == 3:
            section.get_by_role("radio", name="Missed").check()
            section.get_by_label("If missed, why").fill("No transport")
        else:
            section.get_by_role("radio", name="Given").check()
        if day == 2:
            section.get_by_label("Nausea or vomiting").check()
        section.get_by_role("button", name="Save day").click()
        expect(page.locator(".flash")).to_contain_text(f"Day {day} recorded")
    look("course-days")

    # The baseline is open: enter answers from the paper form.
    db.session.rollback()
    patient = db.session.scalars(sa.select(Patient).where(Patient.mrn == "MRN-2026-0042")).one()
    course = db.session.scalars(
        sa.select(Enrollment).where(Enrollment.patient_id == patient.id)
    ).one()
    assert [s.status for s in course.sessions] == [SessionStatus.DONE] * 2 + [
        SessionStatus.MISSED
    ] + [SessionStatus.DONE] * 2
    assert course.anchor_on == moved_to
    page.get_by_role("link", name="Enter answers").first.click()
    heading().to_contain_text("Lopez, Alma")
    look("paper")
    page.get_by_label("Paper form").check()
    for fieldset in page.locator("fieldset.paper-item").all():
        fieldset.locator("input[type=radio]").nth(1).check()
    page.get_by_role("button", name="Save and score the answers").click()
    expect(page.locator(".flash")).to_contain_text("Answers saved and scored")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    baseline = db.session.get(Enrollment, course.id).assessments[0]
    assert baseline.status is AssessmentStatus.COMPLETED

    # The worklist, the patient list's filters, then withdraw the other patient.
    visit.nav("Worklist")
    look("worklist-after")
    visit.nav("Patients")
    page.get_by_role("link", name="Active course").click()
    expect(page.locator(".count")).to_contain_text("2 patients")
    look("patients-filtered")
    page.goto(f"{url}/patients")
    page.get_by_role("link", name=re.compile("Whitfield-Okonkwo")).click()
    page.get_by_role("link", name=re.compile("Ketamine infusion course from")).click()
    page.get_by_role("link", name="Withdraw").click()
    look("withdraw")
    page.get_by_label("Reason").fill("Moved to another state")
    page.get_by_role("button", name="Withdraw from follow-up").click()
    expect(page.locator(".flash")).to_contain_text("Withdrawn")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    leaving = db.session.scalars(
        sa.select(Enrollment).join(Patient).where(Patient.mrn == "MRN-LEAVE-1")
    ).one()
    assert leaving.status is EnrollmentStatus.WITHDRAWN
    pending = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(
            Notification.patient_id == leaving.patient_id,
            Notification.status == NotificationStatus.PENDING,
        )
    )
    assert pending == 0
    visit.done()
