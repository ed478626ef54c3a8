"""Staff pages in a real browser: they fit a phone and a desktop, and axe finds nothing serious.

A coordinator signs in, lists patients, opens one whose questionnaire is open, makes a link and
reads the questionnaire list; at 390 px (a phone) nothing may scroll sideways.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from proms.admin.services import bundled_protocol, create_clinic, enroll_patient, install_protocol
from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.db import db
from tests.e2e.helpers import LiveServer, check_axe, sideways_overflow
from tests.helpers import PASSWORD, add_patient

Shoot = Callable[[Page, str], None]
TIME_ZONE = "America/New_York"
EMAIL = "coordinator@riverside.example.org"
# Long names and addresses: what a real list holds, and what overflows first.
GIVEN_NAME = "Maria-Fernanda Guadalupe"
FAMILY_NAME = "Rodriguez-Villanueva de la Torre"

WIDTHS = [
    pytest.param({"width": 390, "height": 844}, True, id="phone"),
    pytest.param({"width": 1280, "height": 800}, False, id="desktop"),
]


def seed(live: LiveServer) -> None:
    clinic = create_clinic(
        db.session,
        slug="riverside",
        name="Riverside Pain Clinic",
        time_zone=TIME_ZONE,
        contact_phone="+12165550100",
    )
    protocol = install_protocol(db.session, clinic, bundled_protocol("ketamine-infusion-course"))
    create_staff(
        db.session,
        hasher_from_config(live.app.config),
        email=EMAIL,
        full_name="Rosa Coordinator",
        password=PASSWORD,
        clinic=clinic,
        role=Role.COORDINATOR,
    )
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


@pytest.mark.parametrize(("viewport", "is_mobile"), WIDTHS)
def test_a_coordinator_s_pages_fit_the_screen(
    live_server: LiveServer,
    browser: Browser,
    shoot: Shoot,
    viewport: dict[str, int],
    is_mobile: bool,
) -> None:
    seed(live_server)
    width = viewport["width"]
    page = live_server.new_context(browser, viewport=viewport, is_mobile=is_mobile).new_page()
    label = "phone" if is_mobile else "desktop"
    overflowing: list[str] = []

    def look(name: str) -> None:
        if problem := sideways_overflow(page, width):
            overflowing.append(f"{name}: {problem}")
        check_axe(page, f"staff-{name}-{label}")
        shoot(page, f"staff-{name}-{label}")

    page.goto(f"{live_server.url}/login")
    look("login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients")
    look("patients")
    page.get_by_role("link", name=f"{FAMILY_NAME}, {GIVEN_NAME}").click()
    expect(page.get_by_role("button", name="Create a link")).to_be_visible()
    look("patient")
    page.get_by_role("button", name="Create a link").click()
    expect(page.locator(".link-box code")).to_contain_text(f"{live_server.url}/s/")
    look("link")
    page.goto(f"{live_server.url}/instruments")
    expect(page.get_by_role("heading", level=1)).to_have_text("Questionnaires")
    look("instruments")
    assert not overflowing, "\n".join(overflowing)
