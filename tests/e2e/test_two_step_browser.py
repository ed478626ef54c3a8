"""Two-step sign-in in a real browser, at a phone's width and at a desktop's.

A new admin signs in with the password, is sent to set up two-step sign-in, reads the key off
the page (as someone without a camera would), confirms a code, sees the recovery codes once,
then signs out and in again with a code (a wrong one first). They look at their account page
(sessions), a staff member's page (sign out everywhere) and the clinic's settings (require it
of all staff). Every page fits the screen, axe-core finds nothing serious, and a screenshot of
each is saved as artifacts/screenshots/two-step-<page>-<phone|desktop>.png.
"""

from __future__ import annotations

import pyotp
import sqlalchemy as sa
from playwright.sync_api import expect

from proms.admin.models import Clinic
from proms.auth import sessions
from proms.auth.models import Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import RequestInfo, create_staff
from proms.db import db, utcnow
from tests.e2e.helpers import Visit, seed_clinic
from tests.helpers import PASSWORD, next_code

ADMIN = "admin@riverside.example.org"
NURSE = "nurse@riverside.example.org"
SCREENSHOT_PREFIX = "two-step"


def test_an_admin_sets_up_two_step_sign_in_and_signs_in_with_a_code(visit: Visit) -> None:
    clinic = seed_clinic(visit.live, ADMIN, Role.ADMIN)
    nurse = create_staff(
        db.session,
        hasher_from_config(visit.live.app.config),
        email=NURSE,
        full_name="Noor Nurse",
        password=PASSWORD,
        clinic=clinic,
        role=Role.CLINICIAN,
    )
    # The nurse is signed in somewhere (a session record, as a sign-in would make).
    sessions.start(db.session, nurse, now=utcnow(), origin=RequestInfo(user_agent="Firefox/1"))
    db.session.commit()
    page = visit.page

    # The password first: an admin must set up two-step sign-in before anything else.
    page.goto(f"{visit.live.url}/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(visit.heading()).to_have_text("Set up two-step sign-in")
    expect(page.locator("figure.qr svg")).to_be_visible()
    visit.look("setup")
    page.goto(f"{visit.live.url}/patients")
    expect(visit.heading()).to_have_text("Set up two-step sign-in")

    key = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(
        "123456" if pyotp.TOTP(key).now() != "123456" else "654321"
    )
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.locator(".error-summary")).to_be_visible()
    expect(page.get_by_text("That code does not match")).to_be_visible()
    visit.look("setup-wrong-code")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(visit.heading()).to_have_text("Your recovery codes")
    expect(page.locator("ol li code")).to_have_count(10)
    visit.look("recovery-codes")
    page.get_by_role("link", name="I have kept them: continue").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    # Out, and in again: the password, then a code (a wrong one first).
    page.get_by_role("button", name="Sign out").click()
    expect(visit.flash()).to_contain_text("You are signed out.")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(visit.heading()).to_have_text("Enter your code")
    visit.look("code")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    visit.look("code-wrong")
    page.get_by_label("Code").fill(next_code(ADMIN))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    # The account page: two-step on, this browser's session.
    page.goto(f"{visit.live.url}/account")
    expect(visit.heading()).to_have_text("Your account")
    expect(page.get_by_text("(this browser)")).to_be_visible()
    expect(page.get_by_role("button", name="Make new recovery codes")).to_be_visible()
    visit.look("account")

    # A staff member's page: their sign-in, and "sign out everywhere".
    page.goto(f"{visit.live.url}/clinics/{clinic.id}/staff/{nurse.id}")
    expect(visit.heading()).to_have_text("Noor Nurse")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(visit.flash()).to_contain_text("Noor Nurse is signed out everywhere (1 session ended)")
    visit.look("staff-member")

    # The clinic's settings: require it of all staff.
    page.goto(f"{visit.live.url}/clinics/{clinic.id}/edit")
    page.get_by_label("Require two-step sign-in for all staff").check()
    visit.look("clinic-edit")
    page.get_by_role("button", name="Save").click()
    expect(visit.flash()).to_contain_text("The clinic's settings are saved.")
    db.session.rollback()  # a fresh read: the server committed in its own connection
    saved = db.session.get(Clinic, clinic.id)
    assert saved is not None
    assert saved.requires_mfa
    admin = db.session.scalars(sa.select(StaffUser).where(StaffUser.email == ADMIN)).one()
    assert admin.is_mfa_enabled
    assert not visit.live.foreign_requests()
    visit.done((400, "/account/two-step"), (401, "/login/code"))
