"""The staff patient list: search without PHI in URLs, paging, course summaries."""

from __future__ import annotations

import datetime as dt

import pytest

from proms.admin.services import enroll_patient, withdraw_enrollment
from proms.auth.models import Role
from proms.db import db, utcnow
from tests.helpers import World, add_patient, csrf_token, patient_today


def test_search_is_a_post_so_names_stay_out_of_urls(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    page = client.get("/patients").get_data(as_text=True)
    assert 'method="post" action="/patients" class="search"' in page
    response = client.post(
        "/patients", data={"q": "testa1", "csrf_token": csrf_token(client, "/patients")}
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "1 patient matching" in body
    assert "TestA1" in body
    assert "TestA0" not in body


def test_search_without_csrf_is_refused(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    assert client.post("/patients", data={"q": "TestA1"}).status_code == 400


def test_search_wildcards_are_literal(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.post("/patients", data={"q": "%", "csrf_token": csrf_token(client, "/patients")})
    assert "0 patients matching" in body.get_data(as_text=True)


def test_paging_plain_and_searched(staff_client, world: World, app) -> None:
    app.config["PATIENTS_PER_PAGE"] = 2
    for n in range(3):
        add_patient(world.clinic_a, f"X{n}", family_name=f"Zed{n}")
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    third = client.get("/patients?page=3").get_data(as_text=True)
    assert "Page 3 of 3" in third
    assert "Zed2" in third
    assert "Zed0" not in third
    token = csrf_token(client, "/patients")
    searched = client.post("/patients", data={"q": "zed", "page": "2", "csrf_token": token})
    body = searched.get_data(as_text=True)
    assert "3 patients matching" in body
    assert "Page 2 of 2" in body
    assert 'name="q" value="zed"' in body  # the pager posts the search again
    assert "Zed2" in body


def test_a_page_past_the_end_is_not_found(staff_client, world: World) -> None:
    """Not an empty 200 that reads as "no patients"."""
    client = staff_client(world.user("a", Role.CLINICIAN))
    assert client.get("/patients?page=1").status_code == 200
    assert client.get("/patients?page=99").status_code == 404
    token = csrf_token(client, "/patients")
    searched = client.post("/patients", data={"q": "test", "page": "2", "csrf_token": token})
    assert searched.status_code == 404
    nothing = client.post("/patients", data={"q": "nobody", "csrf_token": token})
    assert nothing.status_code == 200  # page 1 of an empty result is an answer: none
    assert "0 patients matching" in nothing.get_data(as_text=True)


@pytest.mark.parametrize("query", ["Lopez, Alma", "alma lopez", "LOPEZ", "alm", "MRN-7731", "7731"])
def test_search_finds_a_name_either_way_round_and_the_mrn(
    staff_client, world: World, query: str
) -> None:
    add_patient(world.clinic_a, "MRN-7731", given_name="Alma", family_name="Lopez")
    add_patient(world.clinic_a, "MRN-1", given_name="Alma", family_name="Smith")
    add_patient(world.clinic_a, "MRN-2", given_name="Lopez", family_name="Garcia")
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.post(
        "/patients", data={"q": query, "csrf_token": csrf_token(client, "/patients")}
    ).get_data(as_text=True)
    assert "Lopez, Alma" in body
    if query in ("Lopez, Alma", "alma lopez", "MRN-7731", "7731"):
        assert "1 patient matching" in body


def test_filters(staff_client, world: World) -> None:
    open_now, active, withdrawn = world.patients_a
    enroll_patient(
        db.session, open_now, world.protocol_a, patient_today(open_now) + dt.timedelta(days=1)
    )
    enroll_patient(
        db.session, active, world.protocol_a, patient_today(active) + dt.timedelta(days=60)
    )
    course = enroll_patient(
        db.session, withdrawn, world.protocol_a, patient_today(withdrawn) + dt.timedelta(days=60)
    )
    withdraw_enrollment(db.session, course, now=utcnow(), reason="moved away")
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))

    def listed(key: str) -> set[str]:
        body = client.get(f"/patients?filter={key}").get_data(as_text=True)
        return {p.family_name for p in world.patients_a if p.display_name in body}

    assert listed("open") == {open_now.family_name}
    assert listed("overdue") == {open_now.family_name}  # closes tomorrow, not started
    assert listed("active") == {open_now.family_name, active.family_name}
    assert listed("withdrawn") == {withdrawn.family_name}
    assert client.get("/patients?filter=everything").status_code == 400


def test_course_and_open_assessments_are_summarised(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    anchor_on = patient_today(patient) + dt.timedelta(days=3)
    enroll_patient(db.session, patient, world.protocol_a, anchor_on)
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.get("/patients").get_data(as_text=True)
    row = body[body.index(patient.display_name) :]
    row = row[: row.index("</tr>")]
    assert anchor_on.isoformat() in row
    assert "<td>1</td>" in row  # the baseline window is open
