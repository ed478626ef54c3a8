"""An admin's sign-in actions on a staff member's page: sign out everywhere, reset two-step.

The staff member's sign-in facts on that page come from proms.auth (staff_sign_in_facts).
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from proms.admin import staff
from proms.admin.errors import AdminError
from proms.admin.models import Clinic
from proms.admin.views import bp
from proms.auth import mfa, roles, services, sessions
from proms.auth.audit import request_info
from proms.auth.models import StaffUser
from proms.auth.roles import ADMINISTRATION, requires
from proms.db import db, utcnow


def _member(clinic_id: int, user_id: int) -> tuple[Clinic, StaffUser]:
    """The clinic (the admin's: 404 otherwise) and its staff member the admin may act on."""
    clinic = roles.clinic_for(db.session, clinic_id)
    user = staff.member_or_none(db.session, clinic, user_id)
    if user is None:
        abort(404)
    try:
        staff.check_authority(user, roles.user())
    except AdminError as exc:
        abort(403, description=str(exc))
    return clinic, user


def _back(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"), 303)  # the admin signed themselves out
    return redirect(url_for("admin.staff_member", clinic_id=clinic.id, user_id=user.id), 303)


@bp.route("/clinics/<id:clinic_id>/staff/<id:user_id>/sign-out-everywhere", methods=["POST"])
@requires(ADMINISTRATION)
def sign_out_everywhere(clinic_id: int, user_id: int) -> ResponseReturnValue:
    """End every session of the staff member: a lost phone or laptop, a shared computer."""
    clinic, user = _member(clinic_id, user_id)
    count = services.end_all_sessions(
        user, sessions.EndReason.SIGNED_OUT_BY_ADMIN.value, now=utcnow()
    )
    services.record_event(
        db.session,
        "staff.signed_out_everywhere",
        actor=roles.user(),
        clinic_id=clinic.id,
        origin=request_info(),
        detail={"staff_user_id": user.id, "sessions_ended": count},
    )
    db.session.commit()
    flash(
        f"{user.full_name} is signed out everywhere ({count} "
        f"session{'s' if count != 1 else ''} ended)."
    )
    return _back(clinic, user)


@bp.route("/clinics/<id:clinic_id>/staff/<id:user_id>/two-step/reset", methods=["POST"])
@requires(ADMINISTRATION)
def reset_two_step(clinic_id: int, user_id: int) -> ResponseReturnValue:
    """Turn off the staff member's two-step sign-in (a lost phone): they set it up again.

    Every session of theirs ends too. Not for one's own account: a session left open must not
    be enough to remove its second step.
    """
    clinic, user = _member(clinic_id, user_id)
    if user.id == roles.user().id:
        abort(403, description="Another administrator must reset your own two-step sign-in.")
    was_on = user.is_mfa_enabled
    mfa.reset(db.session, user)
    count = services.end_all_sessions(user, sessions.EndReason.TWO_STEP_RESET.value, now=utcnow())
    services.record_event(
        db.session,
        "staff.two_step_reset",
        actor=roles.user(),
        clinic_id=clinic.id,
        origin=request_info(),
        detail={"staff_user_id": user.id, "was_on": was_on, "sessions_ended": count},
    )
    db.session.commit()
    flash(
        f"{user.full_name}'s two-step sign-in is reset and they are signed out everywhere. "
        "They set it up again at their next sign-in."
    )
    return _back(clinic, user)
