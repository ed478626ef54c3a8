"""Staff accounts, clinic memberships and the audit log."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from flask import g, has_app_context
from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.admin.models import Clinic


class Role(enum.StrEnum):
    """What a staff member may do in one clinic."""

    ADMIN = "admin"
    COORDINATOR = "coordinator"
    CLINICIAN = "clinician"
    # Exports and cohort reports of the clinic's data; no patient pages.
    ANALYST = "analyst"


class StaffUser(db.Model):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    last_login_at: Mapped[dt.datetime | None]
    # Set by an admin: the next sign-in goes to "choose a new password" first.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Two-step sign-in (proms.auth.mfa): the RFC 6238 shared secret, base32. Kept as it is, not
    # hashed: checking a code needs the secret itself (docs/staff-sign-in.md says why it is not
    # encrypted either). Set once a code from it is confirmed; None: not enrolled.
    mfa_secret: Mapped[str | None] = mapped_column(String(32))
    # The secret on the enrolment page, until a code confirms it (so a reload shows the same).
    mfa_pending_secret: Mapped[str | None] = mapped_column(String(32))
    mfa_enabled_at: Mapped[dt.datetime | None]
    # The last 30-second time step whose code was accepted: a code is good once, never again.
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)

    memberships: Mapped[list[ClinicMembership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lowercase"),)

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """The raw token of the session being started (never stored): Flask-Login keeps it in
        the cookie at sign-in (proms.auth.sessions.sign_in_browser).

        A `login_user` without a session record (a test rendering a template as someone) signs
        in for that request only: its id names no record, so the next request finds nobody.
        """
        token = g.get("new_session_token") if has_app_context() else None
        return token if isinstance(token, str) else f"no-session:{self.id}"

    @property
    def is_mfa_enabled(self) -> bool:
        return self.mfa_secret is not None

    @property
    def clinic_ids(self) -> list[int]:
        return [membership.clinic_id for membership in self.memberships]

    def roles_in(self, clinic_id: int) -> set[Role]:
        return {m.role for m in self.memberships if m.clinic_id == clinic_id}

    def __repr__(self) -> str:
        return f"<StaffUser {self.id}>"


class ClinicMembership(db.Model):
    __tablename__ = "clinic_membership"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(enum_type(Role, "role"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[StaffUser] = relationship(back_populates="memberships")
    clinic: Mapped[Clinic] = relationship()

    __table_args__ = (UniqueConstraint("user_id", "clinic_id", "role"),)


class PasswordToken(db.Model):
    """A one-time link to set a password: an invitation or an admin's reset. Hash only."""

    __tablename__ = "password_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))  # "invite" or "reset"
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    user: Mapped[StaffUser] = relationship(foreign_keys=[user_id])


class LoginThrottle(db.Model):
    """Consecutive failed logins for one email address, whether or not it has an account.

    Keyed by the address attempted, so an unknown address locks exactly like a real one and the
    lockout reveals nothing about which addresses have accounts. Stored as a hash: the table
    fills with whatever attackers type.
    """

    __tablename__ = "login_throttle"

    email_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_count: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("failed_count >= 0", name="failed_count_not_negative"),)


class StaffSession(db.Model):
    """One signed-in browser: the cookie carries the random token; the row, its SHA-256 hash.

    Every request checks its row (proms.auth.sessions), so ending a row signs that browser out
    for good: logout, a password change (the others), an admin's "sign out everywhere", the
    idle timeout and the absolute lifetime. Rows are kept after they end: the account page and
    the audit of a stolen cookie read them.
    """

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    # Why it ended: logout, password_changed, signed_out_elsewhere, signed_out_by_admin, idle,
    # lifetime, account_changed, two_step_reset.
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[StaffUser] = relationship()

    __table_args__ = (
        # The account page and "end every session": a user's open sessions.
        Index(None, "user_id", "ended_at"),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="ended_with_reason"),
    )


class RecoveryCode(db.Model):
    """A one-time code for two-step sign-in without the phone. Hash only; used once."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]


class AuditEvent(db.Model):
    """Who did or saw what, when, from where.

    A view records only ids. A change records the fields it changed, before and after: that
    can be health information (a new phone number), so the table is guarded like the patient
    tables it describes, and never logged or exported with the de-identified data.

    Rows are written once: the database refuses any UPDATE or DELETE of them (the triggers
    below, and the same in migration f0a0d1700b12). The staff member, clinic and patient an
    event names cannot be deleted either (ON DELETE RESTRICT, not SET NULL, which would update
    the event): staff are deactivated, never deleted, and proms deletes no clinic or patient.
    See docs/audit.md.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    is_success: Mapped[bool] = mapped_column(default=True, server_default=true())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="RESTRICT"))
    # For login attempts with an unknown address; staff emails are not health information.
    actor_email: Mapped[str | None] = mapped_column(String(254))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="RESTRICT"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="RESTRICT"))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash chain (proms/audit_chain.py, docs/audit.md): the link of the event before this
    # one, and this event's own, an HMAC of that link and its fields. Set when it is inserted.
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        # One event after each link: two writers that raced past the chain's lock would fail
        # here instead of forking the chain.
        Index(None, "prev_hash", unique=True),
        Index(None, "patient_id", "occurred_at"),
        Index(None, "actor_id", "occurred_at"),
        Index(None, "action", "occurred_at"),
        # The admin's audit page: one clinic's events, newest first; then the events without a
        # clinic (sign-ins, lists across clinics), newest first, to keep its staff's.
        Index(None, "clinic_id", "occurred_at"),
        Index(
            "ix_audit_event_without_clinic",
            "occurred_at",
            "id",
            postgresql_where=text("clinic_id IS NULL"),
            sqlite_where=text("clinic_id IS NULL"),
        ),
    )


# The guard that keeps audit rows as written, on both databases; migration f0a0d1700b12 creates
# the same. A refusal is an integrity error (SQLSTATE 23001 restrict_violation on PostgreSQL,
# SQLITE_CONSTRAINT_TRIGGER on SQLite), so a caller sees IntegrityError on either.
AUDIT_GUARD_MESSAGE = "audit events are never changed or deleted"
POSTGRESQL_AUDIT_GUARD = (
    f"""CREATE FUNCTION audit_event_unchangeable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{AUDIT_GUARD_MESSAGE}' USING ERRCODE = 'restrict_violation';
END;
$$""",
    "CREATE TRIGGER audit_event_unchangeable BEFORE UPDATE OR DELETE ON audit_event"
    " FOR EACH ROW EXECUTE FUNCTION audit_event_unchangeable()",
)
# (trigger name, statement): tests/helpers.py lifts them to empty the tables between tests.
SQLITE_AUDIT_GUARD = tuple(
    (
        f"audit_event_no_{verb.lower()}",
        f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event"
        f" BEGIN SELECT RAISE(ABORT, '{AUDIT_GUARD_MESSAGE}'); END",
    )
    for verb in ("UPDATE", "DELETE")
)
for _statement in POSTGRESQL_AUDIT_GUARD:
    event.listen(
        AuditEvent.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql")
    )
event.listen(
    AuditEvent.__table__,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS audit_event_unchangeable()").execute_if(dialect="postgresql"),
)
for _name, _statement in SQLITE_AUDIT_GUARD:
    event.listen(AuditEvent.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))

# Every event is chained to the one before when it is inserted: proms/audit_chain.py registers
# the flush listener that does it. Imported with the model, so that no insert can miss it.
from proms import audit_chain as _audit_chain  # noqa: E402, F401
