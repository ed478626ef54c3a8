"""`proms clinic` and `proms staff` commands."""

from __future__ import annotations

from sqlalchemy import select

from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db
from tests.helpers import World, login


def test_clinic_create_and_list(runner) -> None:
    result = runner.invoke(
        args=[
            "clinic",
            "create",
            "--slug",
            "north",
            "--name",
            "North Pain",
            "--time-zone",
            "Europe/Oslo",
        ]
    )
    assert result.exit_code == 0, result.output
    listing = runner.invoke(args=["clinic", "list"])
    assert "north\tNorth Pain\tEurope/Oslo" in listing.output


def test_clinic_create_rejects_a_bad_time_zone(runner) -> None:
    result = runner.invoke(
        args=["clinic", "create", "--slug", "x", "--name", "X", "--time-zone", "Nowhere"]
    )
    assert result.exit_code == 1
    assert "Unknown time zone" in result.output


def test_staff_create_asks_for_the_password(app, runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "create",
            "--email",
            "New.Nurse@A.example.org",
            "--role",
            "clinician",
            "--clinic",
            "a",
        ],
        input="a long enough password\na long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created new.nurse@a.example.org (clinician at Clinic A)" in result.output
    assert "a long enough password" not in result.output
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == "new.nurse@a.example.org"))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert user.roles_in(world.clinic_a.id) == {Role.CLINICIAN}
    assert (
        login(app.test_client(), "new.nurse@a.example.org", "a long enough password").status_code
        == 302
    )


def test_staff_create_refuses_a_short_password(runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "create",
            "--email",
            "x@a.example.org",
            "--role",
            "admin",
            "--clinic",
            "a",
            "--password",
            "short",
        ],
    )
    assert result.exit_code == 2
    assert "at least 12 characters" in result.output


def test_staff_create_refuses_an_unknown_clinic(runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "create",
            "--email",
            "x@a.example.org",
            "--role",
            "admin",
            "--clinic",
            "nowhere",
            "--password",
            "a long enough password",
        ],
    )
    assert result.exit_code == 2
    assert "No clinic 'nowhere'" in result.output


def test_staff_create_refuses_a_duplicate(runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "create",
            "--email",
            "admin@a.example.org",
            "--role",
            "admin",
            "--clinic",
            "a",
            "--password",
            "a long enough password",
        ],
    )
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_staff_grant_adds_a_clinic(runner, world: World) -> None:
    result = runner.invoke(
        args=[
            "staff",
            "grant",
            "--email",
            "clinician@a.example.org",
            "--role",
            "clinician",
            "--clinic",
            "b",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == "clinician@a.example.org"))
    assert set(user.clinic_ids) == {world.clinic_a.id, world.clinic_b.id}
    again = runner.invoke(
        args=[
            "staff",
            "grant",
            "--email",
            "clinician@a.example.org",
            "--role",
            "clinician",
            "--clinic",
            "b",
        ]
    )
    assert again.exit_code == 0
    db.session.expire_all()
    assert len(user.memberships) == 2


def test_staff_unlock(app, runner, world: World) -> None:
    client = app.test_client()
    for n in range(5):
        login(client, "clinician@a.example.org", f"wrong password {n}")
    assert login(client, "clinician@a.example.org").status_code == 429
    result = runner.invoke(args=["staff", "unlock", "--email", "clinician@a.example.org"])
    assert result.exit_code == 0
    assert login(client, "clinician@a.example.org").status_code == 302
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.unlocked"))
    assert event.actor_email.startswith("cli:")
    assert event.detail["staff_email"] == "clinician@a.example.org"
    nothing = runner.invoke(args=["staff", "unlock", "--email", "clinician@a.example.org"])
    assert "no failed logins to clear" in nothing.output
