"""The audit log in a real browser, at a phone's width and at a desktop's.

An admin opens the log from the clinic's page: a coordinator's change reads as its fields before
and after, a view names the patient, a refused sign-in says so; then the admin keeps only the
patient events. Nothing scrolls sideways, axe-core finds nothing serious, and the screenshots are
artifacts/screenshots/audit-<phone|desktop>.png.
"""

from __future__ import annotations

import datetime as dt

from playwright.sync_api import expect

from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import RequestInfo, create_staff, record_event
from proms.db import db, utcnow
from tests.e2e.helpers import Visit, check_axe, seed_clinic, sideways_overflow
from tests.helpers import PASSWORD, add_patient

ADMIN = "admin@riverside.example.org"
PHONE = RequestInfo(
    ip_address="198.51.100.23",
    user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
)
DESK = RequestInfo(
    ip_address="2001:db8:85a3::8a2e:370:7334",
    user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
)


def seed(visit: Visit) -> None:
    clinic = seed_clinic(visit.live, ADMIN, Role.ADMIN)
    coordinator = create_staff(
        db.session,
        hasher_from_config(visit.live.app.config),
        email="coordinator@riverside.example.org",
        full_name="Chidi Okonkwo-Abernathy",
        password=PASSWORD,
        clinic=clinic,
        role=Role.COORDINATOR,
    )
    patient = add_patient(
        clinic,
        "MRN-0000012345678",
        given_name="Maria-Fernanda Guadalupe",
        family_name="Rodriguez-Villanueva de la Torre",
        phone="+12165550142",
    )
    start = utcnow() - dt.timedelta(hours=3)

    def event(minutes: int, action: str, origin: RequestInfo, **fields: object) -> None:
        at = start + dt.timedelta(minutes=minutes)
        record_event(db.session, action, origin=origin, now=at, **fields)  # type: ignore[arg-type]

    event(0, "login.succeeded", DESK, actor=coordinator)
    event(2, "patient.view", DESK, actor=coordinator, clinic_id=clinic.id, patient_id=patient.id)
    event(
        5,
        "patient.updated",
        DESK,
        actor=coordinator,
        clinic_id=clinic.id,
        patient_id=patient.id,
        detail={
            "before": {"phone": "+12165550142", "preferred_channel": "email"},
            "after": {"phone": "+12165550199", "preferred_channel": "sms"},
        },
    )
    event(
        30,
        "login.failed",
        PHONE,
        actor=coordinator,
        is_success=False,
        detail={"reason": "wrong_password", "failures": 1},
    )
    db.session.commit()


def test_an_admin_reads_the_audit_log(visit: Visit) -> None:
    seed(visit)
    page = visit.page
    visit.sign_in(ADMIN)
    visit.nav("Clinics")
    page.get_by_role("link", name="Riverside Pain Clinic").click()
    page.get_by_role("link", name="Audit log").click()
    expect(visit.heading()).to_have_text("Audit log")
    entries = page.locator("ol.audit > li")
    # Newest first: the admin's worklist (the first page after signing in), the admin's
    # sign-in (its code, then its password), then the seeded events.
    expect(entries).to_have_count(7)
    expect(entries.nth(0)).to_contain_text("Rosa Ramirez-Castellanos viewed the worklist")
    refused = entries.nth(3)
    expect(refused).to_contain_text("Chidi Okonkwo-Abernathy tried to sign in")
    expect(refused).to_contain_text("refused")
    expect(refused).to_contain_text("Safari 17 on iPhone")
    change = entries.nth(4)
    expect(change).to_contain_text("changed a patient's details")
    expect(change.get_by_role("row", name="phone")).to_contain_text("+12165550142")
    expect(change.get_by_role("row", name="phone")).to_contain_text("+12165550199")
    expect(change).to_contain_text("Edge 126 on Windows")
    problem = sideways_overflow(page, visit.width)
    assert problem is None, problem
    check_axe(page, f"audit-{visit.label}")
    visit.shoot(page, f"audit-{visit.label}")

    page.get_by_label("What").select_option(label="Patients: views and changes (all)")
    page.get_by_role("button", name="Show").click()
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("changed a patient's details")
    visit.done()
