"""Audit events from a web request: who (current_user) and from where (the request)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Any

from flask import request
from flask_login import current_user

from proms.admin.models import Patient
from proms.auth.services import RequestInfo, record_event
from proms.db import db


def request_info() -> RequestInfo:
    return RequestInfo(ip_address=request.remote_addr, user_agent=request.user_agent.string)


def audit_patient_view(action: str, patient: Patient, detail: dict[str, Any] | None = None) -> None:
    """Record that the current staff member saw a patient's data (committed with the request).

    Inserted at the commit, after the page is rendered: the audit chain's lock (PostgreSQL) is
    then held only while the request commits (proms/audit_chain.py).
    """
    record_event(
        db.session,
        action,
        actor=current_user._get_current_object(),
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        origin=request_info(),
        detail=detail,
        at_commit=True,
    )


def snapshot(obj: object, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of a row as JSON-ready values, for `audit_change`."""
    return {name: _json_value(getattr(obj, name)) for name in fields}


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def audit_change(
    action: str,
    *,
    clinic_id: int | None,
    patient_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a change by the current staff member: the fields that changed, before and after.

    Fields whose value did not change are left out, so an event reads as what was done. A
    creation has no `before`; a deletion no `after`.
    """
    before = before or {}
    after = after or {}
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    record_event(
        db.session,
        action,
        actor=current_user._get_current_object(),
        clinic_id=clinic_id,
        patient_id=patient_id,
        origin=request_info(),
        detail={
            **(detail or {}),
            "before": {name: before[name] for name in changed if name in before},
            "after": {name: after[name] for name in changed if name in after},
        },
        at_commit=True,  # like a view: the chain's lock only while the request commits
    )
