"""Staff accounts, clinic memberships and the audit log."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
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
    # Rotated at logout and password change: a copied session cookie dies with it.
    session_token: Mapped[str] = mapped_column(String(64))
    last_login_at: Mapped[dt.datetime | None]
    # Set by an admin: the next sign-in goes to "choose a new password" first.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

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
        return f"{self.id}:{self.session_token}"

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


class AuditEvent(db.Model):
    """Who did or saw what, when, from where.

    A view records only ids. A change records the fields it changed, before and after: that
    can be health information (a new phone number), so the table is guarded like the patient
    tables it describes, and never logged or exported with the de-identified data.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    is_success: Mapped[bool] = mapped_column(default=True, server_default=true())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    # For login attempts with an unknown address; staff emails are not health information.
    actor_email: Mapped[str | None] = mapped_column(String(254))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id", ondelete="SET NULL"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="SET NULL"))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index(None, "patient_id", "occurred_at"),
        Index(None, "actor_id", "occurred_at"),
        Index(None, "action", "occurred_at"),
    )
