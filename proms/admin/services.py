"""Coordinator services: clinics, patients and enrollments. Flush, never commit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin import enrollment as enrollments
from proms.admin import protocol_editing as editing
from proms.admin.errors import AdminError
from proms.admin.models import (
    Clinic,
    Enrollment,
    Patient,
    Protocol,
)
from proms.auth.models import StaffUser
from proms.db import utcnow

__all__ = ["AdminError"]


def check_time_zone(name: str) -> str:
    """The IANA time zone name, or AdminError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long
        raise AdminError(
            f"Unknown time zone {name!r}: use an IANA name such as America/New_York."
        ) from exc
    return name


def create_clinic(
    session: Session,
    *,
    slug: str,
    name: str,
    time_zone: str,
    contact_phone: str | None = None,
    contact_email: str | None = None,
    offer_bundled_protocol: bool = True,
) -> Clinic:
    """A new clinic, offered the bundled ketamine protocol (its coordinators may edit it)."""
    if session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is not None:
        raise AdminError(f"A clinic with the short name {slug!r} already exists.")
    clinic = Clinic(
        slug=slug,
        name=name,
        time_zone=check_time_zone(time_zone),
        contact_phone=contact_phone,
        contact_email=contact_email,
    )
    session.add(clinic)
    session.flush()
    if offer_bundled_protocol:
        install_protocol(session, clinic, bundled_protocol(BUNDLED_PROTOCOL))
    return clinic


def enroll_patient(
    session: Session,
    patient: Patient,
    protocol: Protocol,
    anchor_on: dt.date,
    *,
    created_by: StaffUser | None = None,
    now: dt.datetime | None = None,
) -> Enrollment:
    """Start a treatment course: the enrollment, an assessment per time point, the outbox rows."""
    return enrollments.enroll(
        session, patient, protocol, anchor_on, now=now or utcnow(), created_by=created_by
    )


PROTOCOLS_DIR = Path(__file__).parent / "protocols"
BUNDLED_PROTOCOL = "ketamine-infusion-course"


def bundled_protocol(slug: str) -> dict[str, Any]:
    """A protocol definition shipped with proms (a JSON file in proms/admin/protocols/)."""
    path = PROTOCOLS_DIR / f"{slug}.json"
    with path.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


def install_protocol(session: Session, clinic: Clinic, spec: dict[str, Any]) -> Protocol:
    """Create a protocol version from its definition, or return the one that exists."""
    existing = session.scalar(
        select(Protocol).where(
            Protocol.clinic_id == clinic.id,
            Protocol.slug == spec["slug"],
            Protocol.version == spec["version"],
        )
    )
    if existing is not None:
        return existing
    protocol = Protocol(clinic=clinic, slug=spec["slug"], version=spec["version"])
    editing.apply_spec(protocol, editing.spec_from_json(spec))
    session.add(protocol)
    session.flush()
    return protocol


def withdraw_enrollment(
    session: Session,
    enrollment: Enrollment,
    *,
    now: dt.datetime,
    reason: str,
    by: StaffUser | None = None,
) -> int:
    """Stop a course's follow-up; returns how many assessments still to come were cancelled."""
    cancelled, _messages = enrollments.withdraw(session, enrollment, now=now, reason=reason, by=by)
    return cancelled
