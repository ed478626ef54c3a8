"""The staff patient list: search without PHI in URLs, paging, the latest score per domain with
its change, open alerts, the next questionnaire, filters, and a statement count that stays flat."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from proms.admin.models import Patient
from proms.admin.services import enroll_patient, withdraw_enrollment
from proms.auth.models import Role
from proms.db import db, utcnow
from proms.outcomes.models import Alert, AlertStatus, Score
from tests.care import scored
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


def test_course_and_next_questionnaire_are_summarised(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    anchor_on = patient_today(patient) + dt.timedelta(days=3)
    enroll_patient(db.session, patient, world.protocol_a, anchor_on)
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    row = _row(client.get("/patients").get_data(as_text=True), patient)
    assert f'course from <span class="nowrap">{anchor_on.isoformat()}</span>' in row
    # The baseline window is open: it is the next questionnaire, due on the anchor day.
    assert f'Baseline, <span class="nowrap">due {anchor_on.isoformat()}</span>' in row
    assert '<span class="tag">open now</span>' in row
    assert "No scores yet" in row
    assert 'data-label="Open alerts"><span class="hint">none</span>' in row


# Latest scores, alerts and the change filters ----------------------------------------------


def _row(body: str, patient: Patient) -> str:
    start = body.index(f">{html.escape(patient.display_name)}</a>")
    return body[start : body.index("</tr>", start)]


LATEST = re.compile(
    r'<li><span class="domain">([^<]+)</span> <span class="value">([^<]+)</span> '
    r'<span class="how">(.*?)</span></li>',
    re.S,
)


def _latest(row: str) -> dict[str, tuple[str, str]]:
    """Domain -> (value, change as text: arrow, class and criterion)."""
    return {
        domain: (value, " ".join(re.sub(r"<[^>]+>", " ", how).split()))
        for domain, value, how in LATEST.findall(row)
    }


def _course(world: World, patient: Patient, answers: dict[str, dict[str, int]]) -> None:
    course = scored.course(patient, world.protocol_a, days_ago=100)
    for key, values in answers.items():
        scored.answer(course, key, values)


def test_latest_score_per_domain_with_its_change_up_always_better(
    staff_client, world: World
) -> None:
    """Pain interference falls and physical function rises: both better, both arrows up."""
    patient = world.patients_a[0]
    _course(
        world,
        patient,
        {
            "baseline": {"promis-pi-4a": 4, "promis-pf-4a": 2, "peg": 8},
            "end_of_course": {"promis-pi-4a": 2, "promis-pf-4a": 4, "peg": 3},
        },
    )
    db.session.commit()
    latest = {
        s.domain: s
        for s in db.session.scalars(
            select(Score).where(Score.timepoint_key == "end_of_course", Score.scale == "total")
        )
    }
    baseline = {
        s.domain: s
        for s in db.session.scalars(
            select(Score).where(Score.timepoint_key == "baseline", Score.scale == "total")
        )
    }
    assert latest["pain_interference"].t_score < baseline["pain_interference"].t_score
    assert latest["physical_function"].t_score > baseline["physical_function"].t_score
    client = staff_client(world.user("a", Role.CLINICIAN))
    shown = _latest(_row(client.get("/patients").get_data(as_text=True), patient))
    assert list(shown) == [
        "Pain interference",
        "Physical function",
        "Sleep disturbance",
        "Pain-related anxiety (PASS-20)",
        "Pain (PEG)",
    ]
    pi, pf = latest["pain_interference"], latest["physical_function"]
    assert shown["Pain interference"] == (f"T {pi.t_score:.1f}", "▲ improved (individual)")
    assert shown["Physical function"] == (f"T {pf.t_score:.1f}", "▲ improved (individual)")
    assert shown["Sleep disturbance"][1] == "no meaningful change (individual)"
    # Summed and mean scores have no standard error: the threshold decides.
    assert shown["Pain (PEG)"] == ("3", "▲ improved (threshold)")
    assert shown["Pain-related anxiety (PASS-20)"][1] == "no meaningful change (threshold)"


def test_open_alerts_are_counted_until_resolved(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    _course(world, patient, {"baseline": {"promis-pi-4a": 5, "peg": 9}})  # severe levels
    db.session.commit()
    alerts = db.session.scalars(select(Alert).where(Alert.patient_id == patient.id)).all()
    assert len(alerts) >= 2
    client = staff_client(world.user("a", Role.CLINICIAN))

    def counted() -> str:
        row = _row(client.get("/patients").get_data(as_text=True), patient)
        return re.sub(r"<[^>]+>", "", row.split('data-label="Open alerts">')[1].split("</td>")[0])

    assert counted() == f"{len(alerts)} open alerts"
    alerts[0].status = AlertStatus.ACKNOWLEDGED  # acknowledged is still open
    alerts[0].acknowledged_at = utcnow()
    alerts[1].status = AlertStatus.RESOLVED
    alerts[1].resolved_at = utcnow()
    db.session.commit()
    assert counted() == f"{len(alerts) - 1} open alert" + ("s" if len(alerts) > 2 else "")


def test_worsened_and_improved_go_by_each_domain_s_latest_score(staff_client, world: World) -> None:
    """Worse at one month but better again at three is not "worsened"; better at the end of the
    course but worse at one month is; a baseline alone is neither."""
    recovered, relapsed, new = world.patients_a
    middling = {"promis-pf-4a": 3, "promis-sd-4a": 3, "pass-20": 2, "peg": 5}
    _course(
        world,
        recovered,
        {
            "baseline": {**middling, "promis-pi-4a": 3},
            "month_1": {**middling, "promis-pi-4a": 5},
            "month_3": {**middling, "promis-pi-4a": 2},
        },
    )
    _course(
        world,
        relapsed,
        {
            "baseline": {**middling, "promis-pi-4a": 3},
            "end_of_course": {**middling, "promis-pi-4a": 2},
            "month_1": {**middling, "promis-pi-4a": 5},
        },
    )
    _course(world, new, {"baseline": {**middling, "promis-pi-4a": 5}})
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))

    def listed(key: str) -> set[str]:
        body = client.get(f"/patients?filter={key}").get_data(as_text=True)
        return {p.family_name for p in world.patients_a if f">{p.display_name}</a>" in body}

    assert listed("worsened") == {relapsed.family_name}
    assert listed("improved") == {recovered.family_name}
    assert listed("alert") == {p.family_name for p in world.patients_a}  # PI T 75.6 somewhere


def test_change_filters_page_without_counting(staff_client, world: World, app) -> None:
    """Their total would read every patient's latest scores: pages say only whether more follow."""
    app.config["PATIENTS_PER_PAGE"] = 1
    for patient in world.patients_a[:2]:
        _course(
            world, patient, {"baseline": {"promis-pi-4a": 3}, "end_of_course": {"promis-pi-4a": 5}}
        )
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    first = client.get("/patients?filter=worsened").get_data(as_text=True)
    assert "Patients 1\N{EN DASH}1 · worsened · more on the next page" in first
    assert "<span>Page 1</span>" in first
    assert 'href="/patients?page=2&amp;filter=worsened" rel="next"' in first
    second = client.get("/patients?filter=worsened&page=2").get_data(as_text=True)
    assert "Patients 2\N{EN DASH}2 · worsened · <a" in second
    assert 'rel="next"' not in second
    assert client.get("/patients?filter=worsened&page=3").status_code == 404
    assert "No patients · improved" in client.get("/patients?filter=improved").get_data(
        as_text=True
    )


def _explain(statement: str, parameters: Any) -> list[str]:
    rows = db.session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return [row[-1] for row in rows]


FILTER_KEYS = ("", "worsened", "improved", "alert", "overdue")


def test_the_list_reads_scores_and_alerts_by_index_and_its_statements_do_not_grow(
    staff_client, world: World, app, database_kind: str
) -> None:
    """10 patients or 40, with scores and alerts: the same statements, unfiltered and with each
    filter; on SQLite no statement scans the score or alert table (a filter is an indexed
    lookup per patient)."""
    app.config["PATIENTS_PER_PAGE"] = 50
    client = staff_client(world.user("a", Role.CLINICIAN))
    counts: dict[str, list[int]] = {key: [] for key in FILTER_KEYS}
    worse: set[str] = set()
    for total in (10, 40):
        while len(world.patients_a) < total:
            patient = add_patient(world.clinic_a, f"N{len(world.patients_a)}")
            world.patients_a.append(patient)
            course = scored.course(patient, world.protocol_a, days_ago=100)
            scored.answer(course, "baseline")
            if len(world.patients_a) % 3 == 0:  # a third worse at the end of the course
                scored.answer(course, "end_of_course", {"promis-pi-4a": 5})
                worse.add(patient.display_name)
        db.session.commit()
        for key in FILTER_KEYS:
            with scored.counting_statements() as seen:
                body = client.get(f"/patients?filter={key}").get_data(as_text=True)
            if key == "worsened":
                assert {n for n in re.findall(r'patients/\d+">([^<]+)</a>', body)} == worse
            counts[key].append(len(seen))
            if database_kind == "sqlite" and total == 40:
                plans = [
                    line
                    for statement, parameters in seen
                    if statement.lstrip().upper().startswith("SELECT")
                    for line in _explain(statement, parameters)
                ]
                scans = [line for line in plans if re.match(r"SCAN (score|alert)\b", line)]
                assert not scans, (key, plans)
    assert all(first == second for first, second in counts.values()), counts
