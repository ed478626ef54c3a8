"""Staff pages in a real browser: they fit a phone and a desktop, and axe finds nothing serious.

A coordinator signs in, lists patients, opens one whose questionnaire is open, makes a link and
reads the questionnaire list; at 390 px (a phone) nothing may scroll sideways.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from proms.admin.services import bundled_protocol, enroll_patient, install_protocol
from proms.auth.models import Role
from proms.db import db
from tests.e2e.helpers import LiveServer, Visit, seed_clinic
from tests.helpers import add_patient

TIME_ZONE = "America/New_York"
EMAIL = "coordinator@riverside.example.org"
# Long names and addresses: what a real list holds, and what overflows first.
GIVEN_NAME = "Maria-Fernanda Guadalupe"
FAMILY_NAME = "Rodriguez-Villanueva de la Torre"

SCREENSHOT_PREFIX = "staff"


def seed(live: LiveServer) -> None:
    clinic = seed_clinic(live, EMAIL, Role.COORDINATOR, TIME_ZONE)
    protocol = install_protocol(db.session, clinic, bundled_protocol("ketamine-infusion-course"))
    patient = add_patient(
        clinic,
        "MRN-0000012345678",
        given_name=GIVEN_NAME,
        family_name=FAMILY_NAME,
        email="maria.fernanda.rodriguez.villanueva@a-very-long-domain.example.org",
        time_zone=TIME_ZONE,
    )
    today = dt.datetime.now(ZoneInfo(TIME_ZONE)).date()
    enroll_patient(db.session, patient, protocol, today + dt.timedelta(days=3))
    db.session.commit()


def test_a_coordinator_s_pages_fit_the_screen(visit: Visit) -> None:
    seed(visit.live)
    page, look, live_server = visit.page, visit.look, visit.live
    page.goto(f"{live_server.url}/login")
    look("login")
    visit.sign_in(EMAIL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    visit.nav("Patients")
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients")
    look("patients")
    page.get_by_role("link", name=f"{FAMILY_NAME}, {GIVEN_NAME}").click()
    expect(page.get_by_role("button", name="Create a link")).to_be_visible()
    look("patient")
    page.get_by_role("button", name="Create a link").click()
    expect(page.locator(".link-box code")).to_contain_text(f"{live_server.url}/s/")
    expect(page.get_by_role("img", name="QR code of the patient link")).to_be_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy link").click()  # shown only with JavaScript
    expect(page.get_by_role("status")).to_have_text("Copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator(".link-box code").inner_text().strip()
    look("link")
    page.goto(f"{live_server.url}/instruments")
    expect(page.get_by_role("heading", level=1)).to_have_text("Questionnaires")
    look("instruments")
    visit.done()
