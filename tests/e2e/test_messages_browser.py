"""Messages that went wrong, in a real browser, at a phone's width and at a desktop's.

A coordinator finds a failed text and an uncertain email on the worklist, calls the patients,
sends the first again and marks the second as sent; reads a course's message history and sends
a waiting invitation now; and reads the patient page's history. Every page fits the screen,
axe-core finds nothing serious, and screenshots are saved under artifacts/screenshots/ as
messages-<page>-<phone|desktop>.png.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from playwright.sync_api import expect

from proms.admin.enrollment import enroll
from proms.admin.models import Channel, Enrollment, Patient, Protocol
from proms.auth.models import Role
from proms.db import db, utcnow
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus
from tests.e2e.helpers import SCREENSHOTS, LiveServer, Visit, seed_clinic
from tests.helpers import add_patient

ZONE = "America/New_York"
EMAIL = "coordinator@riverside.example.org"
SCREENSHOT_PREFIX = "messages"


def _planned(course: Enrollment, kind: str, number: int, point: int = 0) -> Notification:
    return db.session.scalars(
        sa.select(Notification).where(
            Notification.assessment_id == course.assessments[point].id,
            Notification.idempotency_key.like(f"%:{kind}:{number}:%"),
        )
    ).one()


def shoot_messages(visit: Visit, name: str) -> None:
    """The page's messages section alone, full size: what a reviewer reads first."""
    section = visit.page.locator("#messages")
    section.screenshot(path=str(SCREENSHOTS / f"{SCREENSHOT_PREFIX}-{name}-{visit.label}.png"))


def seed(live: LiveServer) -> tuple[Patient, Patient, Enrollment]:
    """Two patients whose messages went wrong, one with a history of every kind."""
    clinic = seed_clinic(live, EMAIL, Role.COORDINATOR, ZONE)
    protocol = db.session.scalars(sa.select(Protocol).where(Protocol.clinic_id == clinic.id)).one()
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    now = utcnow()
    texted = add_patient(
        clinic,
        "MRN-2026-0107",
        given_name="Guadalupe",
        family_name="Villanueva-Hargreaves",
        phone="+12165550147",
        preferred_channel=Channel.SMS,
    )
    emailed = add_patient(clinic, "MRN-2026-0108", given_name="Tom", family_name="Okafor")
    courses = [
        enroll(db.session, patient, protocol, today + dt.timedelta(days=3), now=now)
        for patient in (texted, emailed)
    ]
    db.session.flush()
    # A text refused five times, then a reminder by email sent and delivered.
    failed = _planned(courses[0], "invite", 0)
    failed.send_after = now - dt.timedelta(days=2)
    failed.status, failed.attempts = NotificationStatus.FAILED, 5
    failed.last_error = "Twilio error 21610: the number has replied STOP"
    reminder = _planned(courses[0], "reminder", 1)
    reminder.channel = Channel.EMAIL
    reminder.send_after = reminder.handed_over_at = reminder.sent_at = now - dt.timedelta(hours=2)
    reminder.status, reminder.attempts = NotificationStatus.SENT, 1
    # An email handed over when the scheduler stopped.
    unsure = _planned(courses[1], "invite", 0)
    unsure.send_after = unsure.handed_over_at = now - dt.timedelta(hours=5)
    unsure.claimed_at = unsure.handed_over_at
    unsure.status, unsure.attempts = NotificationStatus.UNKNOWN, 1
    unsure.last_error = "the scheduler stopped while sending: it is not known whether it went"
    # The end of course's invitation was planned for later: it is open now and waits.
    end = courses[0].assessments[1]
    end.opens_at = now - dt.timedelta(days=1)
    waiting = _planned(courses[0], "invite", 0, point=1)
    waiting.send_after = waiting.next_attempt_at = now + dt.timedelta(hours=3)
    db.session.commit()
    return texted, emailed, courses[0]


def test_a_coordinator_decides_on_messages_that_went_wrong(visit: Visit) -> None:
    texted, emailed, course = seed(visit.live)
    page, look = visit.page, visit.look
    visit.sign_in(EMAIL)
    expect(visit.heading()).to_have_text("Worklist")
    problems = page.locator("#messages")
    expect(problems).to_contain_text("Villanueva-Hargreaves")
    expect(problems).to_contain_text("Invitation (Baseline) by text message")
    expect(problems).to_contain_text("Failed after 5 tries: Twilio error 21610")
    expect(problems).to_contain_text("The scheduler stopped while sending; it may have arrived.")
    look("worklist")
    shoot_messages(visit, "worklist-section")

    # The text did not arrive: a new link goes by text.
    problems.locator("li", has_text="Villanueva-Hargreaves").get_by_role(
        "button", name="It did not arrive: send again"
    ).click()
    expect(visit.flash()).to_contain_text("A new link goes by text message within a minute.")
    # The email did arrive.
    page.locator("#messages li", has_text="Okafor").get_by_role(
        "button", name="It arrived: mark as sent"
    ).click()
    expect(visit.flash()).to_contain_text("Invitation marked as sent.")
    expect(page.locator("#messages")).to_have_count(0)
    db.session.rollback()  # a fresh read: the server committed in its own connection
    resent = db.session.scalars(
        sa.select(Notification).where(Notification.kind == NotificationKind.NEW_LINK)
    ).one()
    assert resent.patient_id == texted.id
    assert resent.channel is Channel.SMS

    # The course page: every message with its fate; the waiting invitation goes now.
    page.goto(f"{visit.live.url}/enrollments/{course.id}")
    history = page.locator("#messages")
    expect(history).to_contain_text("New link (sent again)")
    expect(history).to_contain_text("staff sent a new link in its place")
    expect(history).to_contain_text("Reminder 2")
    look("course")
    shoot_messages(visit, "course-history")
    history.get_by_role("button", name="Send now").click()
    expect(visit.flash()).to_contain_text("The invitation goes")
    expect(page.locator("#messages").get_by_role("button", name="Send now")).to_have_count(0)

    # The patient page: the latest first, the plan after.
    page.goto(f"{visit.live.url}/patients/{texted.id}")
    items = page.locator("#messages li")
    expect(items.first).to_contain_text("Invitation, End of course")  # sent now: the latest
    expect(items.first).to_contain_text("due: it goes within a minute")
    expect(items.nth(1)).to_contain_text("New link (sent again)")
    expect(page.locator("#messages")).to_contain_text("Next: ")
    look("patient")
    shoot_messages(visit, "patient-history")
    page.goto(f"{visit.live.url}/patients/{emailed.id}")
    expect(page.locator("#messages")).to_contain_text("staff marked it as sent")
    visit.done()
