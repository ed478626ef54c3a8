"""Server-side records of signed-in browsers. Flush, never commit.

The session cookie carries a random token (256 bits) and nothing else about the sign-in; the
`staff_session` row keeps its SHA-256 hash, like every other token proms stores. Every staff
request looks the row up (proms.auth.check_session), so a row that has ended signs its browser
out at once, and a copy of an old cookie is worth nothing. docs/staff-sign-in.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from flask import g, session
from flask_login import login_user
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from proms.auth.models import StaffSession, StaffUser
from proms.auth.services import RequestInfo

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters: anything much longer is not ours and is not hashed.
MAX_TOKEN_LENGTH = 100


class EndReason(enum.StrEnum):
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, no secret: the other sessions
    SIGNED_OUT_ELSEWHERE = "signed_out_elsewhere"  # ended from the user's account page
    SIGNED_OUT_BY_ADMIN = "signed_out_by_admin"  # an admin's "sign out everywhere"
    ACCOUNT_CHANGED = "account_changed"  # deactivated, or an admin asked for a new password
    TWO_STEP_RESET = "two_step_reset"  # an admin reset the two-step sign-in
    IDLE = "idle"
    LIFETIME = "lifetime"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long a session lasts: without a request (idle), and at all (absolute)."""

    idle: dt.timedelta
    absolute: dt.timedelta
    # "last seen" is written when it is older than this: not on every page view.
    touch_every: dt.timedelta

    def expired(self, record: StaffSession, now: dt.datetime) -> EndReason | None:
        if now - record.created_at >= self.absolute:
            return EndReason.LIFETIME
        if now - record.last_seen_at > self.idle:
            return EndReason.IDLE
        return None


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8")).digest()


def start(
    db_session: Session, user: StaffUser, *, now: dt.datetime, origin: RequestInfo
) -> tuple[StaffSession, str]:
    """A new session record for the user; the raw token, for the cookie only."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    record = StaffSession(
        token_hash=hash_token(raw),
        user=user,
        created_at=now,
        last_seen_at=now,
        ip_address=origin.ip_address,
        user_agent=(origin.user_agent or "")[:300] or None,
    )
    db_session.add(record)
    db_session.flush()
    return record, raw


def find(db_session: Session, raw: object) -> StaffSession | None:
    """The record of a cookie's token, ended or not (with its user), or None."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    return db_session.scalar(
        select(StaffSession)
        .where(StaffSession.token_hash == hash_token(raw))
        .options(joinedload(StaffSession.user))
    )


def end(db_session: Session, record: StaffSession, reason: EndReason, *, now: dt.datetime) -> bool:
    """End one session if it is still open (compare-and-set); True if this call ended it."""
    result = db_session.execute(
        update(StaffSession)
        .where(StaffSession.id == record.id, StaffSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason.value)
        .execution_options(synchronize_session=False)
    )
    db_session.expire(record, ["ended_at", "end_reason"])
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def touch(
    db_session: Session, record: StaffSession, lifetimes: Lifetimes, *, now: dt.datetime
) -> bool:
    """Move "last seen" to now if it is older than `touch_every`; True if it wrote."""
    if now - record.last_seen_at < lifetimes.touch_every:
        return False
    db_session.execute(
        update(StaffSession)
        .where(StaffSession.id == record.id, StaffSession.ended_at.is_(None))
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    db_session.expire(record, ["last_seen_at"])
    return True


def open_sessions(
    db_session: Session, user: StaffUser, lifetimes: Lifetimes, *, now: dt.datetime
) -> Sequence[StaffSession]:
    """The user's sessions that are still open and not yet timed out, newest first."""
    records = db_session.scalars(
        select(StaffSession)
        .where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
        .order_by(StaffSession.last_seen_at.desc(), StaffSession.id.desc())
    )
    return [record for record in records if lifetimes.expired(record, now) is None]


def sign_in_browser(
    db_session: Session, user: StaffUser, *, now: dt.datetime, origin: RequestInfo
) -> StaffSession:
    """Start a session record and sign this browser in to it (a fresh Flask session).

    Nothing from before the sign-in (a planted CSRF token, a half-done sign-in) carries over.
    """
    record, raw = start(db_session, user, now=now, origin=origin)
    session.clear()
    g.new_session_token = raw
    try:
        login_user(user)
    finally:
        g.pop("new_session_token", None)
    session.permanent = True
    g.staff_session = record
    return record


# (marker in the User-Agent, name) in the order to test them: Edge and Opera also say Chrome,
# Chrome also says Safari.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "Mac"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def browser_name(user_agent: str | None) -> str:
    """A browser as people name it ("Chrome on Android"), from its User-Agent, for the account
    page; a guess, good enough to tell one's own devices apart."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), "A browser")
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    return f"{browser} on {system}" if system else browser
