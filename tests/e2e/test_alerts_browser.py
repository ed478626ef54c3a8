"""The alerts inbox in a real browser: a clinician opens the inbox, opens the patient whose
answers raised an urgent alert, and acknowledges it there with a note.

At 390 px (a phone) nothing scrolls sideways; axe-core finds nothing serious on the inbox;
screenshots are saved as artifacts/screenshots/inbox-<phone|desktop>.png (and the patient
page's alerts after acknowledging, alerts-patient-<phone|desktop>.png).
"""

from __future__ import annotations

from playwright.sync_api import expect

from proms.admin.services import bundled_protocol, install_protocol
from proms.auth.models import Role
from proms.db import db
from tests.care import scored
from tests.e2e.helpers import (
    SCREENSHOTS,
    LiveServer,
    Visit,
    check_axe,
    seed_clinic,
    sideways_overflow,
)
from tests.helpers import add_patient

EMAIL = "clinician@riverside.example.org"
ZONE = "America/New_York"
GIVEN_NAME = "Maria-Fernanda Guadalupe"
FAMILY_NAME = "Rodriguez-Villanueva de la Torre"
NAME = f"{FAMILY_NAME}, {GIVEN_NAME}"


def seed(live: LiveServer) -> None:
    """One patient much worse a month after her course (severe pain interference, PEG 9, very
    limited function), one with a severe side effect, one well."""
    clinic = seed_clinic(live, EMAIL, Role.CLINICIAN, ZONE)
    protocol = install_protocol(db.session, clinic, bundled_protocol("ketamine-infusion-course"))
    worse = add_patient(
        clinic, "MRN-0000012345678", given_name=GIVEN_NAME, family_name=FAMILY_NAME, time_zone=ZONE
    )
    course = scored.course(worse, protocol, days_ago=40)
    scored.answer(course, "baseline", {"promis-pi-4a": 2, "promis-pf-4a": 3, "peg": 4})
    scored.answer(course, "month_1", {"promis-pi-4a": 5, "promis-pf-4a": 1, "peg": 9})
    dizzy = add_patient(clinic, "MRN-2", given_name="Alma", family_name="Lopez", time_zone=ZONE)
    course = scored.course(dizzy, protocol, days_ago=8)
    scored.answer(course, "baseline")
    scored.answer(
        course, "end_of_course", {"infusion-side-effects": {"hallucinations": 3, "headache": 1}}
    )
    well = add_patient(clinic, "MRN-3", given_name="Wen", family_name="Zhang", time_zone=ZONE)
    scored.answer(scored.course(well, protocol, days_ago=8), "baseline")
    db.session.commit()


def look(visit: Visit, name: str) -> None:
    """Visit.look, with the screenshot named <name>-<phone|desktop>."""
    if problem := sideways_overflow(visit.page, visit.width):
        visit.overflowing.append(f"{name}: {problem}")
    check_axe(visit.page, f"{name}-{visit.label}")
    visit.shoot(visit.page, f"{name}-{visit.label}")


def test_a_clinician_opens_the_inbox_then_the_patient_and_acknowledges(visit: Visit) -> None:
    seed(visit.live)
    page = visit.page
    visit.sign_in(EMAIL)
    visit.nav("Alerts")
    expect(visit.heading()).to_have_text("Alerts")
    rows = page.locator("ul.alerts > li")
    # Urgent first (her two severe levels, then Alma's side effect, raised later), then the
    # next-visit ones; Wen has none.
    expect(rows.first).to_contain_text("Urgent")
    expect(rows.first).to_contain_text("Severe pain interference: T 75.6")
    expect(rows.nth(2)).to_contain_text("Severe side effect")
    expect(rows.nth(2)).to_contain_text("Seeing or hearing things that were not there")
    expect(rows.last).to_contain_text("Next visit")
    expect(page.get_by_text("Zhang")).to_have_count(0)
    look(visit, "inbox")

    rows.first.get_by_role("link", name=NAME).click()
    alerts = page.locator("section#alerts")
    expect(alerts).to_be_visible()
    first = alerts.locator("ul.alerts > li").filter(has_text="Severe pain interference").first
    first.get_by_text("Add a note").click()
    first.get_by_label("Note (optional)").fill("Called her; seen tomorrow at 9.")
    first.get_by_role("button", name=f"Acknowledge the alert for {NAME}").click()
    expect(visit.flash()).to_have_text("Alert acknowledged.")
    acknowledged = alerts.locator("ul.alerts > li").filter(has_text="Severe pain interference")
    expect(acknowledged).to_contain_text("Acknowledged by Rosa Ramirez-Castellanos")
    expect(acknowledged).to_contain_text("Called her; seen tomorrow at 9.")
    alerts.screenshot(path=str(SCREENSHOTS / f"alerts-patient-{visit.label}.png"))
    expect(
        acknowledged.get_by_role("button", name=f"Acknowledge the alert for {NAME}")
    ).to_have_count(0)

    visit.nav("Alerts")
    expect(rows.first).to_contain_text("Acknowledged by Rosa Ramirez-Castellanos")
    visit.done()
