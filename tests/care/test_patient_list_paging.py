"""Paging the patient list in the order of its index: staff of several clinics get the clinics'
patients merged by name, pages follow one another without gaps or overlaps, and a filtered list
says whether more follow instead of counting every patient."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from proms.admin.models import Patient
from proms.auth.models import Role
from proms.auth.services import grant
from proms.db import db, utcnow
from proms.outcomes.models import Alert, AlertStatus
from tests.care import scored
from tests.helpers import World, add_patient

LISTED = re.compile(r'<a href="/patients/(\d+)">')


def _pages(client: FlaskClient, query: str = "") -> list[tuple[list[int], str]]:
    """Every page of the list, in order: the patient ids each shows and its count line."""
    pages = []
    number = 1
    while True:
        response = client.get(f"/patients?page={number}{query}")
        if response.status_code == 404:
            return pages
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        count = re.search(r'<p class="count">(.*?)</p>', body, re.S)
        assert count is not None
        pages.append(([int(n) for n in LISTED.findall(body)], re.sub(r"<[^>]+>", "", count[1])))
        number += 1


def _by_name(patients: list[Patient]) -> list[int]:
    return [p.id for p in sorted(patients, key=lambda p: (p.family_name, p.given_name, p.id))]


def test_two_clinics_page_by_name_across_both(staff_client, world: World, app) -> None:
    app.config["PATIENTS_PER_PAGE"] = 2
    user = world.user("a", Role.CLINICIAN)
    grant(db.session, user, world.clinic_b, Role.COORDINATOR)
    # Names interleave across the clinics; the same name twice is told apart by id.
    for clinic, mrn, family in (
        (world.clinic_a, "M1", "Baker"),
        (world.clinic_b, "M2", "Adams"),
        (world.clinic_b, "M3", "Baker"),
        (world.clinic_a, "M4", "Carter"),
        (world.clinic_b, "M5", "Carter"),
    ):
        add_patient(clinic, mrn, family_name=family, given_name="Sam")
    db.session.commit()
    everyone = list(db.session.scalars(select(Patient)))
    assert {p.clinic_id for p in everyone} == {world.clinic_a.id, world.clinic_b.id}

    pages = _pages(staff_client(user))
    assert [n for ids, _count in pages for n in ids] == _by_name(everyone)
    assert all(len(ids) == 2 for ids, _count in pages[:-1])
    assert all(count.startswith(f"{len(everyone)} patients") for _ids, count in pages)

    # Staff of clinic A alone page clinic A's patients, in the same order.
    alone = _pages(staff_client(world.user("a", Role.COORDINATOR)))
    own = [p for p in everyone if p.clinic_id == world.clinic_a.id]
    assert [n for ids, _count in alone for n in ids] == _by_name(own)


def test_a_filtered_list_pages_without_a_total(staff_client, world: World, app) -> None:
    """Open alerts in both clinics; a patient whose alerts are all resolved is not listed."""
    app.config["PATIENTS_PER_PAGE"] = 1
    user = world.user("a", Role.CLINICIAN)
    grant(db.session, user, world.clinic_b, Role.CLINICIAN)
    severe = {"baseline": {"promis-pi-4a": 5}}  # pain interference T 75.6: an urgent alert
    alerted = [world.patients_a[0], world.patients_a[2], world.patients_b[1], world.patients_b[2]]
    for patient in alerted:
        protocol = world.protocol_a if patient in world.patients_a else world.protocol_b
        course = scored.course(patient, protocol, days_ago=30)
        for key, answers in severe.items():
            scored.answer(course, key, answers)
    resolved = world.patients_b[2]
    for alert in db.session.scalars(select(Alert).where(Alert.patient_id == resolved.id)):
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = utcnow()
    db.session.commit()

    pages = _pages(staff_client(user), "&filter=alert")
    listed = [p for p in alerted if p is not resolved]
    assert [n for ids, _count in pages for n in ids] == _by_name(listed)
    assert [count.split(" · ")[0] for _ids, count in pages] == [
        f"Patients {n}\N{EN DASH}{n}" for n in range(1, len(listed) + 1)
    ]
    assert [("more on the next page" in count) for _ids, count in pages] == [True] * (
        len(listed) - 1
    ) + [False]

    # On one page, the list is its own total.
    app.config["PATIENTS_PER_PAGE"] = 50
    (only,) = _pages(staff_client(user), "&filter=alert")
    assert only[1].startswith(f"{len(listed)} patients · open alert")
