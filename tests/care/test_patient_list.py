"""The staff patient list: search without PHI in URLs, paging, course summaries."""

from __future__ import annotations

import datetime as dt

from proms.admin.services import enroll_patient
from proms.auth.models import Role
from proms.db import db
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


def test_a_page_past_the_end_is_empty_not_an_error(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    response = client.get("/patients?page=99")
    assert response.status_code == 200


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
