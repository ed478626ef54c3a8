"""Protocols: validation, versions on edit, moving courses between versions, and the pages."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.admin.models import Enrollment, Protocol
from proms.admin.protocol_editing import (
    InstrumentSpec,
    InvalidProtocol,
    ProtocolSpec,
    TimepointSpec,
    create_protocol,
    move_all,
    move_to_version,
    save_edit,
    spec_from_json,
    spec_of,
    validate,
    version_move_preview,
)
from proms.admin.services import (
    BUNDLED_PROTOCOL,
    bundled_protocol,
    create_clinic,
    enroll_patient,
)
from proms.auth.models import AuditEvent, Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from tests.helpers import PASSWORD, World, csrf_token, patient_today

ANCHOR = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 5, 10, 12, 0, tzinfo=dt.UTC)


def bundled_spec() -> ProtocolSpec:
    return spec_from_json(bundled_protocol(BUNDLED_PROTOCOL))


def problems_of(spec: ProtocolSpec) -> list[str]:
    return [str(p) for p in validate(spec, deployment_registry(db.session))]


# Validation ------------------------------------------------------------------------------------


def test_the_bundled_protocol_validates_clean(world: World) -> None:
    assert problems_of(bundled_spec()) == []
    assert problems_of(spec_of(world.protocol_a)) == []


def _tp(spec: ProtocolSpec, n: int) -> TimepointSpec:
    return spec.timepoints[n]


RULES: list[tuple[str, Callable[[ProtocolSpec], Any], str]] = [
    ("slug", lambda s: setattr(s, "slug", "Ketamine Course"), "The short name takes lowercase"),
    (
        "duplicate key",
        lambda s: setattr(_tp(s, 2), "key", "end_of_course"),
        "Time point 3 (end_of_course): The key end_of_course is already used by time point 2.",
    ),
    (
        "key format",
        lambda s: setattr(_tp(s, 2), "key", "Month 1"),
        "Time point 3 (Month 1): The key takes lowercase letters",
    ),
    (
        "offsets in order",
        lambda s: setattr(_tp(s, 3), "offset_days", 20),
        "Time point 4 (month_3): Day 20 must come after time point 3's day 30",
    ),
    (
        "negative window",
        lambda s: setattr(_tp(s, 1), "window_after_days", -1),
        "Time point 2 (end_of_course): A window cannot be negative.",
    ),
    (
        "overlapping windows",
        lambda s: setattr(_tp(s, 2), "window_before_days", 26),
        "Time point 3 (month_1): Its window (from day 4) overlaps time point 2's (to day 11).",
    ),
    (
        "unknown instrument",
        lambda s: _tp(s, 0).instruments.append(InstrumentSpec("no-such-form", "1.0")),
        "Time point 1 (baseline): no-such-form@1.0 is not in this deployment's questionnaires.",
    ),
    (
        "unknown version",
        lambda s: setattr(_tp(s, 4).instruments[0], "version", "9.9"),
        "Time point 5 (month_6): promis-pi-4a@9.9 is not in this deployment's questionnaires.",
    ),
    (
        "duplicate instrument",
        lambda s: _tp(s, 1).instruments.append(InstrumentSpec("peg", "1.0")),
        "Time point 2 (end_of_course): peg is listed twice.",
    ),
    (
        "no instrument",
        lambda s: setattr(_tp(s, 2), "instruments", []),
        "Time point 3 (month_1): Choose at least one questionnaire.",
    ),
    (
        "reminder not positive",
        lambda s: setattr(_tp(s, 2), "reminder_offsets_days", [0, 2]),
        "Time point 3 (month_1): Reminders are days after the invitation: 1 or more.",
    ),
    (
        "reminders not increasing",
        lambda s: setattr(_tp(s, 2), "reminder_offsets_days", [5, 2]),
        "Time point 3 (month_1): List reminders in increasing order, each once.",
    ),
    (
        "reminder after the window",
        lambda s: setattr(_tp(s, 1), "reminder_offsets_days", [2, 9]),
        "Time point 2 (end_of_course): A reminder 9 days after the invitation falls after",
    ),
    (
        "send time",
        lambda s: setattr(_tp(s, 3), "send_time_local", "25:00"),
        "Time point 4 (month_3): The send time is a time of day such as 10:00.",
    ),
    ("no channel", lambda s: setattr(s, "channels", []), "Choose at least one channel"),
    (
        "duplicate channel",
        lambda s: setattr(s, "channels", ["email", "email"]),
        "Channels are email and sms, each at most once",
    ),
    ("unknown channel", lambda s: setattr(s, "channels", ["fax"]), "Channels are email and sms"),
    (
        "offset past the horizon",
        lambda s: setattr(s, "horizon_days", 120),
        "Time point 5 (month_6): Day 180 is past the protocol's horizon of 120 days.",
    ),
    ("no time point", lambda s: setattr(s, "timepoints", []), "Add at least one time point."),
]


@pytest.mark.parametrize(("rule", "change", "message"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_names_the_problem_and_its_time_point(
    world: World, rule: str, change: Callable[[ProtocolSpec], Any], message: str
) -> None:
    spec = bundled_spec()
    change(spec)
    problems = problems_of(spec)
    assert any(p.startswith(message) for p in problems), problems


def test_the_last_window_may_run_past_the_horizon(world: World) -> None:
    spec = bundled_spec()
    assert spec.timepoints[-1].offset_days + spec.timepoints[-1].window_after_days > 180
    assert problems_of(spec) == []


def test_every_problem_is_reported_at_once(world: World) -> None:
    spec = bundled_spec()
    spec.slug = "Bad"
    spec.timepoints[1].send_time_local = "ten"
    spec.timepoints[4].instruments = []
    assert len(problems_of(spec)) == 3


# Versions --------------------------------------------------------------------------------------


def _coordinator(world: World) -> Any:
    return world.user("a", Role.COORDINATOR)


def test_create_makes_version_1_and_slugs_are_unique_per_clinic(world: World) -> None:
    spec = bundled_spec()
    spec.slug = "short-course"
    protocol = create_protocol(db.session, world.clinic_a, spec, _coordinator(world))
    assert (protocol.version, protocol.is_active) == (1, True)
    assert [tp.key for tp in protocol.timepoints][-1] == "month_6"
    assert protocol.timepoints[0].instrument_versions["promis-pf-4a"] == "2.0"
    with pytest.raises(InvalidProtocol, match="already has a protocol named short-course"):
        create_protocol(db.session, world.clinic_a, spec, _coordinator(world))
    assert create_protocol(db.session, world.clinic_b, spec, None).version == 1


def test_create_refuses_an_invalid_spec(world: World) -> None:
    spec = bundled_spec()
    spec.slug = "other"
    spec.timepoints[0].instruments = []
    with pytest.raises(InvalidProtocol) as caught:
        create_protocol(db.session, world.clinic_a, spec, None)
    assert [str(p) for p in caught.value.problems] == [
        "Time point 1 (baseline): Choose at least one questionnaire."
    ]


def test_an_edit_without_enrollments_changes_the_version_in_place(world: World) -> None:
    spec = spec_of(world.protocol_a)
    spec.name = "Ketamine, revised"
    spec.timepoints[2].offset_days = 35
    saved = save_edit(db.session, world.protocol_a, spec, _coordinator(world))
    db.session.commit()
    assert saved.id == world.protocol_a.id
    assert (saved.version, saved.name, saved.is_active) == (1, "Ketamine, revised", True)
    assert saved.timepoints[2].offset_days == 35
    assert db.session.scalar(select(Protocol.id).where(Protocol.version == 2)) is None


def test_the_slug_never_changes(world: World) -> None:
    spec = spec_of(world.protocol_a)
    spec.slug = "renamed"
    with pytest.raises(InvalidProtocol, match="cannot change"):
        save_edit(db.session, world.protocol_a, spec, None)


def _enrolled(world: World, n: int = 0) -> Enrollment:
    enrollment = enroll_patient(db.session, world.patients_a[n], world.protocol_a, ANCHOR, now=NOW)
    db.session.commit()
    return enrollment


def _windows(enrollment: Enrollment) -> list[tuple[int, dt.datetime, dt.datetime, str]]:
    return [
        (a.timepoint_id, a.opens_at, a.closes_at, a.status.value)
        for a in sorted(enrollment.assessments, key=lambda a: a.id)
    ]


def _revised(protocol: Protocol) -> ProtocolSpec:
    """Baseline earlier, month 3 later, month 6 gone, a month 12 added."""
    spec = spec_of(protocol)
    spec.horizon_days = 365
    spec.timepoints[0].window_before_days = 7
    spec.timepoints[3].offset_days = 100
    month_12 = copy.deepcopy(spec.timepoints[4])
    month_12.key, month_12.label, month_12.offset_days = "month_12", "12 months", 365
    spec.timepoints[4] = month_12
    return spec


def test_an_edit_with_enrollments_makes_a_new_version(world: World) -> None:
    enrollment = _enrolled(world)
    before = _windows(enrollment)
    v2 = save_edit(db.session, world.protocol_a, _revised(world.protocol_a), None)
    db.session.commit()
    assert v2.id != world.protocol_a.id
    assert (v2.slug, v2.version, v2.is_active) == (world.protocol_a.slug, 2, True)
    assert world.protocol_a.is_active is False
    assert world.protocol_a.timepoints[3].offset_days == 90  # version 1 is as it was
    assert enrollment.protocol_id == world.protocol_a.id
    assert _windows(enrollment) == before
    # Only the latest version is edited.
    with pytest.raises(Exception, match="latest version"):
        save_edit(db.session, world.protocol_a, spec_of(world.protocol_a), None)


def _answer_baseline(enrollment: Enrollment) -> Assessment:
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    baseline.status = AssessmentStatus.COMPLETED
    baseline.completed_at = NOW
    db.session.commit()
    return baseline


def _version_2(world: World) -> tuple[Enrollment, Protocol]:
    enrollment = _enrolled(world)
    _answer_baseline(enrollment)
    v2 = save_edit(db.session, world.protocol_a, _revised(world.protocol_a), None)
    db.session.commit()
    return enrollment, v2


def test_the_preview_lists_what_moving_does(world: World) -> None:
    enrollment, v2 = _version_2(world)
    changes = version_move_preview(enrollment, v2, NOW)
    assert [(c.key, c.action) for c in changes] == [
        ("baseline", "kept"),
        ("end_of_course", "unchanged"),
        ("month_1", "unchanged"),
        ("month_3", "moved"),
        ("month_6", "cancelled"),
        ("month_12", "added"),
    ]
    moved = changes[3]
    assert moved.assessment is not None
    assert moved.plan is not None
    assert moved.plan.window.due_at - moved.assessment.due_at == dt.timedelta(days=10)
    assert enrollment.protocol_id == world.protocol_a.id  # a preview changes nothing


def test_moving_never_changes_an_answered_assessment(world: World) -> None:
    enrollment, v2 = _version_2(world)
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    answered = (baseline.timepoint_id, baseline.opens_at, baseline.closes_at, baseline.completed_at)
    by_key = {a.timepoint.key: a for a in enrollment.assessments}
    month_3, month_6 = by_key["month_3"], by_key["month_6"]
    old_pending = _pending(month_3)
    assert old_pending
    move_to_version(db.session, enrollment, v2, NOW, None)
    db.session.commit()
    db.session.expire_all()
    assert enrollment.protocol_id == v2.id
    baseline = db.session.get(Assessment, baseline.id)
    assert baseline is not None
    assert baseline.status is AssessmentStatus.COMPLETED
    assert (
        baseline.timepoint_id,
        baseline.opens_at,
        baseline.closes_at,
        baseline.completed_at,
    ) == answered
    # month 3 moved ten days, onto version 2's time point, with new messages.
    v2_tp = {tp.key: tp for tp in v2.timepoints}
    assert month_3.timepoint_id == v2_tp["month_3"].id
    assert month_3.due_at == dt.datetime(2026, 9, 9, 14, 0, tzinfo=dt.UTC)
    assert all(
        db.session.get(Notification, n).status is NotificationStatus.CANCELLED for n in old_pending
    )
    assert {n.send_after.date() for n in _pending_rows(month_3)} == {
        dt.date(2026, 8, 26),
        dt.date(2026, 8, 28),
        dt.date(2026, 8, 31),
    }
    # month 6 cancelled with its messages.
    assert month_6.status is AssessmentStatus.CANCELLED
    assert _pending(month_6) == []
    # month 12 added with its invitation and reminders.
    month_12 = next(a for a in enrollment.assessments if a.timepoint.key == "month_12")
    assert month_12.status is AssessmentStatus.SCHEDULED
    assert len(_pending(month_12)) == 3


def _pending_rows(assessment: Assessment) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.assessment_id == assessment.id,
                Notification.status == NotificationStatus.PENDING,
            )
        )
    )


def _pending(assessment: Assessment) -> list[int]:
    return [n.id for n in _pending_rows(assessment)]


def test_move_all_moves_every_active_course_of_the_version(world: World) -> None:
    first = _enrolled(world, 0)
    second = _enrolled(world, 1)
    v2 = save_edit(db.session, world.protocol_a, _revised(world.protocol_a), None)
    moved = move_all(db.session, world.protocol_a, v2, NOW)
    db.session.commit()
    assert {e.id for e, _ in moved} == {first.id, second.id}
    assert first.protocol_id == second.protocol_id == v2.id


# Pages -----------------------------------------------------------------------------------------


def form_fields(spec: ProtocolSpec, **extra: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": spec.slug,
        "name": spec.name,
        "description": spec.description,
        "anchor_label": spec.anchor_label,
        "horizon_days": str(spec.horizon_days),
        "channels": ",".join(spec.channels),
    }
    for n, tp in enumerate(spec.timepoints):
        data |= {
            f"timepoints-{n}-key": tp.key,
            f"timepoints-{n}-label": tp.label,
            f"timepoints-{n}-offset_days": str(tp.offset_days),
            f"timepoints-{n}-window_before_days": str(tp.window_before_days),
            f"timepoints-{n}-window_after_days": str(tp.window_after_days),
            f"timepoints-{n}-send_time_local": tp.send_time_local,
            f"timepoints-{n}-reminders": ", ".join(map(str, tp.reminder_offsets_days)),
            f"timepoints-{n}-instruments": "\n".join(map(str, tp.instruments)),
        }
    return data | extra


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_clinicians_are_refused_and_other_clinics_are_not_found(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    clinician = staff_client(world.user("a", Role.CLINICIAN))
    assert clinician.get("/protocols").status_code == 403
    assert clinician.get(f"/protocols/{world.protocol_a.id}").status_code == 403
    assert clinician.get(f"/protocols/{world.protocol_a.id}/edit").status_code == 403
    other = staff_client(world.user("b", Role.COORDINATOR))
    pid = world.protocol_a.id
    for path in (
        f"/protocols/{pid}",
        f"/protocols/{pid}/edit",
        f"/protocols/{pid}/move",
        f"/clinics/{world.clinic_a.id}/protocols/new",
    ):
        assert other.get(path).status_code == 404, path
    token = csrf_token(other, "/protocols")
    assert other.post(f"/protocols/{pid}/move", data={"csrf_token": token}).status_code == 404


def test_the_list_shows_versions_and_active_courses(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, patient_today(world.patients_a[0])
    )
    db.session.commit()
    page = staff_client(_coordinator(world)).get("/protocols").get_data(as_text=True)
    assert "Ketamine infusion course" in page
    assert "Clinic B" not in page
    row = page[page.index(f"/protocols/{world.protocol_a.id}") :]
    assert "<td>1</td>" in row[: row.index("</tr>")]
    assert "Start from the bundled ketamine protocol" not in page


def test_a_clinic_without_the_bundled_protocol_can_start_from_it(
    app: Any, staff_client: Callable[..., FlaskClient], world: World
) -> None:
    clinic = create_clinic(
        db.session, slug="c", name="Clinic C", time_zone="UTC", offer_bundled_protocol=False
    )
    user = create_staff(
        db.session,
        hasher_from_config(app.config),
        email="coordinator@c.example.org",
        full_name="C",
        password=PASSWORD,
        clinic=clinic,
        role=Role.COORDINATOR,
    )
    db.session.commit()
    client = staff_client(user)
    page = client.get("/protocols").get_data(as_text=True)
    assert "Start from the bundled ketamine protocol" in page
    response = client.post(
        f"/clinics/{clinic.id}/protocols/bundled",
        data={"csrf_token": csrf_token(client, "/protocols")},
    )
    assert response.status_code == 303
    installed = db.session.scalar(select(Protocol).where(Protocol.clinic_id == clinic.id))
    assert installed is not None
    assert installed.slug == BUNDLED_PROTOCOL
    assert [e.clinic_id for e in _events("protocol.created")] == [clinic.id]


def test_the_protocol_page_reads_as_a_schedule(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    page = staff_client(_coordinator(world)).get(f"/protocols/{world.protocol_a.id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "(infusion-side-effects, version 1.0)" in body
    assert "Day 30; open from day 16 to day 44" in body  # month 1: 14 days either side
    assert "reminders 2 and 5 days after the invitation" in body
    assert "Side effects after an infusion course" in body  # the questionnaire's title
    assert "Edit</a>" in body


def test_creating_a_protocol_through_the_form(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    client = staff_client(_coordinator(world))
    path = f"/clinics/{world.clinic_a.id}/protocols/new"
    spec = bundled_spec()
    spec.slug = "short-course"
    spec.timepoints = spec.timepoints[:2]
    spec.timepoints[1].instruments = [InstrumentSpec("peg", "")]  # a bare code: current version
    data = form_fields(spec, csrf_token=csrf_token(client, path))
    data["timepoints-1-instruments"] = "peg"
    response = client.post(path, data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    created = db.session.scalar(select(Protocol).where(Protocol.slug == "short-course"))
    assert created is not None
    assert created.timepoints[1].instrument_versions == {"peg": "1.0"}
    (event,) = _events("protocol.created")
    assert event.detail["after"]["slug"] == "short-course"


def test_problems_are_shown_with_their_time_point(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    client = staff_client(_coordinator(world))
    path = f"/clinics/{world.clinic_a.id}/protocols/new"
    spec = bundled_spec()
    spec.slug = "overlapping"
    spec.timepoints[2].window_before_days = 26
    spec.timepoints[3].reminder_offsets_days = [5, 2]
    response = client.post(path, data=form_fields(spec, csrf_token=csrf_token(client, path)))
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Time point 3 (month_1): Its window (from day 4) overlaps" in body
    assert "Time point 4 (month_3): List reminders in increasing order" in body
    assert 'id="timepoints-3-reminders-error"' in body  # next to its field, too
    bad = form_fields(spec, csrf_token=csrf_token(client, path))
    bad["timepoints-1-offset_days"] = "soon"
    body = client.post(path, data=bad).get_data(as_text=True)
    assert "Time point 2 (end_of_course): Day (from day 0):" in body
    assert db.session.scalar(select(Protocol).where(Protocol.slug == "overlapping")) is None


def test_add_and_remove_rows_without_javascript(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    client = staff_client(_coordinator(world))
    path = f"/clinics/{world.clinic_a.id}/protocols/new"
    page = client.get(path).get_data(as_text=True)
    assert 'name="timepoints-0-key"' in page
    assert 'name="timepoints-1-key"' not in page
    spec = bundled_spec()
    spec.slug = "rows"
    spec.timepoints = spec.timepoints[:1]
    token = csrf_token(client, path)
    added = client.post(path, data=form_fields(spec, csrf_token=token, add_timepoint="Add"))
    body = added.get_data(as_text=True)
    assert added.status_code == 200
    assert 'name="timepoints-1-key"' in body
    assert 'value="baseline"' in body  # what was typed stays
    removed = client.post(
        path,
        data=form_fields(spec, csrf_token=token, **{"timepoints-0-remove": "Remove time point 1"}),
    )
    assert 'name="timepoints-0-key"' not in removed.get_data(as_text=True)
    assert db.session.scalar(select(Protocol).where(Protocol.slug == "rows")) is None


def test_editing_without_enrollments_updates_in_place(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    client = staff_client(_coordinator(world))
    path = f"/protocols/{world.protocol_a.id}/edit"
    page = client.get(path).get_data(as_text=True)
    assert "saving makes version" not in page
    spec = spec_of(world.protocol_a)
    spec.name = "Ketamine, revised"
    response = client.post(path, data=form_fields(spec, csrf_token=csrf_token(client, path)))
    assert response.status_code == 303
    assert response.location.endswith(f"/protocols/{world.protocol_a.id}")
    db.session.refresh(world.protocol_a)
    assert (world.protocol_a.name, world.protocol_a.version) == ("Ketamine, revised", 1)
    (event,) = _events("protocol.updated")
    assert event.detail["before"] == {"name": "Ketamine infusion course"}
    assert event.detail["after"] == {"name": "Ketamine, revised"}


def test_editing_with_enrollments_warns_then_makes_version_2(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, patient_today(world.patients_a[0])
    )
    db.session.commit()
    client = staff_client(_coordinator(world))
    path = f"/protocols/{world.protocol_a.id}/edit"
    page = client.get(path).get_data(as_text=True)
    assert (
        "This version has 1 enrollment: saving makes version 2; it stays on version 1 "
        "until you move it."
    ) in page
    spec = spec_of(world.protocol_a)
    spec.timepoints[3].offset_days = 100
    response = client.post(path, data=form_fields(spec, csrf_token=csrf_token(client, path)))
    assert response.status_code == 303
    v2 = db.session.scalar(select(Protocol).where(Protocol.version == 2))
    assert v2 is not None
    assert response.location.endswith(f"/protocols/{v2.id}")
    db.session.refresh(enrollment)
    assert enrollment.protocol_id == world.protocol_a.id
    (event,) = _events("protocol.versioned")
    assert (event.detail["before"]["version"], event.detail["after"]["version"]) == (1, 2)
    assert event.detail["retired_protocol_id"] == world.protocol_a.id
    assert event.detail["after"]["timepoints"][3]["offset_days"] == 100
    old_page = client.get(f"/protocols/{world.protocol_a.id}").get_data(as_text=True)
    assert "Move enrollments to version 2" in old_page


def test_moving_courses_through_the_pages(
    staff_client: Callable[..., FlaskClient], world: World
) -> None:
    patients = world.patients_a
    for patient in patients[:2]:
        enroll_patient(db.session, patient, world.protocol_a, patient_today(patient))
    db.session.commit()
    spec = spec_of(world.protocol_a)
    spec.timepoints = spec.timepoints[:4]  # month 6 goes
    v2 = save_edit(db.session, world.protocol_a, spec, None)
    db.session.commit()
    client = staff_client(_coordinator(world))
    path = f"/protocols/{world.protocol_a.id}/move"
    preview = client.get(path).get_data(as_text=True)
    assert patients[0].display_name in preview
    assert patients[1].display_name in preview
    assert "cancelled" in preview
    assert "Move all 2 courses to version 2" in preview
    one = db.session.scalar(select(Enrollment).where(Enrollment.patient_id == patients[0].id))
    assert one is not None
    single = client.get(f"{path}?enrollment={one.id}").get_data(as_text=True)
    assert patients[1].display_name not in single
    token = csrf_token(client, path)
    response = client.post(path, data={"csrf_token": token, "enrollment": str(one.id)})
    assert response.status_code == 303
    db.session.refresh(one)
    assert one.protocol_id == v2.id
    (event,) = _events("enrollment.moved")
    assert event.patient_id == patients[0].id
    assert event.detail["after"] == {"protocol_id": v2.id, "version": 2}
    assert event.detail["time_points"]["cancelled"] == ["month_6"]
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 303
    assert len(_events("enrollment.moved")) == 2
    assert client.get(f"{path}?enrollment={one.id}").status_code == 404  # moved already
