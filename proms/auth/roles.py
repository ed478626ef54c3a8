"""Role rules for every staff route, declared where the route is, checked in one place.

Every view function carries its rule: `@public` (patients, sign-in, health checks) or
`@requires(Role.X, ...)`. `tests/security/test_route_roles.py` reads the URL map and fails for
an endpoint without one, then checks each rule for every role and for a user of another clinic.

The decorator sends an anonymous visitor to sign in. On a page that names no object (a list) it
refuses a user who holds none of the roles in any clinic (403). On a page that names an object
the view finds the clinic it belongs to (`patient_for`, `clinic_for`, `check_clinic`), which
refuses a user without the role *there*: 404 when they are not staff of that clinic (nothing
confirms the object exists), 403 when they are, in another role.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from flask import abort, current_app, g
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Clinic, Patient
from proms.auth.models import Role, StaffUser
from proms.security import public

__all__ = ["public", "requires"]

F = TypeVar("F", bound=Callable[..., Any])

ANY_STAFF = frozenset(Role)
# Who sees patients' pages: everyone but analysts.
CARE_TEAM = frozenset({Role.ADMIN, Role.COORDINATOR, Role.CLINICIAN})
# Who exports the clinic's data.
ANALYSIS = frozenset({Role.ADMIN, Role.ANALYST})
COORDINATION = frozenset({Role.COORDINATOR, Role.ADMIN})
ADMINISTRATION = frozenset({Role.ADMIN})


def requires(*roles: Role | Collection[Role]) -> Callable[[F], F]:
    """Signed-in staff holding one of `roles` in at least one of their clinics."""
    allowed: frozenset[Role] = frozenset(
        role for entry in roles for role in ((entry,) if isinstance(entry, Role) else entry)
    )
    if not allowed:
        raise ValueError("requires() needs at least one role")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            g.allowed_roles = allowed
            if kwargs:
                # A URL naming an object: its scoped lookup decides (404 outside the user's
                # clinics, whatever their roles; 403 inside one without the role).
                return view(*args, **kwargs)
            if not any(m.role in allowed for m in current_user.memberships):
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def _allowed() -> frozenset[Role]:
    allowed = g.get("allowed_roles")
    if allowed is None:
        raise RuntimeError("a scoped lookup outside a view decorated with @requires")
    return allowed  # type: ignore[no-any-return]


def user() -> StaffUser:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def clinic_ids() -> list[int]:
    """The clinics where the current user holds one of the view's roles."""
    allowed = _allowed()
    return sorted({m.clinic_id for m in current_user.memberships if m.role in allowed})


def check_clinic(clinic_id: int) -> None:
    """404 outside the user's clinics; 403 in one of them without the view's role."""
    roles = current_user.roles_in(clinic_id)
    if not roles:
        abort(404)
    if not roles & _allowed():
        abort(403)


def patient_for(session: Session, patient_id: int) -> Patient:
    """The patient, if the current user holds the view's role in the patient's clinic (with
    the clinic, which patient pages show: one statement)."""
    patient = session.get(Patient, patient_id, options=[joinedload(Patient.clinic)])
    if patient is None:
        abort(404)
    check_clinic(patient.clinic_id)
    return patient


def clinic_for(session: Session, clinic_id: int) -> Clinic:
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        abort(404)
    check_clinic(clinic.id)
    return clinic


def clinics(session: Session) -> list[Clinic]:
    """The clinics where the current user holds one of the view's roles, by name."""
    ids = clinic_ids()
    if not ids:
        return []
    return list(session.scalars(select(Clinic).where(Clinic.id.in_(ids)).order_by(Clinic.name)))
