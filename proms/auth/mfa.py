"""Two-step sign-in: TOTP codes from a phone app (RFC 6238) and one-time recovery codes.

Flush, never commit. A code is checked against the current 30-second time step and one step
either side (a phone clock a little off, a code typed as it changed), and each time step is
accepted once per account: `mfa_last_step` only moves forward, by a compare-and-set in the
database, so a code seen over a shoulder (or sent twice at once) signs in at most once.
Recovery codes are 50 random bits each, stored as SHA-256 hashes, and each works once.
docs/staff-sign-in.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets

import pyotp
import segno
from markupsafe import Markup
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from proms.admin.models import Clinic
from proms.auth.models import ClinicMembership, RecoveryCode, Role, StaffUser

STEP_SECONDS = 30
# Steps either side of now whose code is accepted (RFC 6238 section 5.2 allows a small window).
VALID_WINDOW = 1
DIGITS = 6
RECOVERY_CODE_COUNT = 10
# Lowercase letters and digits without look-alikes (0/o, 1/l/i): read from paper, typed again.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_LENGTH = 10  # 10 characters of 31: about 50 bits
# Longer input than any code (with spaces and dashes) is refused before it is hashed.
MAX_CODE_INPUT = 40


class Method(enum.StrEnum):
    TOTP = "totp"
    RECOVERY = "recovery"


def new_secret() -> str:
    """A fresh shared secret: 160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def grouped(secret: str) -> str:
    """The secret in groups of four, to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, *, email: str, issuer: str) -> str:
    """The otpauth:// address a phone app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=email, issuer_name=issuer
    )


def qr_svg(uri: str) -> Markup:
    """The QR code of the address as inline SVG, drawn here: no script, no other site."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", title="QR code for your authenticator app"
    )
    return Markup(svg)  # noqa: S704 - segno writes path data from the address's bits and our title


def time_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code of a time step (tests and `proms demo code` use it too)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(step * STEP_SECONDS)


def _clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step, now or one either side, whose code this is; None if none is."""
    cleaned = _clean(code)
    if len(cleaned) != DIGITS or not cleaned.isdigit():
        return None
    current = time_step(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if secrets.compare_digest(code_at(secret, step), cleaned):
            return step
    return None


def _claim_step(session: Session, user: StaffUser, step: int) -> bool:
    """Record the step as used if it is later than the last one used (compare-and-set)."""
    result = session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.mfa_last_step.is_(None), StaffUser.mfa_last_step < step),
        )
        .values(mfa_last_step=step)
        .execution_options(synchronize_session=False)
    )
    session.expire(user, ["mfa_last_step"])
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def hash_recovery_code(code: str) -> bytes:
    return hashlib.sha256(_clean(code).encode("utf-8")).digest()


def _use_recovery_code(session: Session, user: StaffUser, code: str, now: dt.datetime) -> bool:
    cleaned = _clean(code)
    if len(cleaned) != RECOVERY_LENGTH:
        return False
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hash_recovery_code(cleaned),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def verify(session: Session, user: StaffUser, code: str, *, now: dt.datetime) -> Method | None:
    """Check a sign-in code: a TOTP code not used before, or an unused recovery code.

    Returns how the user proved it, or None (a wrong, reused or expired code).
    """
    if user.mfa_secret is None or len(code) > MAX_CODE_INPUT:
        return None
    step = matching_step(user.mfa_secret, code, now)
    if step is not None:
        return Method.TOTP if _claim_step(session, user, step) else None
    if _use_recovery_code(session, user, code, now):
        return Method.RECOVERY
    return None


def pending_secret(session: Session, user: StaffUser) -> str:
    """The secret offered on the enrolment page (made once, kept until confirmed)."""
    if user.mfa_pending_secret is None:
        user.mfa_pending_secret = new_secret()
        session.flush()
    return user.mfa_pending_secret


def enable(session: Session, user: StaffUser, code: str, *, now: dt.datetime) -> list[str] | None:
    """Turn two-step sign-in on when the code matches the pending secret; the recovery codes.

    None when the code does not match (nothing changes).
    """
    secret = user.mfa_pending_secret
    if secret is None or len(code) > MAX_CODE_INPUT:
        return None
    step = matching_step(secret, code, now)
    if step is None:
        return None
    user.mfa_secret = secret
    user.mfa_pending_secret = None
    user.mfa_enabled_at = now
    user.mfa_last_step = step  # the confirming code cannot sign in as well
    session.flush()
    return new_recovery_codes(session, user, now=now)


def new_recovery_codes(session: Session, user: StaffUser, *, now: dt.datetime) -> list[str]:
    """A new set of recovery codes (the old ones stop working); the codes, never stored."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(
            RecoveryCode(user_id=user.id, code_hash=hash_recovery_code(raw), created_at=now)
        )
    session.flush()
    return codes


def unused_recovery_codes(session: Session, user: StaffUser) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def reset(session: Session, user: StaffUser) -> None:
    """Turn two-step sign-in off (an admin's reset): the next sign-in enrols again if required."""
    user.mfa_secret = None
    user.mfa_pending_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.flush()


def is_required(session: Session, user: StaffUser) -> bool:
    """Admins of any clinic, and all staff of a clinic that asks for it, use two-step sign-in."""
    if any(membership.role is Role.ADMIN for membership in user.memberships):
        return True
    return bool(
        session.scalar(
            select(
                exists().where(
                    ClinicMembership.user_id == user.id,
                    ClinicMembership.clinic_id == Clinic.id,
                    Clinic.requires_mfa.is_(True),
                )
            )
        )
    )
