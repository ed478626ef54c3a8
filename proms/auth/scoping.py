"""Clinic scoping: the one place that decides which patients a staff member may see."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from flask import abort
from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.orm import Session

from proms.admin.models import Patient
from proms.auth.models import Role, StaffUser


def visible_clinic_ids(user: StaffUser, roles: Collection[Role] | None = None) -> list[int]:
    """The clinics whose patients the user may see (as one of `roles`), in id order.

    Read from the user's memberships (loaded once per request with the user), so that a list
    compares `patient.clinic_id` with known values: a clinic's patients are then read by the
    (clinic_id, family_name, given_name, id) index in name order, not all of them sorted.
    """
    return sorted({m.clinic_id for m in user.memberships if roles is None or m.role in roles})


def in_clinics(clinic_ids: Sequence[int]) -> ColumnElement[bool]:
    """`patient.clinic_id` is one of `clinic_ids`: an equality for one, nothing for none."""
    if not clinic_ids:
        return false()
    if len(clinic_ids) == 1:
        return Patient.clinic_id == clinic_ids[0]
    return Patient.clinic_id.in_(clinic_ids)


def visible_patients(
    user: StaffUser, roles: Collection[Role] | None = None
) -> Select[tuple[Patient]]:
    """A select of the patients of the clinics the user belongs to (with one of `roles`)."""
    return select(Patient).where(in_clinics(visible_clinic_ids(user, roles)))


def patient_or_404(session: Session, user: StaffUser, patient_id: int) -> Patient:
    """The patient if the user may see them; 404 otherwise, so nothing confirms they exist."""
    patient = session.scalar(visible_patients(user).where(Patient.id == patient_id))
    if patient is None:
        abort(404)
    return patient
