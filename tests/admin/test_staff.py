"""Admins' staff pages: invite with a one-time link, roles, deactivate, unlock, new password."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from proms.auth.models import AuditEvent, PasswordToken, Role, StaffUser
from proms.auth.services import find_staff, find_throttle
from proms.db import db
from tests.helpers import PASSWORD, World, csrf_token, login

NEW_PASSWORD = "a brand new passphrase"
LINK_RE = re.compile(r"<code>https?://[^<]+(/password/[A-Za-z0-9_-]{43})</code>")


def member_path(world: World, user: StaffUser, clinic: str = "a") -> str:
    clinic_id = world.clinic_a.id if clinic == "a" else world.clinic_b.id
    return f"/clinics/{clinic_id}/staff/{user.id}"


def invite_path(world: World) -> str:
    return f"/clinics/{world.clinic_a.id}/staff/new"


def post(client: FlaskClient, path: str, **data: object):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, path)})


def act(client: FlaskClient, world: World, user: StaffUser, action: str, **data: object):
    return post(client, member_path(world, user), action=action, **data)


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


def fetch(email: str) -> StaffUser:
    db.session.expire_all()
    user = find_staff(db.session, email)
    assert user is not None
    return user


def roles_at(user: StaffUser, clinic_id: int) -> set[Role]:
    db.session.expire_all()
    return fetch(user.email).roles_in(clinic_id)


@pytest.fixture
def admin(staff_client, world: World) -> FlaskClient:
    return staff_client(world.user("a", Role.ADMIN))


def invite(admin: FlaskClient, world: World, **fields: object):
    data = {"email": "New.Person@a.example.org", "full_name": "New Person", "roles": ["clinician"]}
    data.update(fields)
    return post(admin, invite_path(world), **data)


# Invite ----------------------------------------------------------------------------------------


def test_invite_link_set_password_sign_in(app: Flask, admin: FlaskClient, world: World) -> None:
    response = invite(admin, world, roles=["coordinator", "clinician"])
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    match = LINK_RE.search(body)
    assert match, body
    path = match.group(1)
    assert "shown only now" in body

    user = fetch("new.person@a.example.org")
    assert user.roles_in(world.clinic_a.id) == {Role.COORDINATOR, Role.CLINICIAN}
    assert user.must_change_password is False
    # No password anyone knows: not even an empty one signs in.
    assert login(app.test_client(), user.email, PASSWORD).status_code == 401
    token = db.session.scalar(select(PasswordToken).where(PasswordToken.user_id == user.id))
    assert token is not None
    assert token.purpose == "invite"
    assert (token.expires_at - token.created_at).days == 7
    assert token.created_by_id == world.user("a", Role.ADMIN).id

    (event,) = events("staff.invited")
    assert event.clinic_id == world.clinic_a.id
    assert event.detail["before"] == {}
    assert event.detail["after"]["email"] == "new.person@a.example.org"
    assert event.detail["after"]["roles"] == ["coordinator", "clinician"]
    assert path.rsplit("/", 1)[-1] not in str(event.detail)

    newcomer = app.test_client()
    set_response = newcomer.post(
        path,
        data={
            "new_password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_token(newcomer, path),
        },
    )
    assert set_response.status_code == 303
    assert login(newcomer, user.email, NEW_PASSWORD).status_code == 302
    assert newcomer.get("/patients").status_code == 200
    assert app.test_client().get(path).status_code == 404  # single use


def test_the_link_is_shown_once_never_in_a_flash_or_redirect(
    admin: FlaskClient, world: World
) -> None:
    response = invite(admin, world)
    assert "Location" not in response.headers
    path = LINK_RE.search(response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    later = admin.get(f"/clinics/{world.clinic_a.id}").get_data(as_text=True)
    assert path not in later
    assert "New Person" in later


def test_invite_validation_is_400_with_messages(admin: FlaskClient, world: World) -> None:
    response = invite(admin, world, email="not an address", full_name="", roles=[])
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Enter a valid email address" in body
    assert "Enter the staff member&#39;s full name." in body
    assert "Choose at least one role." in body
    forged = invite(admin, world, roles=["superuser"])
    assert forged.status_code == 400
    assert "Choose roles from the list." in forged.get_data(as_text=True)
    assert find_staff(db.session, "new.person@a.example.org") is None


def test_an_existing_address_is_offered_the_roles_instead(admin: FlaskClient, world: World) -> None:
    other = world.user("b", Role.CLINICIAN)
    offer = invite(admin, world, email=other.email.upper(), full_name="Whoever")
    assert offer.status_code == 200
    body = offer.get_data(as_text=True)
    assert "already has an account" in body
    assert "Add the roles to that account" in body
    assert LINK_RE.search(body) is None
    assert roles_at(other, world.clinic_a.id) == set()

    added = invite(
        admin,
        world,
        email=other.email,
        full_name="Whoever",
        roles=["coordinator"],
        add_to_existing="y",
    )
    assert added.status_code == 303
    assert added.headers["Location"] == member_path(world, other)
    assert roles_at(other, world.clinic_a.id) == {Role.COORDINATOR}
    assert roles_at(other, world.clinic_b.id) == {Role.CLINICIAN}
    (event,) = events("staff.roles_changed")
    assert event.detail == {
        "staff_user_id": other.id,
        "before": {"roles": []},
        "after": {"roles": ["coordinator"]},
    }
    assert fetch(other.email).full_name == "clinician b"  # the account is left as it was


# Roles -----------------------------------------------------------------------------------------


def test_change_roles(admin: FlaskClient, world: World) -> None:
    clinician = world.user("a", Role.CLINICIAN)
    response = act(admin, world, clinician, "roles", roles=["coordinator", "clinician"])
    assert response.status_code == 303
    assert roles_at(clinician, world.clinic_a.id) == {Role.COORDINATOR, Role.CLINICIAN}
    (event,) = events("staff.roles_changed")
    assert event.detail["before"] == {"roles": ["clinician"]}
    assert event.detail["after"] == {"roles": ["coordinator", "clinician"]}

    none = act(admin, world, clinician, "roles", roles=[])
    assert none.status_code == 400
    assert "Choose at least one role." in none.get_data(as_text=True)


def test_the_last_admin_keeps_the_role(admin: FlaskClient, world: World) -> None:
    me = world.user("a", Role.ADMIN)
    response = act(admin, world, me, "roles", roles=["coordinator"])
    assert response.status_code == 400
    assert "the only administrator of Clinic A" in response.get_data(as_text=True)
    assert roles_at(me, world.clinic_a.id) == {Role.ADMIN}
    assert events("staff.roles_changed") == []


def test_an_admin_may_step_down_when_another_remains(admin: FlaskClient, world: World) -> None:
    act(admin, world, world.user("a", Role.COORDINATOR), "roles", roles=["admin"])
    me = world.user("a", Role.ADMIN)
    response = act(admin, world, me, "roles", roles=["coordinator"])
    assert response.status_code == 303
    assert response.headers["Location"] == "/clinics"
    assert roles_at(me, world.clinic_a.id) == {Role.COORDINATOR}
    assert admin.get(f"/clinics/{world.clinic_a.id}").status_code == 403


# Deactivate, unlock, new password --------------------------------------------------------------


def test_deactivate_ends_a_live_session(app: Flask, admin: FlaskClient, world: World) -> None:
    coordinator = world.user("a", Role.COORDINATOR)
    theirs = app.test_client()
    assert login(theirs, coordinator.email).status_code == 302
    assert theirs.get("/patients").status_code == 200

    response = act(admin, world, coordinator, "deactivate")
    assert response.status_code == 303
    assert theirs.get("/patients").status_code == 302  # signed out
    assert login(app.test_client(), coordinator.email).status_code == 401
    (event,) = events("staff.deactivated")
    assert event.detail["before"] == {"is_active": True}
    assert event.detail["after"] == {"is_active": False}
    page = admin.get(f"/clinics/{world.clinic_a.id}").get_data(as_text=True)
    assert "deactivated" in page

    assert act(admin, world, coordinator, "reactivate").status_code == 303
    assert login(app.test_client(), coordinator.email).status_code == 302
    (back,) = events("staff.reactivated")
    assert back.detail["after"] == {"is_active": True}


def test_an_admin_cannot_deactivate_themselves(admin: FlaskClient, world: World) -> None:
    me = world.user("a", Role.ADMIN)
    response = act(admin, world, me, "deactivate")
    assert response.status_code == 400
    assert "You cannot deactivate your own account." in response.get_data(as_text=True)
    assert fetch(me.email).is_active


def test_unlock_clears_a_lockout(app: Flask, admin: FlaskClient, world: World) -> None:
    clinician = world.user("a", Role.CLINICIAN)
    for _ in range(app.config["LOGIN_LOCK_AFTER"]):
        login(app.test_client(), clinician.email, "wrong password!!")
    assert login(app.test_client(), clinician.email).status_code == 429
    page = admin.get(member_path(world, clinician)).get_data(as_text=True)
    assert "locked after failed attempts" in page
    listing = admin.get(f"/clinics/{world.clinic_a.id}").get_data(as_text=True)
    assert ">locked</span>" in listing

    response = act(admin, world, clinician, "unlock")
    assert response.status_code == 303
    assert find_throttle(db.session, clinician.email) is None
    assert login(app.test_client(), clinician.email).status_code == 302
    (event,) = events("staff.unlocked")
    assert event.detail == {
        "staff_user_id": clinician.id,
        "before": {"locked": True},
        "after": {"locked": False},
    }


def test_forced_password_change(app: Flask, admin: FlaskClient, world: World) -> None:
    clinician = world.user("a", Role.CLINICIAN)
    theirs = app.test_client()
    login(theirs, clinician.email)
    response = act(admin, world, clinician, "force_password_change")
    assert response.status_code == 200
    path = LINK_RE.search(response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert theirs.get("/patients").status_code == 302  # signed out
    assert fetch(clinician.email).must_change_password is True
    (event,) = events("staff.password_change_forced")
    assert event.detail["after"] == {"must_change_password": True}
    token = db.session.scalar(select(PasswordToken).where(PasswordToken.user_id == clinician.id))
    assert token is not None
    assert token.purpose == "reset"

    # Signing in with the old password leads to "choose a new password" first...
    signed = login(theirs, clinician.email)
    assert signed.headers["Location"] == "/password"
    assert theirs.get("/patients").headers["Location"] == "/password"
    # ...and the link sets one without it.
    owner = app.test_client()
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    set_response = owner.post(path, data={**data, "csrf_token": csrf_token(owner, path)})
    assert set_response.status_code == 303
    assert fetch(clinician.email).must_change_password is False
    assert login(owner, clinician.email, NEW_PASSWORD).status_code == 302
    assert owner.get("/patients").status_code == 200


def test_unknown_action_is_400(admin: FlaskClient, world: World) -> None:
    response = act(admin, world, world.user("a", Role.CLINICIAN), "delete_everything")
    assert response.status_code == 400


# Who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN])
def test_coordinators_and_clinicians_get_403(staff_client, world: World, role: Role) -> None:
    client = staff_client(world.user("a", role))
    target = world.user("a", Role.CLINICIAN)
    assert client.get(invite_path(world)).status_code == 403
    assert client.get(member_path(world, target)).status_code == 403
    token = csrf_token(client, "/patients")
    response = client.post(
        member_path(world, target), data={"action": "deactivate", "csrf_token": token}
    )
    assert response.status_code == 403
    assert fetch(target.email).is_active


def test_an_admin_of_another_clinic_gets_404(staff_client, world: World) -> None:
    other = staff_client(world.user("b", Role.ADMIN))
    target = world.user("a", Role.CLINICIAN)
    assert other.get(invite_path(world)).status_code == 404
    assert other.get(member_path(world, target)).status_code == 404
    token = csrf_token(other, "/patients")
    response = other.post(
        member_path(world, target), data={"action": "deactivate", "csrf_token": token}
    )
    assert response.status_code == 404
    assert fetch(target.email).is_active


def test_a_user_who_is_not_staff_of_the_clinic_is_404(admin: FlaskClient, world: World) -> None:
    outsider = world.user("b", Role.CLINICIAN)
    assert admin.get(member_path(world, outsider)).status_code == 404
    assert admin.get(f"/clinics/{world.clinic_a.id}/staff/999999").status_code == 404


# An account shared with another clinic -----------------------------------------------------------


def test_an_admin_cannot_take_over_another_clinics_admin(
    app: Flask, admin: FlaskClient, world: World
) -> None:
    """Clinic A's admin adds clinic B's admin to clinic A, then tries every account-wide action:
    each is refused (a reset link would let them sign in as B's admin), and nothing changes."""
    victim = world.user("b", Role.ADMIN)
    added = invite(
        admin, world, email=victim.email, full_name="x", roles=["clinician"], add_to_existing="y"
    )
    assert added.status_code == 303
    page = admin.get(member_path(world, victim)).get_data(as_text=True)
    assert "also works at a clinic you do not administer" in page
    assert "Make a new password link" not in page
    for action in ("force_password_change", "deactivate", "unlock"):
        refused = act(admin, world, victim, action)
        assert refused.status_code == 400, action
        assert "only an administrator of every clinic" in refused.get_data(as_text=True)
    account = fetch(victim.email)
    assert account.is_active
    assert not account.must_change_password
    assert db.session.scalars(select(PasswordToken)).all() == []
    assert login(app.test_client(), victim.email).status_code == 302  # their password still works


def test_an_admin_removes_a_shared_account_from_their_clinic_only(
    admin: FlaskClient, world: World
) -> None:
    shared = world.user("b", Role.CLINICIAN)
    invite(
        admin, world, email=shared.email, full_name="x", roles=["coordinator"], add_to_existing="y"
    )
    removed = act(admin, world, shared, "remove")
    assert removed.status_code == 303
    assert roles_at(shared, world.clinic_a.id) == set()
    assert roles_at(shared, world.clinic_b.id) == {Role.CLINICIAN}
    assert fetch(shared.email).is_active
    (event,) = events("staff.removed_from_clinic")
    assert event.detail["before"] == {"roles": ["coordinator"]}
    assert admin.get(member_path(world, shared)).status_code == 404  # no longer their staff
