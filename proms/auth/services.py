"""Staff accounts: creation, login with lockout, audit events. Flush, never commit."""

from __future__ import annotations

import datetime as dt
import enum
import getpass
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, object_session

from proms.admin.models import Clinic
from proms.auth import mfa
from proms.auth.models import (
    AuditEvent,
    ClinicMembership,
    LoginThrottle,
    Role,
    StaffSession,
    StaffUser,
)
from proms.auth.passwords import password_problem, verify
from proms.db import utcnow


class AccountError(ValueError):
    """A staff account action that cannot be done; the message is shown as it is."""


class LoginOutcome(enum.StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"  # unknown email, wrong password or inactive account
    LOCKED = "locked"
    CODE_NEEDED = "code_needed"  # the password is right; two-step sign-in asks for a code next
    BAD_CODE = "bad_code"  # a wrong, reused or expired code


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Lock after `lock_after` consecutive failures; the lock doubles with each further one."""

    lock_after: int
    base_seconds: int
    max_seconds: int

    def lock_duration(self, failures: int) -> dt.timedelta | None:
        if failures < self.lock_after:
            return None
        seconds = self.base_seconds * 2 ** min(failures - self.lock_after, 30)
        return dt.timedelta(seconds=min(seconds, self.max_seconds))


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    user: StaffUser | None = None
    locked_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where a request came from, for the audit log."""

    ip_address: str | None = None
    user_agent: str | None = None


def cli_actor() -> str:
    """Who ran a command-line change, for the audit log: "cli:<operating-system user>"."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = "unknown"
    return f"cli:{user}"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def record_event(
    session: Session,
    action: str,
    *,
    actor: StaffUser | None = None,
    actor_email: str | None = None,
    clinic_id: int | None = None,
    patient_id: int | None = None,
    is_success: bool = True,
    origin: RequestInfo | None = None,
    detail: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    at_commit: bool = False,
) -> AuditEvent:
    """Add one audit event; it is chained to the one before when it is inserted.

    `at_commit`: insert it when the session commits rather than at the next flush, so a page
    view holds the chain's lock only while it commits, not while it renders (its id is None
    until then). See proms/audit_chain.py.
    """
    from proms import audit_chain  # its listeners chain every event; it imports this package

    origin = origin or RequestInfo()
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor else None,
        actor_email=actor_email if actor is None else actor.email,
        clinic_id=clinic_id,
        patient_id=patient_id,
        is_success=is_success,
        ip_address=origin.ip_address,
        user_agent=(origin.user_agent or "")[:300] or None,
        detail=detail or {},
    )
    if now is not None:
        event.occurred_at = now
    if at_commit:
        audit_chain.add_at_commit(session, event)
    else:
        session.add(event)
    return event


def create_staff(
    session: Session,
    hasher: PasswordHasher,
    *,
    email: str,
    full_name: str,
    password: str,
    clinic: Clinic,
    role: Role,
) -> StaffUser:
    email = normalize_email(email)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise AccountError(f"A staff account for {email} already exists.")
    if problem := password_problem(password):
        raise AccountError(problem)
    user = StaffUser(
        email=email,
        full_name=full_name,
        password_hash=hasher.hash(password),
    )
    user.memberships.append(ClinicMembership(clinic=clinic, role=role))
    session.add(user)
    session.flush()
    return user


def grant(session: Session, user: StaffUser, clinic: Clinic, role: Role) -> ClinicMembership:
    """Give a staff member a role in a clinic (idempotent)."""
    for membership in user.memberships:
        if membership.clinic_id == clinic.id and membership.role == role:
            return membership
    membership = ClinicMembership(user=user, clinic=clinic, role=role)
    session.add(membership)
    session.flush()
    return membership


def find_staff(session: Session, email: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(StaffUser.email == normalize_email(email)))


def email_sha256(email: str) -> str:
    return hashlib.sha256(normalize_email(email).encode("utf-8")).hexdigest()


def find_throttle(
    session: Session, email: str, *, for_update: bool = False
) -> LoginThrottle | None:
    query = select(LoginThrottle).where(LoginThrottle.email_sha256 == email_sha256(email))
    if for_update:
        # Read again under the lock: the row may already be in the session from before it.
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def _count_failure(
    session: Session, email: str, policy: LockoutPolicy, now: dt.datetime
) -> LoginThrottle:
    """Count a failed login for an address (its row made if missing) and lock it if due.

    The count is incremented in the database (`SET n = n + 1`), never read and written back, so
    failures sent at the same moment all count, on SQLite as on PostgreSQL.
    """
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    key = email_sha256(email)
    session.execute(
        insert(LoginThrottle)
        .values(email_sha256=key, failed_count=0, updated_at=now)
        .on_conflict_do_nothing()
    )
    failures = session.scalar(
        update(LoginThrottle)
        .where(LoginThrottle.email_sha256 == key)
        .values(failed_count=LoginThrottle.failed_count + 1, updated_at=now)
        .returning(LoginThrottle.failed_count)
        .execution_options(synchronize_session=False)
    )
    assert failures is not None
    lock = policy.lock_duration(failures)
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.email_sha256 == key)
        .values(locked_until=now + lock if lock else None)
        .execution_options(synchronize_session=False)
    )
    throttle = find_throttle(session, email, for_update=True)
    assert throttle is not None
    return throttle


def clear_throttle(session: Session, email: str) -> bool:
    """Forget the failed attempts of an address (unlock); True if there were any."""
    result = session.execute(
        delete(LoginThrottle).where(LoginThrottle.email_sha256 == email_sha256(email))
    )
    return bool(result.rowcount)


def authenticate(
    session: Session,
    hasher: PasswordHasher,
    policy: LockoutPolicy,
    *,
    email: str,
    password: str,
    now: dt.datetime,
    origin: RequestInfo,
) -> LoginResult:
    """Check a login attempt, count failures per address, lock, and audit every attempt.

    While an address is locked every attempt is refused without looking at the password, and
    does not extend the lock. When the lock has run out the next attempt is checked: the right
    password logs in and clears the count; a wrong one locks again for twice as long. Unknown
    addresses are counted and locked the same way, so the answers reveal no account.
    """
    email = normalize_email(email)
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    who: dict[str, Any] = {"actor": user} if user else {"actor_email": email[:254]}

    throttle = find_throttle(session, email)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        record_event(
            session,
            "login.locked",
            is_success=False,
            origin=origin,
            now=now,
            detail={"locked_until": throttle.locked_until.isoformat()},
            **who,
        )
        return LoginResult(LoginOutcome.LOCKED, locked_until=throttle.locked_until)

    if user is None:
        # Spend the same time as a real check so response times do not reveal which emails exist.
        verify(hasher, _dummy_hash(hasher), password)
        reason = "unknown_email"
    elif not verify(hasher, user.password_hash, password):
        reason = "wrong_password"
    elif not user.is_active:
        reason = "inactive"
    else:
        reason = ""

    if reason:
        throttle = _count_failure(session, email, policy, now)
        record_event(
            session,
            "login.failed",
            is_success=False,
            origin=origin,
            now=now,
            detail={"reason": reason, "failures": throttle.failed_count},
            **who,
        )
        if throttle.locked_until is not None:
            return LoginResult(LoginOutcome.LOCKED, locked_until=throttle.locked_until)
        return LoginResult(LoginOutcome.BAD_CREDENTIALS)

    assert user is not None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    if user.is_mfa_enabled:
        # The code decides. The failure count stays until a code is right: otherwise the
        # password, once known, would reset it between guesses of the code.
        record_event(session, "login.password_accepted", actor=user, origin=origin, now=now)
        return LoginResult(LoginOutcome.CODE_NEEDED, user=user)
    clear_throttle(session, email)
    user.last_login_at = now
    record_event(session, "login.succeeded", actor=user, origin=origin, now=now)
    return LoginResult(LoginOutcome.OK, user=user)


def check_code(
    session: Session,
    policy: LockoutPolicy,
    user: StaffUser,
    code: str,
    *,
    now: dt.datetime,
    origin: RequestInfo,
) -> LoginResult:
    """The second step of a sign-in: a code, counted and locked like a wrong password.

    A wrong code counts as a failed sign-in of the account's address (the same lockout), and
    while the address is locked no code is looked at. Every attempt is audited.
    """
    throttle = find_throttle(session, user.email)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        record_event(
            session,
            "login.locked",
            actor=user,
            is_success=False,
            origin=origin,
            now=now,
            detail={"locked_until": throttle.locked_until.isoformat(), "step": "code"},
        )
        return LoginResult(LoginOutcome.LOCKED, locked_until=throttle.locked_until)
    method = mfa.verify(session, user, code, now=now)
    if method is None:
        throttle = _count_failure(session, user.email, policy, now)
        record_event(
            session,
            "login.code_failed",
            actor=user,
            is_success=False,
            origin=origin,
            now=now,
            detail={"failures": throttle.failed_count},
        )
        if throttle.locked_until is not None:
            return LoginResult(LoginOutcome.LOCKED, locked_until=throttle.locked_until)
        return LoginResult(LoginOutcome.BAD_CODE)
    clear_throttle(session, user.email)
    user.last_login_at = now
    record_event(
        session,
        "login.succeeded",
        actor=user,
        origin=origin,
        now=now,
        detail={"second_step": method.value},
    )
    return LoginResult(LoginOutcome.OK, user=user)


def end_all_sessions(
    user: StaffUser,
    reason: str = "account_changed",
    *,
    now: dt.datetime | None = None,
    keep: StaffSession | None = None,
) -> int:
    """End every open session record of the user but `keep`; how many ended.

    Their cookies are worth nothing from the next request on (proms.auth.check_session).
    """
    session = object_session(user)
    assert session is not None, "the user must belong to a session"
    query = update(StaffSession).where(
        StaffSession.user_id == user.id, StaffSession.ended_at.is_(None)
    )
    if keep is not None:
        query = query.where(StaffSession.id != keep.id)
    result = session.execute(
        query.values(ended_at=now or utcnow(), end_reason=reason).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_hex(16))
    return _DUMMY_HASHES[key]
