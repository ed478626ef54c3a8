"""The patient page and the visit summary: course timeline, alerts, one trend per domain with
every number, item-level answers with who entered them, staff notes.

Scores come from real submissions (tests/care/scored.py); the numbers, thresholds and item
wording the page must show are read back from the database and the instrument definitions.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from proms.auth.models import AuditEvent, Role
from proms.care.models import StaffNote
from proms.db import db
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Alert, AlertStatus, Score
from proms.surveys.models import SurveyResponse
from tests.care import scored
from tests.helpers import World, csrf_token

SCRIPT = "<script>alert(1)</script>"


def section(body: str, key: str) -> str:
    start = body.index(f'id="{key}"')
    return body[start : body.index("</section>", start)]


def trend_section(body: str, title: str) -> str:
    """The trend of one domain: from its heading to the end of its table."""
    start = body.index(f">{title}</h3>")
    return body[start : body.index("</table>", start)]


def worse_at_three_months(world: World):  # type: ignore[no-untyped-def]
    """A course 100 days old: better at the end of the course, much worse at three months, the
    one-month answers typed in from paper by a coordinator, infusion 3 missed."""
    patient = world.patients_a[0]
    course = scored.course(patient, world.protocol_a, days_ago=100)
    scored.infusions(course, missed=(3,))
    scored.answer(course, "baseline", {"promis-pi-4a": 4, "promis-pf-4a": 2, "peg": 7})
    scored.answer(course, "end_of_course", {"promis-pi-4a": 3, "promis-pf-4a": 3, "peg": 4})
    scored.answer(
        course,
        "month_1",
        {"promis-pi-4a": 3, "promis-pf-4a": 3, "peg": 5},
        by=world.user("a", Role.COORDINATOR),
    )
    scored.answer(course, "month_3", {"promis-pi-4a": 5, "promis-pf-4a": 1, "peg": 9})
    db.session.commit()
    return patient


def test_the_page_shows_the_course_each_domain_s_trend_and_every_answer(
    staff_client, world: World
) -> None:
    patient = worse_at_three_months(world)
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.get(f"/patients/{patient.id}").get_data(as_text=True)

    course = section(body, "course")
    assert "Infusion days (day 0\N{EN DASH}4)" in course
    assert "4 given" in course
    assert "3: missed" in course
    assert "No transport" in course
    for label in ("Baseline", "End of course", "1 month", "3 months"):
        assert re.search(rf"{label} questionnaire</span>\s*<span class=\"tag\">completed", course)
    assert re.search(r"6 months questionnaire</span>\s*<span class=\"tag\">upcoming", course)

    # One chart per domain the patient has scores in.
    domains = set(
        db.session.scalars(
            select(Score.domain).where(Score.patient_id == patient.id, Score.scale == "total")
        )
    )
    assert body.count('<svg xmlns="http://www.w3.org/2000/svg"') - body.count("QR code") == len(
        domains
    )
    assert len(domains) == 5

    # Every pain interference score: its T, SE and method, both criteria, the threshold and its
    # source as the definition states them.
    trend = trend_section(body, "Pain interference")
    stored = db.session.scalars(
        select(Score)
        .where(Score.patient_id == patient.id, Score.domain == "pain_interference")
        .order_by(Score.observed_at)
    ).all()
    assert len(stored) == 4
    anchor = patient.enrollments[0].anchor_on
    for score, day in zip(stored, (-3, 5, 31, 92), strict=True):
        assert f"T {score.t_score:.1f}" in trend
        on = anchor + dt.timedelta(days=day)
        shown_day = str(day).replace("-", "\N{MINUS SIGN}")
        assert f'day {shown_day} · <span class="nowrap">{on.isoformat()}</span>' in trend
        assert f"SE {score.standard_error:.1f}, {score.method}" in trend
    assert trend.count(">By threshold:") == trend.count(">Individually:") == 3
    last = stored[-1]
    assert (last.change_by_threshold, last.change_by_individual) == ("worsened", "worsened")
    assert f"{last.improvement:.1f}"[1:] + " T worse" in trend  # the size, without its sign
    assert f"RCI +{last.reliable_change_index:.2f}" in trend
    threshold = next(t for t in bundled_registry().get("promis-pi-4a").thresholds if t.primary)
    assert f"Meaningful change: at least {threshold.value:g} T ({threshold.source}" in trend
    assert '<th scope="row">Baseline' in trend

    # Summed scores have no SE: their individual criterion says the threshold decides.
    peg = trend_section(body, "Pain (PEG)")
    assert "no standard error: the threshold decides" in peg
    assert "30% of baseline" in peg

    answers = section(body, "answers")
    coordinator = world.user("a", Role.COORDINATOR)
    assert f"entered by staff: {coordinator.full_name} (paper form)" in answers
    assert answers.count("entered by the patient") == 3
    item = bundled_registry().get("promis-pi-4a").items[0]
    chosen = next(o.label for o in item.options if o.value == 5)
    assert f"<td>{html.escape(item.text)}</td><td>{html.escape(chosen)} <span" in answers

    alerts = section(body, "alerts")
    open_alerts = db.session.scalar(
        select(func.count(Alert.id)).where(
            Alert.patient_id == patient.id, Alert.status != AlertStatus.RESOLVED
        )
    )
    assert open_alerts
    assert alerts.count("<li>") == open_alerts


def test_the_page_shows_draft_answers_and_a_patient_without_scores(
    staff_client, world: World
) -> None:
    patient = world.patients_a[1]
    course = scored.course(patient, world.protocol_a, days_ago=-3)  # baseline open now
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "No scores yet" in body
    assert "No answers yet." in body
    assert re.search(r"Baseline questionnaire</span>\s*<span class=\"tag\">open now", body)
    assert course.id


def _note(client: FlaskClient, patient_id: int, text: str, token: str | None = None):  # type: ignore[no-untyped-def]
    page = f"/patients/{patient_id}"
    data = {"text": text}
    if token != "":
        data["csrf_token"] = token or csrf_token(client, page)
    return client.post(f"{page}/notes", data=data)


def _notes(patient_id: int) -> list[str]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(StaffNote.text).where(StaffNote.patient_id == patient_id).order_by(StaffNote.id)
        )
    )


def test_staff_add_notes_that_are_kept_as_written_and_audited(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    clinician = world.user("a", Role.CLINICIAN)
    client = staff_client(clinician)
    first = _note(client, patient.id, "Phoned: pain worse since Friday.")
    assert first.status_code == 303
    assert first.headers["Location"] == f"/patients/{patient.id}#notes"
    second = _note(client, patient.id, f"  Seen in clinic.\r\nPlan: review {SCRIPT}  ")
    assert second.status_code == 303
    assert _notes(patient.id) == [
        "Phoned: pain worse since Friday.",
        f"Seen in clinic.\nPlan: review {SCRIPT}",
    ]

    notes = section(client.get(f"/patients/{patient.id}").get_data(as_text=True), "notes")
    assert notes.index("Seen in clinic.") < notes.index("Phoned: pain")  # newest first
    assert notes.count(clinician.full_name) == 2
    assert SCRIPT not in notes
    assert html.escape(SCRIPT) in notes

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "note.added").order_by(AuditEvent.id)
    ).all()
    assert [(e.actor_id, e.patient_id, e.clinic_id) for e in events] == [
        (clinician.id, patient.id, world.clinic_a.id)
    ] * 2
    assert all("Phoned" not in str(e.detail) for e in events)  # the note, not its text


@pytest.mark.parametrize(
    ("text", "token", "message"),
    [
        ("   ", None, "Write the note first."),
        ("x" * 2001, None, "A note holds at most 2,000 characters."),
        ("no token", "", "reload the page and try again"),
    ],
    ids=["empty", "too-long", "no-csrf"],
)
def test_a_bad_note_is_refused_with_a_reason(
    staff_client, world: World, text: str, token: str | None, message: str
) -> None:
    patient = world.patients_a[0]
    client = staff_client(world.user("a", Role.CLINICIAN))
    response = _note(client, patient.id, text, token)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _notes(patient.id) == []


def test_notes_need_the_care_team_of_the_patient_s_clinic(staff_client, world: World) -> None:
    patient = world.patients_a[0]
    analyst = staff_client(world.user("a", Role.ANALYST))
    token = csrf_token(analyst, "/instruments")
    assert _note(analyst, patient.id, "hello", token).status_code == 403
    outsider = staff_client(world.user("b", Role.CLINICIAN))
    assert (
        _note(outsider, patient.id, "hello", csrf_token(outsider, "/patients")).status_code == 404
    )
    assert _notes(patient.id) == []
    assert analyst.get(f"/patients/{patient.id}").status_code == 403
    assert analyst.get(f"/patients/{patient.id}/summary").status_code == 403
    assert outsider.get(f"/patients/{patient.id}/summary").status_code == 404


def test_the_visit_summary_is_one_page_with_its_print_stylesheet(
    staff_client, world: World
) -> None:
    patient = worse_at_three_months(world)
    client = staff_client(world.user("a", Role.CLINICIAN))
    body = client.get(f"/patients/{patient.id}/summary").get_data(as_text=True)
    assert re.search(r'<link rel="stylesheet" href="/static/print\.css\?v=[0-9a-f]{12}">', body)
    assert 'aria-label="Main"' not in body  # no staff menu on the printout
    assert "Infusions: 4 given, 1 missed (infusion 3: No transport)" in body
    for score in db.session.scalars(
        select(Score).where(Score.patient_id == patient.id, Score.timepoint_key == "month_3")
    ):
        if score.scale == "total":
            value = (
                f"T {score.t_score:.1f}" if score.t_score is not None else f"{score.raw_score:g}"
            )
            assert value in body
    assert body.count('class="trend-chart"') == 5
    open_alerts = section(body, "s-alerts")
    assert open_alerts.count("<li>") == db.session.scalar(
        select(func.count(Alert.id)).where(Alert.patient_id == patient.id)
    )
    views = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == patient.id)
    ).all()
    assert views == ["patient.summary"]
    assert client.get("/static/print.css").status_code == 200


def test_a_hostile_name_is_inert_on_the_list_the_page_the_summary_and_the_charts(
    staff_client, world: World
) -> None:
    patient = world.patients_a[0]
    patient.given_name = SCRIPT
    patient.family_name = f'"><img src=x onerror=alert(2)>{SCRIPT}'
    course = scored.course(patient, world.protocol_a, days_ago=40)
    scored.answer(course, "baseline")
    scored.answer(course, "end_of_course")
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    pages = {
        "list": client.get("/patients").get_data(as_text=True),
        "page": client.get(f"/patients/{patient.id}").get_data(as_text=True),
        "summary": client.get(f"/patients/{patient.id}/summary").get_data(as_text=True),
    }
    for name, body in pages.items():
        assert SCRIPT not in body, name
        assert "<img src=x" not in body, name
        assert html.escape(SCRIPT) in body, name
    # The charts' titles name the patient: as text.
    titles = re.findall(r"<title id=\"chart-[^\"]+\">([^<]*)</title>", pages["page"])
    assert titles
    assert all(html.escape(SCRIPT) in title for title in titles)


def _statements(client: FlaskClient, path: str) -> int:
    with scored.counting_statements() as seen:
        response = client.get(path)
    assert response.status_code == 200
    return len(seen)


@pytest.mark.parametrize("page", ["", "/summary"], ids=["page", "summary"])
def test_statements_do_not_grow_with_answers(staff_client, world: World, page: str) -> None:
    """One questionnaire answered or four: the same statements (scores, answers in one go)."""
    one, four = world.patients_a[0], world.patients_a[1]
    for patient, keys in ((one, ["baseline"]), (four, list(scored.ANSWER_DAY)[:4])):
        course = scored.course(patient, world.protocol_a, days_ago=100)
        scored.infusions(course)
        for key in keys:
            scored.answer(course, key)
    db.session.commit()
    responses = {
        p.id: db.session.scalar(
            select(func.count(SurveyResponse.id))
            .join(SurveyResponse.assessment)
            .where(SurveyResponse.assessment.has(enrollment_id=p.enrollments[0].id))
        )
        for p in (one, four)
    }
    assert responses[four.id] > 3 * responses[one.id]
    client = staff_client(world.user("a", Role.CLINICIAN))
    client.get(f"/patients/{one.id}{page}")  # warm caches (definitions, templates)
    assert _statements(client, f"/patients/{one.id}{page}") == _statements(
        client, f"/patients/{four.id}{page}"
    )
