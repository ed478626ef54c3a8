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
from proms.admin.errors import AdminError
from proms.admin.models import (
    Clinic,
    Enrollment,
    Patient,
    Protocol,
    ProtocolTimepoint,
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
    protocol = Protocol(
        clinic=clinic,
        slug=spec["slug"],
        version=spec["version"],
        name=spec["name"],
        description=spec.get("description", ""),
        anchor_label=spec.get("anchor_label", "First infusion day"),
        channels=list(spec.get("channels", ["email", "sms"])),
        horizon_days=spec.get("horizon_days", 180),
        requires_identity_check=spec.get("requires_identity_check", False),
    )
    for position, tp in enumerate(spec["timepoints"], start=1):
        instruments = tp.get("instruments") or [{"code": c} for c in tp["instrument_codes"]]
        protocol.timepoints.append(
            ProtocolTimepoint(
                key=tp["key"],
                label=tp["label"],
                position=position,
                offset_days=tp["offset_days"],
                window_before_days=tp["window_before_days"],
                window_after_days=tp["window_after_days"],
                send_time_local=dt.time.fromisoformat(tp["send_time_local"]),
                reminder_offsets_days=list(tp["reminder_offsets_days"]),
                instrument_codes=[entry["code"] for entry in instruments],
                instrument_versions={
                    entry["code"]: entry["version"] for entry in instruments if "version" in entry
                },
            )
        )
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
