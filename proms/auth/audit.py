"""Audit events from a web request: who (current_user) and from where (the request)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_login import current_user

from proms.admin.models import Patient
from proms.auth.services import RequestInfo, record_event
from proms.db import db


def request_info() -> RequestInfo:
    return RequestInfo(ip_address=request.remote_addr, user_agent=request.user_agent.string)


def audit_patient_view(action: str, patient: Patient, detail: dict[str, Any] | None = None) -> None:
    """Record that the current staff member saw a patient's data (committed with the request)."""
    record_event(
        db.session,
        action,
        actor=current_user._get_current_object(),
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        origin=request_info(),
        detail=detail,
    )
