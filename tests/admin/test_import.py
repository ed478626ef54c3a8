"""The enrollment import: the whole file checked first, then patients created or updated by MRN
and enrolled in one transaction; by command and by the upload page with its preview."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from proms.admin import importer
from proms.admin.enrollment import enroll
from proms.admin.models import Channel, Enrollment, Patient
from proms.auth.models import AuditEvent, Role
from proms.db import db
from proms.scheduling.models import (
    Assessment,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from tests.helpers import World, add_patient, csrf_token

FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2034, 12, 1, 15, 0, tzinfo=dt.UTC)
TODAY = dt.date(2034, 12, 1)
PAYLOAD_RE = re.compile(r'name="payload" type="hidden" value="([^"]+)"')


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def check(world: World, content: bytes) -> importer.ImportPlan:
    return importer.check_file(db.session, world.clinic_a, content, today=TODAY)


def run(world: World, content: bytes) -> importer.ImportPlan:
    plan = check(world, content)
    assert plan.is_clean, [str(p) for p in plan.problems]
    importer.apply(db.session, plan, now=NOW, user=world.user("a", Role.COORDINATOR))
    importer.audit(db.session, plan, actor=None, actor_email="test")
    db.session.commit()
    return plan


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def problems(plan: importer.ImportPlan) -> set[tuple[int | None, str | None]]:
    return {(p.line, p.column) for p in plan.problems}


def message(plan: importer.ImportPlan, line: int, column: str) -> str:
    return next(p.message for p in plan.problems if (p.line, p.column) == (line, column))


# Checking the file ----------------------------------------------------------------------------


def test_a_mixed_file_reports_every_bad_row_and_imports_nothing(world: World) -> None:
    patients_before = count(Patient)
    plan = check(world, fixture("mixed.csv"))
    assert problems(plan) == {
        (3, "birth_date"),
        (3, "email"),
        (4, "given_name"),
        (4, "phone"),
        (5, "mrn"),
        (6, "birth_date"),
        (6, "timezone"),
        (6, "language"),
        (6, "protocol"),
        (6, "anchor_date"),
        (7, None),
    }
    assert message(plan, 3, "birth_date") == "There is no such date as 1980-02-30."
    assert message(plan, 4, "given_name") == "Enter the given name."
    assert "not a valid phone number" in message(plan, 4, "phone")
    assert message(plan, 5, "mrn") == "MRN M300 is also on line 2: one row per patient."
    assert message(plan, 6, "birth_date") == "The date of birth is in the future."
    assert "Unknown time zone 'Mars/Olympus'" in message(plan, 6, "timezone")
    assert "en (English) or es (Español)" in message(plan, 6, "language")
    assert "no active protocol 'unknown-protocol'" in message(plan, 6, "protocol")
    assert "ketamine-infusion-course" in message(plan, 6, "protocol")
    assert message(plan, 6, "anchor_date") == "Write the date as YYYY-MM-DD, such as 2026-03-09."
    assert message(plan, 7, None) == "This row has 9 cells; the header has 10."
    assert plan.rows == []
    with pytest.raises(importer.AdminError, match="nothing was imported"):
        importer.apply(db.session, plan, now=NOW, user=None)
    assert count(Patient) == patients_before
    assert count(Enrollment) == 0


def test_problems_read_with_line_and_column(world: World) -> None:
    plan = check(world, fixture("mixed.csv"))
    assert (
        str(plan.problems[0]) == "line 3, column birth_date: There is no such date as 1980-02-30."
    )


def test_unknown_and_missing_columns_are_named(world: World) -> None:
    plan = check(world, fixture("unknown_columns.csv"))
    text = [str(p) for p in plan.problems]
    assert text[0].startswith("line 1: Unknown columns: notes, diagnosis.")
    assert text[1].startswith("line 1: Missing column: protocol.")


def test_a_byte_order_mark_and_any_column_order_are_read(world: World) -> None:
    plan = run(world, fixture("bom.csv"))
    assert plan.summary.startswith("1 row: 1 new")
    patient = db.session.scalar(select(Patient).where(Patient.mrn == "M200"))
    assert patient is not None
    assert (patient.given_name, patient.family_name, patient.language) == ("José", "Núñez", "es")
    assert patient.preferred_channel is Channel.NONE  # no contact details: reached by phone


def test_latin1_is_refused_with_the_fix(world: World) -> None:
    plan = check(world, fixture("latin1.csv"))
    assert [str(p) for p in plan.problems] == [importer.NOT_UTF8]
    assert "save it as CSV UTF-8" in importer.NOT_UTF8


def test_formula_cells_are_refused_but_an_international_phone_is_not(world: World) -> None:
    plan = check(world, fixture("formula.csv"))
    assert problems(plan) == {(3, "given_name"), (4, "family_name"), (5, "mrn")}
    assert "starts with “=”, as a spreadsheet formula does" in message(plan, 3, "given_name")
    assert "starts with “@”" in message(plan, 4, "family_name")
    assert "starts with “-”" in message(plan, 5, "mrn")


@pytest.mark.parametrize(
    ("cell", "refused"),
    [
        ("=1+1", True),
        ("+1+1", True),
        ("-2", True),
        ("@A1", True),
        ("\tx", True),
        ("\rx", True),
        ("  =1", True),
        ("a\nb", True),
        ("O'Neil-Smith", False),
    ],
)
def test_cell_problems(cell: str, refused: bool) -> None:
    assert (importer.cell_problem("family_name", cell) is not None) is refused


def test_the_phone_column_takes_a_plus_number_only() -> None:
    assert importer.cell_problem("phone", "+1 (216) 555-0100") is None
    assert importer.cell_problem("phone", "+1+cmd|' /C calc'!A0") is not None


def test_the_row_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "MAX_ROWS", 2)
    plan = check(world, fixture("clean.csv"))
    assert [str(p) for p in plan.problems] == ["The file has more than 2 rows: split it."]


def test_an_empty_file(world: World) -> None:
    plan = check(world, b"\n\n")
    assert plan.problems[0].message.startswith("The file is empty.")


def test_a_new_patient_needs_a_birth_date_when_the_protocol_checks_it(world: World) -> None:
    world.protocol_a.requires_identity_check = True
    plan = check(world, fixture("bom.csv"))
    assert problems(plan) == {(2, "birth_date")}
    assert "date of birth" in plan.problems[0].message


def test_a_second_active_course_from_another_date_is_refused(world: World) -> None:
    patient = world.patients_a[1]
    enroll(db.session, patient, world.protocol_a, dt.date(2035, 1, 1), now=NOW)
    plan = check(world, fixture("clean.csv"))
    assert problems(plan) == {(4, "anchor_date")}
    assert "is in an active course of ketamine-infusion-course from 2035-01-01" in str(
        plan.problems[0]
    )


# Importing ------------------------------------------------------------------------------------


def test_a_clean_file_creates_updates_and_enrolls(world: World) -> None:
    existing = world.patients_a[1]
    plan = run(world, fixture("clean.csv"))
    assert [(r.line, r.patient_action, r.changed, r.enrollment_action) for r in plan.rows] == [
        (2, "new", [], "new course"),
        (3, "new", [], "new course"),
        (4, "updated", ["phone"], "new course"),
    ]
    alma = db.session.scalar(select(Patient).where(Patient.mrn == "M100"))
    assert alma is not None
    assert alma.clinic_id == world.clinic_a.id
    assert alma.phone == "+12165550142"  # read as a US number: the clinic is in New York
    assert alma.email == "alma.lopez@example.org"
    assert alma.preferred_channel is Channel.EMAIL
    assert (alma.time_zone, alma.language, alma.birth_on) == (
        "America/New_York",
        "es",
        dt.date(1971, 3, 2),
    )
    ben = db.session.scalar(select(Patient).where(Patient.mrn == "M101"))
    assert ben is not None
    assert (ben.phone, ben.preferred_channel, ben.time_zone) == (
        "+447400123456",
        Channel.SMS,
        "Europe/London",
    )
    db.session.refresh(existing)
    assert existing.phone == "+12165550177"
    assert existing.given_name == "Pat"  # empty cells change nothing
    assert existing.email == "a1@example.org"
    assert count(Enrollment) == 3
    assert count(Assessment) == 15
    invitations = db.session.execute(
        select(Notification.patient_id, Notification.channel, func.count())
        .where(
            Notification.status == NotificationStatus.PENDING,
            Notification.kind == NotificationKind.INVITE,
        )
        .group_by(Notification.patient_id, Notification.channel)
    ).all()
    assert sorted(invitations) == sorted(  # one invitation per time point, by their channel
        [(alma.id, Channel.EMAIL, 5), (ben.id, Channel.SMS, 5), (existing.id, Channel.EMAIL, 5)]
    )
    course = db.session.scalar(select(Enrollment).where(Enrollment.patient_id == alma.id))
    assert course is not None
    assert course.anchor_on == dt.date(2035, 1, 8)
    assert course.created_by_id == world.user("a", Role.COORDINATOR).id


def test_the_import_is_audited_per_file_and_per_patient(world: World) -> None:
    run(world, fixture("clean.csv"))
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    actions = [e.action for e in events if e.actor_email == "test"]
    assert actions.count("import.enrollments") == 1
    assert actions.count("patient.created") == 2
    assert actions.count("patient.updated") == 1
    assert actions.count("enrollment.created") == 3
    updated = next(e for e in events if e.action == "patient.updated")
    assert updated.patient_id == world.patients_a[1].id
    assert updated.detail["before"] == {"phone": None}
    assert updated.detail["after"] == {"phone": "+12165550177"}
    assert updated.detail["line"] == 4


def test_importing_the_same_file_twice_changes_nothing(world: World) -> None:
    run(world, fixture("clean.csv"))
    counts = (count(Patient), count(Enrollment), count(Assessment), count(Notification))
    again = run(world, fixture("clean.csv"))
    assert [(r.patient_action, r.enrollment_action) for r in again.rows] == [
        ("unchanged", "already enrolled")
    ] * 3
    assert (count(Patient), count(Enrollment), count(Assessment), count(Notification)) == counts


# The command ----------------------------------------------------------------------------------


def test_the_command_exits_1_with_every_problem(runner, world: World) -> None:
    result = runner.invoke(
        args=["import", "enrollments", str(FIXTURES / "mixed.csv"), "--clinic", "a"]
    )
    assert result.exit_code == 1
    assert "line 3, column birth_date: There is no such date as 1980-02-30." in result.output
    assert "line 7: This row has 9 cells; the header has 10." in result.output
    assert "11 problems: nothing was imported." in result.output
    assert db.session.scalar(select(Patient).where(Patient.mrn == "M300")) is None


def test_a_dry_run_imports_nothing(runner, world: World) -> None:
    result = runner.invoke(
        args=["import", "enrollments", str(FIXTURES / "clean.csv"), "--clinic", "a", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "line 4: MRN A1: patient updated (phone)" in result.output
    assert "Dry run, nothing was imported. 3 rows: 2 new, 1 updated" in result.output
    assert count(Enrollment) == 0
    assert db.session.scalar(select(Patient).where(Patient.mrn == "M100")) is None


def test_the_command_imports_and_audits_the_operating_system_user(runner, world: World) -> None:
    result = runner.invoke(
        args=["import", "enrollments", str(FIXTURES / "clean.csv"), "--clinic", "a"]
    )
    assert result.exit_code == 0, result.output
    assert "Imported 3 rows: 2 new, 1 updated, 0 unchanged patients; 3 new courses" in (
        result.output
    )
    assert count(Enrollment) == 3
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "import.enrollments"))
    assert event is not None
    assert event.actor_email is not None
    assert event.actor_email.startswith("cli:")
    assert event.clinic_id == world.clinic_a.id


def test_the_command_refuses_an_unknown_clinic(runner, world: World) -> None:
    result = runner.invoke(
        args=["import", "enrollments", str(FIXTURES / "clean.csv"), "--clinic", "zz"]
    )
    assert result.exit_code == 2
    assert "No clinic 'zz'" in result.output


# The upload page ------------------------------------------------------------------------------


def upload(client, content: bytes, name: str = "patients.csv"):  # type: ignore[no-untyped-def]
    import io

    token = csrf_token(client, "/import")
    return client.post(
        "/import",
        data={"csrf_token": token, "file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def confirm(client, payload: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/import")
    return client.post(
        "/import",
        data={"csrf_token": token, "payload": payload},
        content_type="multipart/form-data",
    )


def test_the_upload_page_previews_then_imports(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    page = client.get("/import")
    assert page.status_code == 200
    assert 'name="clinic_id"' not in page.get_data(as_text=True)  # one clinic: no choice
    preview = upload(client, fixture("clean.csv"))
    assert preview.status_code == 200
    body = preview.get_data(as_text=True)
    assert "Lopez, Alma" in body
    assert "Import 3 rows" in body
    assert 'updated: <span class="code">phone</span>' in body
    assert count(Enrollment) == 0  # a preview writes nothing
    match = PAYLOAD_RE.search(body)
    assert match
    done = confirm(client, match.group(1))
    assert done.status_code == 303
    assert count(Enrollment) == 3
    after = client.get("/import").get_data(as_text=True)
    assert "Imported 3 rows: 2 new, 1 updated" in after
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "import.enrollments"))
    assert event is not None
    assert event.actor_id == world.user("a", Role.COORDINATOR).id
    # The same preview confirmed again finds everything done and changes nothing.
    assert confirm(client, match.group(1)).status_code == 303
    assert count(Enrollment) == 3


def test_a_file_with_problems_shows_them_all_and_no_confirm(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    response = upload(client, fixture("mixed.csv"))
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "The file has 11 problems. Nothing will be imported" in body
    assert "There is no such date as 1980-02-30." in body
    assert "<td>7</td>" in body
    assert 'name="payload"' not in body
    assert "Import 1" not in body


def test_a_tampered_or_foreign_payload_is_refused(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    body = upload(client, fixture("clean.csv")).get_data(as_text=True)
    match = PAYLOAD_RE.search(body)
    assert match
    payload = match.group(1)
    tampered = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    response = confirm(client, tampered)
    assert response.status_code == 400
    assert "upload the file again" in response.get_data(as_text=True)
    assert count(Enrollment) == 0
    other = staff_client(world.user("a", Role.ADMIN))  # signed for someone else
    assert confirm(other, payload).status_code == 400
    assert count(Enrollment) == 0


def test_a_latin1_upload_says_how_to_save_it(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    response = upload(client, fixture("latin1.csv"))
    assert response.status_code == 400
    assert "save it as CSV UTF-8" in response.get_data(as_text=True)


def test_a_file_too_large_is_413_with_the_reason(
    staff_client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_BYTES", 100)
    client = staff_client(world.user("a", Role.COORDINATOR))
    response = upload(client, fixture("clean.csv"))
    assert response.status_code == 413
    assert "split it into smaller files" in response.get_data(as_text=True)


def test_no_file_is_a_message_next_to_the_field(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.COORDINATOR))
    token = csrf_token(client, "/import")
    response = client.post(
        "/import", data={"csrf_token": token}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "Choose the CSV file to import." in response.get_data(as_text=True)


def test_a_coordinator_of_two_clinics_chooses_one(staff_client, world: World) -> None:
    from proms.auth.services import grant

    user = world.user("a", Role.COORDINATOR)
    grant(db.session, user, world.clinic_b, Role.COORDINATOR)
    db.session.commit()
    client = staff_client(user)
    assert 'name="clinic_id"' in client.get("/import").get_data(as_text=True)
    token = csrf_token(client, "/import")
    import io

    response = client.post(
        "/import",
        data={
            "csrf_token": token,
            "clinic_id": str(world.clinic_b.id),
            "file": (io.BytesIO(fixture("bom.csv")), "x.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert "Import preview: Clinic B" in response.get_data(as_text=True)


def test_clinicians_cannot_import(staff_client, world: World) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    assert client.get("/import").status_code == 403


def test_an_existing_patient_of_another_clinic_is_a_new_one_here(world: World) -> None:
    add_patient(world.clinic_b, "M100")
    plan = check(world, fixture("clean.csv"))
    assert plan.rows[0].patient_action == "new"
