"""A clinic's staff: invite, roles, deactivate, unlock, force a password change.

An admin never chooses a password: a new account gets an unusable one and a one-time link
(proms.auth.tokens) with which its owner sets their own. Flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from proms.admin.errors import AdminError
from proms.admin.models import Clinic
from proms.auth import tokens
from proms.auth.models import ClinicMembership, LoginThrottle, Role, StaffUser
from proms.auth.services import (
    clear_throttle,
    email_sha256,
    end_all_sessions,
    find_staff,
    grant,
)

# The fields an audit event of an account change compares.
ACCOUNT_FIELDS = ("email", "full_name", "is_active", "must_change_password")


class AccountExists(AdminError):
    """The address already has an account: offer to give it the roles instead."""

    def __init__(self, user: StaffUser, clinic: Clinic) -> None:
        self.user = user
        self.is_member = bool(user.roles_in(clinic.id))
        super().__init__(
            f"{user.email} already has an account."
            + (
                f" They are already staff of {clinic.name}: change their roles on their page."
                if self.is_member
                else f" You can give that account the roles at {clinic.name} instead."
            )
        )


@dataclass(frozen=True, slots=True)
class Member:
    """One row of a clinic's staff list."""

    user: StaffUser
    roles: list[Role]
    is_locked: bool


def roles_of(user: StaffUser, clinic_id: int) -> list[Role]:
    """The user's roles in a clinic, in the order of `Role`."""
    held = user.roles_in(clinic_id)
    return [role for role in Role if role in held]


def member_or_none(session: Session, clinic: Clinic, user_id: int) -> StaffUser | None:
    """The staff member, if they hold a role in this clinic."""
    return session.scalar(
        select(StaffUser)
        .join(ClinicMembership, ClinicMembership.user_id == StaffUser.id)
        .where(StaffUser.id == user_id, ClinicMembership.clinic_id == clinic.id)
        .limit(1)
    )


def locked_emails(session: Session, emails: Collection[str], *, now: dt.datetime) -> set[str]:
    """Which of these addresses are locked out of signing in right now."""
    by_hash = {email_sha256(email): email for email in emails}
    if not by_hash:
        return set()
    locked = session.scalars(
        select(LoginThrottle.email_sha256).where(
            LoginThrottle.email_sha256.in_(by_hash), LoginThrottle.locked_until > now
        )
    )
    return {by_hash[key] for key in locked}


def members(session: Session, clinic: Clinic, *, now: dt.datetime) -> list[Member]:
    """The clinic's staff, by name, with their roles there and whether they are locked out."""
    users = list(
        session.scalars(
            select(StaffUser)
            .where(
                StaffUser.id.in_(
                    select(ClinicMembership.user_id).where(ClinicMembership.clinic_id == clinic.id)
                )
            )
            .options(selectinload(StaffUser.memberships))
            .order_by(StaffUser.full_name, StaffUser.email)
        )
    )
    locked = locked_emails(session, [user.email for user in users], now=now)
    return [Member(user, roles_of(user, clinic.id), user.email in locked) for user in users]


def invite(
    session: Session,
    hasher: PasswordHasher,
    clinic: Clinic,
    *,
    email: str,
    full_name: str,
    roles: Sequence[Role],
    invited_by: StaffUser,
    now: dt.datetime,
) -> tuple[StaffUser, str]:
    """A new account with roles in the clinic, and the raw token of its invitation link.

    Raises AccountExists when the address has an account already.
    """
    if not roles:
        raise AdminError("Choose at least one role.")
    existing = find_staff(session, email)
    if existing is not None:
        raise AccountExists(existing, clinic)
    return tokens.invite(
        session,
        hasher,
        clinic,
        email=email,
        full_name=full_name.strip(),
        roles=roles,
        now=now,
        created_by=invited_by,
    )


def add_roles(session: Session, clinic: Clinic, user: StaffUser, roles: Sequence[Role]) -> None:
    """Give an existing account roles in the clinic (those it has are kept)."""
    if not roles:
        raise AdminError("Choose at least one role.")
    for role in roles:
        grant(session, user, clinic, role)


def other_active_admins(session: Session, clinic_id: int, user: StaffUser) -> int:
    """How many active accounts besides `user` are admins of the clinic."""
    count = session.scalar(
        select(func.count(func.distinct(StaffUser.id)))
        .join(ClinicMembership, ClinicMembership.user_id == StaffUser.id)
        .where(
            ClinicMembership.clinic_id == clinic_id,
            ClinicMembership.role == Role.ADMIN,
            StaffUser.is_active.is_(True),
            StaffUser.id != user.id,
        )
    )
    return int(count or 0)


def _check_not_last_admin(session: Session, clinic: Clinic, user: StaffUser) -> None:
    if other_active_admins(session, clinic.id, user) == 0:
        raise AdminError(
            f"{user.full_name} is the only administrator of {clinic.name}. "
            "Make someone else an administrator first."
        )


def set_roles(session: Session, clinic: Clinic, user: StaffUser, roles: Sequence[Role]) -> None:
    """Make the user's roles in the clinic exactly `roles` (at least one).

    The clinic's last active admin keeps that role: otherwise nobody could manage its staff.
    """
    if not roles:
        raise AdminError("Choose at least one role. To take away all access, deactivate.")
    wanted = set(roles)
    held = user.roles_in(clinic.id)
    if Role.ADMIN in held and Role.ADMIN not in wanted:
        _check_not_last_admin(session, clinic, user)
    for membership in list(user.memberships):
        if membership.clinic_id == clinic.id and membership.role not in wanted:
            user.memberships.remove(membership)
    for role in wanted - held:
        user.memberships.append(ClinicMembership(clinic_id=clinic.id, role=role))
    session.flush()


def check_authority(user: StaffUser, actor: StaffUser) -> None:
    """An account is one person across clinics: only an admin of every clinic the person works
    at may act on the account itself (deactivate, reactivate, unlock, reset the password).

    Otherwise an admin of one clinic could, say, reset the password of another clinic's admin
    whom they had added to their own clinic, and sign in as them.
    """
    elsewhere = {m.clinic_id for m in user.memberships} - {
        m.clinic_id for m in actor.memberships if m.role is Role.ADMIN
    }
    if elsewhere:
        raise AdminError(
            f"{user.full_name} also works at a clinic you do not administer, so only an "
            "administrator of every clinic they work at can change their account. You can "
            "change or remove their roles at this clinic."
        )


def remove_from_clinic(session: Session, clinic: Clinic, user: StaffUser) -> None:
    """Take away every role the user holds at the clinic (their account stays as it is)."""
    if Role.ADMIN in user.roles_in(clinic.id):
        _check_not_last_admin(session, clinic, user)
    for membership in list(user.memberships):
        if membership.clinic_id == clinic.id:
            user.memberships.remove(membership)
    session.flush()


def deactivate(session: Session, user: StaffUser, *, actor: StaffUser, now: dt.datetime) -> None:
    """Close the account: no sign-in, every session ended, every link voided.

    An account is one person across clinics, so this is refused while it is the last active
    admin of any clinic, for the admin's own account, and for an admin who does not administer
    every clinic the person works at.
    """
    check_authority(user, actor)
    if user.id == actor.id:
        raise AdminError("You cannot deactivate your own account.")
    if not user.is_active:
        raise AdminError(f"{user.full_name}'s account is already deactivated.")
    for membership in user.memberships:
        if membership.role is Role.ADMIN:
            _check_not_last_admin(session, membership.clinic, user)
    user.is_active = False
    end_all_sessions(user)
    tokens.revoke(session, user, now=now)
    session.flush()


def reactivate(session: Session, user: StaffUser, *, actor: StaffUser) -> None:
    check_authority(user, actor)
    if user.is_active:
        raise AdminError(f"{user.full_name}'s account is already active.")
    user.is_active = True
    session.flush()


def unlock(session: Session, user: StaffUser, *, actor: StaffUser) -> bool:
    """Clear the failed sign-ins of the account's address; True if there were any."""
    check_authority(user, actor)
    return clear_throttle(session, user.email)


def force_password_change(
    session: Session, user: StaffUser, *, actor: StaffUser, now: dt.datetime
) -> str:
    """End the user's sessions, ask for a new password at the next sign-in; a reset link."""
    check_authority(user, actor)
    if user.id == actor.id:
        raise AdminError("To change your own password, use “Change password” instead.")
    if not user.is_active:
        raise AdminError(f"{user.full_name}'s account is deactivated: reactivate it first.")
    user.must_change_password = True
    end_all_sessions(user)
    session.flush()
    return tokens.mint(session, user, purpose=tokens.Purpose.RESET, now=now, created_by=actor)
