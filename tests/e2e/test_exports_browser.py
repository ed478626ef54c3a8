"""The export page in a real browser: an admin downloads a de-identified long CSV.

Screenshots: exports-phone, exports-desktop.
"""

from __future__ import annotations

import csv
import datetime as dt

from playwright.sync_api import expect
from sqlalchemy import func, select

from proms.admin.services import bundled_protocol, enroll_patient, install_protocol
from proms.auth.models import Role
from proms.db import db
from proms.outcomes.models import Score
from tests.care.exports_world import BASELINE_AT, ENROLLED_AT, answer_online, worst
from tests.e2e.helpers import Visit, check_axe, seed_clinic, sideways_overflow
from tests.helpers import add_patient

EMAIL = "admin@riverside.example.org"


def test_an_admin_downloads_a_de_identified_export(visit: Visit) -> None:
    clinic = seed_clinic(visit.live, EMAIL, Role.ADMIN)
    protocol = install_protocol(db.session, clinic, bundled_protocol("ketamine-infusion-course"))
    patient = add_patient(clinic, "R-100", given_name="Nadia", family_name="Okafor")
    course = enroll_patient(db.session, patient, protocol, dt.date(2026, 3, 2), now=ENROLLED_AT)
    db.session.commit()
    answer_online(course, 0, BASELINE_AT, worst)
    page = visit.page
    visit.sign_in(EMAIL)
    page.goto(f"{visit.live.url}/exports")
    expect(visit.heading()).to_have_text("Exports")
    expect(page.get_by_label("De-identified", exact=False)).to_be_checked()
    name = f"exports-{visit.label}"
    problem = sideways_overflow(page, visit.width)
    check_axe(page, name)
    visit.shoot(page, name)
    assert problem is None, problem
    page.get_by_label("Scores, long (CSV)", exact=False).check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename.startswith("proms-csv-long-deidentified-")
    path = download.value.path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == db.session.scalar(select(func.count(Score.id))) > 0
    assert {row["clinic"] for row in rows} == {"riverside"}
    assert all(row["patient"].startswith("P") and "mrn" not in row for row in rows)
    visit.done()
