"""One-time links to set a password: an invitation or an admin's reset. Flush, never commit.

Like a patient link (proms.surveys.links): 256 random bits, shown once, stored only as a
SHA-256 hash. A link works once, for a week, for an active account; making a new one for an
account ends the ones before it.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Clinic
from proms.auth.models import PasswordToken, Role, StaffSession, StaffUser
from proms.auth.services import clear_throttle, create_staff, end_all_sessions, grant
from proms.checks import public_base_url

TOKEN_BYTES = 32  # 256 bits
LINK_MAX_AGE = dt.timedelta(days=7)
# token_urlsafe(32) is 43 characters: anything much longer is not one of ours, and is not hashed.
MAX_TOKEN_LENGTH = 100


class Purpose(enum.StrEnum):
    INVITE = "invite"  # a new account: the first password
    RESET = "reset"  # an admin asked for a new password


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8")).digest()


def password_link_url(config: Mapping[str, Any], raw: str) -> str:
    """The address the staff member opens: <public base URL>/password/<token>."""
    return f"{public_base_url(config)}/password/{raw}"


def revoke(session: Session, user: StaffUser, *, now: dt.datetime) -> int:
    """End every unused link of an account; the number ended."""
    result = session.execute(
        update(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mint(
    session: Session,
    user: StaffUser,
    *,
    purpose: Purpose,
    now: dt.datetime,
    created_by: StaffUser | None = None,
    max_age: dt.timedelta = LINK_MAX_AGE,
) -> str:
    """A new link for the account (earlier ones stop working); the raw token, never stored."""
    revoke(session, user, now=now)
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        PasswordToken(
            token_hash=hash_token(raw),
            user_id=user.id,
            purpose=purpose.value,
            created_by_id=created_by.id if created_by else None,
            created_at=now,
            expires_at=now + max_age,
        )
    )
    session.flush()
    return raw


def find_valid(session: Session, raw: str, *, now: dt.datetime) -> PasswordToken | None:
    """The unused, unexpired link of an active account for this raw token, or None."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    token = session.scalar(
        select(PasswordToken)
        .where(PasswordToken.token_hash == hash_token(raw))
        .options(joinedload(PasswordToken.user))
    )
    if token is None or token.used_at is not None or token.expires_at <= now:
        return None
    if not token.user.is_active:
        return None
    return token


def consume(session: Session, token: PasswordToken, *, now: dt.datetime) -> bool:
    """Mark the link used, if it still is unused and unexpired (compare-and-set).

    Two submits of one link at the same moment: the second update finds the row already used
    (PostgreSQL re-checks the condition after the first commits; SQLite runs writers one at a
    time) and changes nothing, so only one password is ever set.
    """
    result = session.execute(
        update(PasswordToken)
        .where(
            PasswordToken.id == token.id,
            PasswordToken.used_at.is_(None),
            PasswordToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def set_new_password(
    session: Session,
    hasher: PasswordHasher,
    user: StaffUser,
    password: str,
    *,
    now: dt.datetime,
    keep: StaffSession | None = None,
) -> None:
    """Give the account a new password (already checked with `password_problem`).

    Every session but `keep` (the browser that changed it) ends, the admin's "change your
    password" is done, unused links stop working and a lock on the address is lifted.
    """
    user.password_hash = hasher.hash(password)
    user.must_change_password = False
    end_all_sessions(user, "password_changed", now=now, keep=keep)
    revoke(session, user, now=now)
    clear_throttle(session, user.email)
    session.flush()


def set_password_with_link(
    session: Session,
    hasher: PasswordHasher,
    token: PasswordToken,
    password: str,
    *,
    now: dt.datetime,
) -> bool:
    """Use a link to set its account's password; False when the link was used meanwhile."""
    if not consume(session, token, now=now):
        return False
    set_new_password(session, hasher, token.user, password, now=now)
    return True


def invite(
    session: Session,
    hasher: PasswordHasher,
    clinic: Clinic,
    *,
    email: str,
    full_name: str,
    roles: Sequence[Role],
    now: dt.datetime,
    created_by: StaffUser | None = None,
) -> tuple[StaffUser, str]:
    """A new account with roles in a clinic, and the raw token of its invitation link.

    Nobody knows the account's password (a random one, hashed) until its owner sets one with
    the link. Raises AccountError when the address has an account already.
    """
    user = create_staff(
        session,
        hasher,
        email=email,
        full_name=full_name,
        password=secrets.token_urlsafe(TOKEN_BYTES),
        clinic=clinic,
        role=roles[0],
    )
    for role in roles[1:]:
        grant(session, user, clinic, role)
    return user, mint(session, user, purpose=Purpose.INVITE, now=now, created_by=created_by)
