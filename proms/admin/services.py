"""Coordinator services: clinics, patients and enrollments. Flush, never commit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin.models import (
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Patient,
    Protocol,
    ProtocolTimepoint,
)
from proms.auth.models import StaffUser
from proms.scheduling.models import OPEN_STATUSES, AssessmentStatus
from proms.scheduling.services import create_assessments


class AdminError(ValueError):
    """A coordinator action that cannot be done; the message is shown as it is."""


def check_time_zone(name: str) -> str:
    """The IANA time zone name, or AdminError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
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
) -> Clinic:
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
    return clinic


def enroll_patient(
    session: Session,
    patient: Patient,
    protocol: Protocol,
    anchor_on: dt.date,
    *,
    created_by: StaffUser | None = None,
) -> Enrollment:
    """Start a treatment course: the enrollment and an assessment for every time point."""
    if protocol.clinic_id != patient.clinic_id:
        raise AdminError("The protocol belongs to another clinic.")
    if not protocol.is_active:
        raise AdminError("This protocol version is retired; enroll with the current version.")
    if protocol.requires_identity_check and patient.birth_on is None:
        raise AdminError(
            "This protocol asks patients for their date of birth before the questions: "
            "record the patient's date of birth first."
        )
    enrollment = Enrollment(
        patient=patient,
        protocol=protocol,
        anchor_on=anchor_on,
        created_by_id=created_by and created_by.id,
    )
    session.add(enrollment)
    session.flush()
    create_assessments(session, enrollment)
    return enrollment


PROTOCOLS_DIR = Path(__file__).parent / "protocols"


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
        requires_identity_check=spec.get("requires_identity_check", False),
    )
    for position, tp in enumerate(spec["timepoints"], start=1):
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
                instrument_codes=list(tp["instrument_codes"]),
            )
        )
    session.add(protocol)
    session.flush()
    return protocol


def withdraw_enrollment(
    session: Session, enrollment: Enrollment, *, now: dt.datetime, reason: str
) -> int:
    """Stop a course's follow-up: cancel its assessments still to come; returns how many.

    Windows that had already closed unanswered are left for the expiry sweep: they were missed,
    not cancelled.
    """
    if enrollment.status is EnrollmentStatus.WITHDRAWN:
        raise AdminError("This course is already withdrawn.")
    enrollment.status = EnrollmentStatus.WITHDRAWN
    enrollment.withdrawn_at = now
    enrollment.withdrawal_reason = reason
    cancelled = 0
    for assessment in enrollment.assessments:
        if assessment.closes_at > now and assessment.status in OPEN_STATUSES:
            assessment.status = AssessmentStatus.CANCELLED
            cancelled += 1
    session.flush()
    return cancelled
