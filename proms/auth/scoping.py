"""Clinic scoping: the one place that decides which patients a staff member may see."""

from __future__ import annotations

from collections.abc import Collection

from flask import abort
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from proms.admin.models import Patient
from proms.auth.models import ClinicMembership, Role, StaffUser


def visible_patients(
    user: StaffUser, roles: Collection[Role] | None = None
) -> Select[tuple[Patient]]:
    """A select of the patients of the clinics the user belongs to (with one of `roles`)."""
    clinic_ids = select(ClinicMembership.clinic_id).where(ClinicMembership.user_id == user.id)
    if roles is not None:
        clinic_ids = clinic_ids.where(ClinicMembership.role.in_(list(roles)))
    return select(Patient).where(Patient.clinic_id.in_(clinic_ids))


def patient_or_404(session: Session, user: StaffUser, patient_id: int) -> Patient:
    """The patient if the user may see them; 404 otherwise, so nothing confirms they exist."""
    patient = session.scalar(visible_patients(user).where(Patient.id == patient_id))
    if patient is None:
        abort(404)
    return patient
