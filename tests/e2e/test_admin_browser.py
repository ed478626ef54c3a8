"""Admin and coordinator set-up pages in a real browser, at a phone's width and at a desktop's.

An admin edits the clinic's settings, invites a coordinator (who sets a password on another
device and signs in), then makes a new password link for them and deactivates them. A
coordinator adds a time point to the bundled protocol, which makes version 2, and moves a
course to it. A coordinator imports a CSV file: a bad one shows every problem with its line and
column, a clean one is previewed and imported. Every page fits the screen (nothing scrolls
sideways), axe-core finds nothing serious, and a screenshot of each is saved under
artifacts/screenshots/ as admin-<page>-<phone|desktop>.png.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from playwright.sync_api import Browser, FilePayload, Page, expect

from proms.admin.enrollment import enroll
from proms.admin.models import Clinic, Enrollment, Patient, Protocol
from proms.auth.models import Role, StaffUser
from proms.db import db, utcnow
from tests.e2e.helpers import Visit, seed_clinic
from tests.helpers import add_patient

Shoot = Callable[[Page, str], None]
ZONE = "America/New_York"
ADMIN = "admin@riverside.example.org"
COORDINATOR = "coordinator@riverside.example.org"
INVITED = "new.coordinator@riverside.example.org"
NEW_PASSWORD = "lantern orchard velvet"
SCREENSHOT_PREFIX = "admin"


def clinic_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(ZONE)).date()


def staff_user(email: str) -> StaffUser:
    return db.session.scalars(sa.select(StaffUser).where(StaffUser.email == email)).one()


# 1. An admin: the clinic's settings and its staff ---------------------------------------------


def test_an_admin_edits_the_clinic_and_manages_a_coordinator(
    visit: Visit, browser: Browser
) -> None:
    clinic = seed_clinic(visit.live, ADMIN, Role.ADMIN)
    db.session.commit()
    page = visit.page
    visit.sign_in(ADMIN)
    visit.nav("Clinics")
    expect(visit.heading()).to_have_text("Clinics")
    visit.look("clinics")
    page.get_by_role("link", name="Riverside Pain Clinic").click()
    expect(visit.heading()).to_have_text("Riverside Pain Clinic")
    visit.look("clinic")

    # Quiet hours and a contact phone.
    page.get_by_role("link", name="Edit the settings").click()
    expect(visit.heading()).to_have_text("Edit the clinic's settings")
    visit.look("clinic-edit")
    page.get_by_label("Contact phone").fill("(216) 555-0199")
    page.get_by_label("No messages from").fill("22:00")
    page.get_by_label("Until").fill("07:30")
    page.get_by_role("button", name="Save").click()
    expect(visit.flash()).to_contain_text("The clinic's settings are saved.")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    saved = db.session.get(Clinic, clinic.id)
    assert saved is not None
    assert saved.contact_phone == "+12165550199"
    assert (saved.quiet_hours_start, saved.quiet_hours_end) == (dt.time(22, 0), dt.time(7, 30))
    expect(page.locator("dl.facts")).to_contain_text("22:00 to 07:30")

    # Invite a coordinator: the one-time link is shown once, on its own page.
    page.get_by_role("link", name="Invite a staff member").click()
    expect(visit.heading()).to_contain_text("Invite a staff member to")
    visit.look("staff-invite")
    page.get_by_label("Email").fill(INVITED)
    page.get_by_label("Full name").fill("Nadia Okonkwo-Fairweather")
    page.get_by_role("checkbox", name=re.compile("^Coordinator")).check()
    page.get_by_role("button", name="Invite").click()
    expect(visit.heading()).to_have_text("Nadia Okonkwo-Fairweather is invited")
    link = page.locator(".link-box code").inner_text().strip()
    assert link.startswith(f"{visit.live.url}/password/"), link
    visit.look("staff-invite-link")

    # Another device: the coordinator opens the link, sets a password and signs in with it.
    other = visit.live.new_context(
        browser, viewport=page.viewport_size, is_mobile=visit.label == "phone"
    ).new_page()
    other.goto(link)
    expect(other.get_by_role("heading", level=1)).to_have_text("Welcome to proms")
    invited_visit = Visit(visit.live, other, visit.width, visit.label, visit.shoot)
    invited_visit.look("set-password")
    other.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    other.get_by_label("New password again").fill(NEW_PASSWORD)
    other.get_by_role("button", name="Set password").click()
    expect(other.locator(".flash")).to_contain_text("Your password is set.")
    invited_visit.look("login-after-set")
    invited_visit.sign_in(INVITED, NEW_PASSWORD)
    expect(other.get_by_role("heading", level=1)).to_have_text("Worklist")
    invited_visit.done()

    # Back as the admin: a new password link, then deactivate the account.
    page.get_by_role("link", name="← Nadia Okonkwo-Fairweather").click()
    expect(visit.heading()).to_have_text("Nadia Okonkwo-Fairweather")
    visit.look("staff-member")
    page.get_by_role("button", name="Make a new password link").click()
    expect(visit.heading()).to_have_text("New password link for Nadia Okonkwo-Fairweather")
    reset = page.locator(".link-box code").inner_text().strip()
    assert reset.startswith(f"{visit.live.url}/password/")
    assert reset != link
    visit.look("staff-reset-link")
    page.get_by_role("link", name="← Nadia Okonkwo-Fairweather").click()
    page.get_by_role("button", name="Deactivate account").click()
    expect(visit.flash()).to_contain_text("account is deactivated")
    visit.look("staff-member-deactivated")
    db.session.rollback()
    invited = staff_user(INVITED)
    assert not invited.is_active
    assert invited.must_change_password
    visit.done()


# 2. A coordinator: a new time point makes version 2; a course moves to it ----------------------


def test_a_coordinator_adds_a_time_point_and_moves_a_course(visit: Visit) -> None:
    clinic = seed_clinic(visit.live, COORDINATOR, Role.COORDINATOR)
    protocol = db.session.scalars(sa.select(Protocol).where(Protocol.clinic_id == clinic.id)).one()
    patient = add_patient(clinic, "MRN-0000012345678", given_name="Alma", family_name="Lopez")
    course = enroll(
        db.session, patient, protocol, clinic_today() + dt.timedelta(days=20), now=utcnow()
    )
    db.session.commit()
    page = visit.page
    visit.sign_in(COORDINATOR)
    visit.nav("Protocols")
    expect(visit.heading()).to_have_text("Protocols")
    visit.look("protocols")
    page.get_by_role("link", name="Ketamine infusion course").click()
    expect(visit.heading()).to_have_text("Ketamine infusion course, version 1")
    visit.look("protocol")

    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("button", name="Add a time point")).to_be_visible()
    visit.look("protocol-edit")
    page.get_by_role("button", name="Add a time point").click()
    added = page.locator("fieldset.timepoint").last
    expect(added.locator("legend")).to_have_text(re.compile(r"^Time point \d+$"))
    added.get_by_label("Key").fill("month_12")
    added.get_by_label("Label").fill("12 months")
    added.get_by_label("Day (from day 0)").fill("365")
    added.get_by_label("Questionnaires, one per line, in order").fill("promis-pi-4a\npeg@1.0")
    save = page.locator(".actions").get_by_role("button", name="Save")
    save.click()

    # Day 365 is past the 180-day horizon: the message is next to the day, and at the top.
    added = page.locator("fieldset.timepoint").last
    expect(added.locator(".field.has-error")).to_have_count(1)
    expect(added.locator("#timepoints-5-offset_days-error")).to_contain_text(
        "past the protocol's horizon of 180 days"
    )
    expect(page.locator(".error-summary")).to_contain_text("month_12")
    visit.look("protocol-edit-errors")
    page.get_by_label("Horizon (days after day 0)").fill("380")
    added.get_by_label("Opens this many days before").fill("14")
    added.get_by_label("Closes this many days after").fill("14")
    save.click()
    expect(visit.flash()).to_contain_text("Saved as version 2")
    expect(visit.heading()).to_have_text("Ketamine infusion course, version 2")
    visit.look("protocol-v2")

    # The course is still on version 1: preview the move, then move it.
    page.get_by_role("link", name="Version 1").click()
    page.get_by_role("link", name="Move enrollments to version 2").click()
    expect(visit.heading()).to_have_text("Move courses from version 1 to version 2")
    expect(page.locator("section.course")).to_contain_text("added")
    visit.look("protocol-move")
    page.get_by_role("button", name="Move this course to version 2").click()
    expect(visit.flash()).to_contain_text("Moved 1 course to version 2")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    moved = db.session.get(Enrollment, course.id)
    assert moved is not None
    assert moved.protocol.version == 2
    assert "month_12" in [a.timepoint.key for a in moved.assessments]
    visit.done((400, f"/protocols/{protocol.id}/edit"))


# 3. A coordinator: import a file -----------------------------------------------------------------


def csv_file(rows: list[str]) -> FilePayload:
    text = "\n".join(["mrn,given_name,family_name,email,protocol,anchor_date", *rows]) + "\n"
    return {"name": "patients.csv", "mimeType": "text/csv", "buffer": text.encode("utf-8")}


def test_a_coordinator_imports_a_file(visit: Visit) -> None:
    seed_clinic(visit.live, COORDINATOR, Role.COORDINATOR)
    db.session.commit()
    page = visit.page
    soon = (clinic_today() + dt.timedelta(days=10)).isoformat()
    later = (clinic_today() + dt.timedelta(days=24)).isoformat()
    slug = "ketamine-infusion-course"
    visit.sign_in(COORDINATOR)
    expect(visit.heading()).to_have_text("Worklist")
    page.get_by_role("link", name="Import a file").click()
    expect(visit.heading()).to_have_text("Import enrollments")
    visit.look("import")

    # A file with problems: every one listed with its line and column; nothing imported.
    page.get_by_label("CSV file").set_input_files(
        csv_file(
            [
                f"MRN-IMP-001,Maria-Fernanda,Rodriguez-Villanueva,maria@example.org,{slug},{soon}",
                f"MRN-IMP-002,Tomas,,tomas@example,{slug},31/12/2030",
                f"MRN-IMP-003,Lena,Berg,lena@example.org,no-such-protocol,{later}",
            ]
        )
    )
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator(".error-summary")).to_contain_text("Nothing will be imported")
    problems = page.locator("table.list tbody tr")
    lines_and_columns = [
        (row.locator("td").nth(0).inner_text(), row.locator("td").nth(1).inner_text())
        for row in problems.all()
    ]
    assert ("3", "family_name") in lines_and_columns, lines_and_columns
    assert ("3", "email") in lines_and_columns, lines_and_columns
    assert ("3", "anchor_date") in lines_and_columns, lines_and_columns
    assert ("4", "protocol") in lines_and_columns, lines_and_columns
    assert all(line != "—" and column != "—" for line, column in lines_and_columns)
    visit.look("import-problems")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0

    # A clean file: the preview says what each row does; importing makes the patients.
    page.get_by_role("link", name="Choose another file").click()
    page.get_by_label("CSV file").set_input_files(
        csv_file(
            [
                f"MRN-IMP-001,Maria-Fernanda,Rodriguez-Villanueva,maria@example.org,{slug},{soon}",
                f"MRN-IMP-002,Tomas,Berg,tomas@example.org,{slug},{later}",
            ]
        )
    )
    page.get_by_role("button", name="Check the file").click()
    expect(visit.heading()).to_have_text("Import preview: Riverside Pain Clinic")
    expect(page.locator("table.list")).to_contain_text("MRN-IMP-002")
    visit.look("import-preview")
    page.get_by_role("button", name="Import 2 rows").click()
    expect(visit.flash()).to_contain_text("Imported")
    visit.look("import-done")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    imported = db.session.scalars(sa.select(Patient).order_by(Patient.mrn)).all()
    assert [p.mrn for p in imported] == ["MRN-IMP-001", "MRN-IMP-002"]
    anchors = db.session.scalars(sa.select(Enrollment.anchor_on).order_by(Enrollment.anchor_on))
    assert [a.isoformat() for a in anchors] == [soon, later]
    visit.done((400, "/import"))
