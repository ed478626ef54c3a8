"""Alerts for the care team's tests: a patient's course and alerts filed as a submit files them."""

from __future__ import annotations

import datetime as dt

from proms.admin.enrollment import enroll
from proms.admin.models import Patient
from proms.auth.models import StaffUser
from proms.db import db, utcnow
from proms.outcomes.models import Alert, AlertKind, AlertStatus, AlertTier
from proms.scheduling.models import Assessment
from tests.helpers import World, patient_today

START = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def course(world: World, patient: Patient) -> list[Assessment]:
    protocol = world.protocol_a if patient.clinic_id == world.clinic_a.id else world.protocol_b
    enrollment = enroll(
        db.session, patient, protocol, patient_today(patient) + dt.timedelta(days=3), now=utcnow()
    )
    db.session.flush()
    return sorted(enrollment.assessments, key=lambda a: a.opens_at)


def add_alert(
    assessment: Assessment,
    tier: AlertTier,
    minutes: int,
    *,
    kind: AlertKind = AlertKind.SEVERITY,
    rule: str | None = None,
    status: AlertStatus = AlertStatus.OPEN,
    by: StaffUser | None = None,
) -> Alert:
    """An alert raised `minutes` after START (as record_submission files them)."""
    patient = assessment.enrollment.patient
    at = START + dt.timedelta(minutes=minutes)
    alert = Alert(
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        assessment_id=assessment.id,
        kind=kind,
        tier=tier,
        rule=rule or f"severity:peg:total>={minutes}",
        timepoint_key=assessment.timepoint.key,
        detail={
            "instrument": "peg",
            "scale": "total",
            "value": 9.0,
            "unit": "points",
            "operator": ">=",
            "cut": 8.0,
            "label": "severe pain and interference",
        },
        created_at=at,
        status=status,
    )
    if status is not AlertStatus.OPEN:
        alert.acknowledged_at, alert.acknowledged_by_id = at, by.id if by else None
        alert.acknowledgement_note = "Called, booked a visit."
    if status is AlertStatus.RESOLVED:
        alert.resolved_at, alert.resolved_by_id = at, by.id if by else None
    db.session.add(alert)
    db.session.flush()
    return alert
