"""A clinician's pages in a real browser: the patient list, a patient's trends, the visit summary.

A clinician signs in, filters the list to the patients who got worse, opens one whose pain
interference got meaningfully worse at three months, reads the charts, adds a note, and opens
the printable summary, which prints on one A4 page and on one Letter page. At 390 px (a phone)
nothing scrolls sideways; axe-core finds nothing serious; screenshots are saved as
artifacts/screenshots/clinician-<page>-<phone|desktop>.png.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from proms.admin.services import bundled_protocol, install_protocol
from proms.auth.models import Role
from proms.db import db
from tests.care import scored
from tests.e2e.helpers import LiveServer, Visit, seed_clinic
from tests.helpers import add_patient

EMAIL = "clinician@riverside.example.org"
ZONE = "America/New_York"
GIVEN_NAME = "Maria-Fernanda Guadalupe"
FAMILY_NAME = "Rodriguez-Villanueva de la Torre"
NAME = f"{FAMILY_NAME}, {GIVEN_NAME}"
SCREENSHOT_PREFIX = "clinician"


def seed(live: LiveServer) -> None:
    """Three patients: one worse at three months (a missed infusion), one better, one new."""
    clinic = seed_clinic(live, EMAIL, Role.CLINICIAN, ZONE)
    protocol = install_protocol(db.session, clinic, bundled_protocol("ketamine-infusion-course"))
    worse = add_patient(
        clinic, "MRN-0000012345678", given_name=GIVEN_NAME, family_name=FAMILY_NAME, time_zone=ZONE
    )
    course = scored.course(worse, protocol, days_ago=100)
    scored.infusions(course, missed=(3,))
    scored.answer(course, "baseline", {"promis-pi-4a": 4, "promis-pf-4a": 2, "peg": 7})
    scored.answer(course, "end_of_course", {"promis-pi-4a": 3, "promis-pf-4a": 3, "peg": 4})
    scored.answer(course, "month_1", {"promis-pi-4a": 3, "promis-pf-4a": 3, "peg": 5})
    scored.answer(course, "month_3", {"promis-pi-4a": 5, "promis-pf-4a": 1, "peg": 9})
    better = add_patient(clinic, "MRN-2", given_name="Alma", family_name="Lopez", time_zone=ZONE)
    course = scored.course(better, protocol, days_ago=40)
    scored.infusions(course)
    scored.answer(course, "baseline", {"promis-pi-4a": 4, "promis-pf-4a": 2, "peg": 8})
    scored.answer(course, "end_of_course", {"promis-pi-4a": 2, "promis-pf-4a": 4, "peg": 3})
    scored.course(
        add_patient(clinic, "MRN-3", given_name="Wen", family_name="Zhang", time_zone=ZONE),
        protocol,
        days_ago=-5,
    )
    db.session.commit()


def test_a_clinician_reads_the_list_a_patient_s_trends_and_the_visit_summary(visit: Visit) -> None:
    seed(visit.live)
    page = visit.page
    visit.sign_in(EMAIL)
    expect(visit.heading()).to_have_text("Patients")
    list_row = page.get_by_role("row").filter(has_text=NAME)
    expect(list_row).to_contain_text("Pain interference")
    expect(list_row).to_contain_text("worsened")
    visit.look("patients")

    page.get_by_role("navigation", name="Filters").get_by_role("link", name="Worsened").click()
    expect(page.get_by_role("link", name=NAME)).to_be_visible()
    expect(page.get_by_role("link", name="Lopez, Alma")).to_have_count(0)
    page.get_by_role("link", name=NAME).click()
    expect(visit.heading()).to_have_text(NAME)
    expect(
        page.get_by_role("img", name=re.compile("^Pain interference, course from"))
    ).to_be_visible()
    expect(
        page.get_by_role("table", name=re.compile("^Pain interference: every score"))
    ).to_contain_text("worsened")
    page.get_by_label("Add a note").fill(
        "Called: worse since the missed infusion.\nSee at the visit."
    )
    page.get_by_role("button", name="Add the note").click()
    expect(page.locator("ol.notes")).to_contain_text("Called: worse since the missed infusion.")
    visit.look("patient")

    page.get_by_role("link", name="Visit summary (print)").click()
    expect(visit.heading()).to_have_text(NAME)
    expect(page.get_by_role("img", name=re.compile("^Physical function"))).to_be_visible()
    if visit.label == "desktop":
        visit.look("summary")
        page.emulate_media(media="print")
        for paper in ("A4", "Letter"):
            pdf = page.pdf(format=paper, print_background=True)
            pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
            assert pages == 1, f"the summary prints on {pages} {paper} pages"
    visit.done()
