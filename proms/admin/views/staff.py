"""Staff pages for admins: invite someone, and one staff member's roles and account."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from proms.admin import staff
from proms.admin.errors import AdminError
from proms.admin.forms.staff import InviteForm, RolesForm, StaffActionForm
from proms.admin.models import Clinic
from proms.admin.views import bp
from proms.auth import roles, tokens
from proms.auth.audit import audit_change, snapshot
from proms.auth.models import Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.roles import ADMINISTRATION, requires
from proms.auth.services import find_staff
from proms.db import db, utcnow


def _roles_audit(clinic: Clinic, user: StaffUser) -> dict[str, object]:
    return {"roles": [role.value for role in staff.roles_of(user, clinic.id)]}


def _audit_roles(action: str, clinic: Clinic, user: StaffUser, before: dict[str, object]) -> None:
    """One audit event for a change of the user's roles at the clinic, before and after."""
    audit_change(
        action,
        clinic_id=clinic.id,
        before=before,
        after=_roles_audit(clinic, user),
        detail={"staff_user_id": user.id},
    )


def _link_page(clinic: Clinic, user: StaffUser, raw: str, purpose: tokens.Purpose) -> str:
    """The one-time link, shown on this page only: never in a flash, a log or a redirect."""
    return render_template(
        "admin/staff/link.html",
        clinic=clinic,
        user=user,
        purpose=purpose.value,
        url=tokens.password_link_url(current_app.config, raw),
        expires_days=tokens.LINK_MAX_AGE.days,
    )


def _invite_page(
    clinic: Clinic, form: InviteForm, existing: staff.AccountExists | None = None
) -> str:
    return render_template("admin/staff/invite.html", clinic=clinic, form=form, existing=existing)


@bp.route("/clinics/<id:clinic_id>/staff/new", methods=["GET", "POST"])
@requires(ADMINISTRATION)
def invite_staff(clinic_id: int) -> ResponseReturnValue:
    clinic = roles.clinic_for(db.session, clinic_id)
    form = InviteForm()
    if request.method == "GET":
        return _invite_page(clinic, form)
    if not form.validate():
        return _invite_page(clinic, form), 400
    existing = find_staff(db.session, form.email.data or "")
    if existing is not None and form.add_to_existing.data:
        return _add_to_existing(clinic, existing, form.roles.roles)
    try:
        user, raw = staff.invite(
            db.session,
            hasher_from_config(current_app.config),
            clinic,
            email=form.email.data or "",
            full_name=form.full_name.data or "",
            roles=form.roles.roles,
            invited_by=roles.user(),
            now=utcnow(),
        )
    except staff.AccountExists as exc:
        # Said plainly, with a second button: give this account the roles instead.
        form.add_to_existing.data = True
        return _invite_page(clinic, form, existing=exc)
    audit_change(
        "staff.invited",
        clinic_id=clinic.id,
        after={**snapshot(user, staff.ACCOUNT_FIELDS), **_roles_audit(clinic, user)},
        detail={"staff_user_id": user.id},
    )
    db.session.commit()
    return _link_page(clinic, user, raw, tokens.Purpose.INVITE)


def _add_to_existing(clinic: Clinic, user: StaffUser, chosen: list[Role]) -> ResponseReturnValue:
    before = _roles_audit(clinic, user)
    staff.add_roles(db.session, clinic, user, chosen)
    _audit_roles("staff.roles_changed", clinic, user, before)
    db.session.commit()
    flash(f"{user.full_name} now has these roles at {clinic.name}.", "info")
    return redirect(url_for("admin.staff_member", clinic_id=clinic.id, user_id=user.id), 303)


def _member_page(
    clinic: Clinic,
    user: StaffUser,
    *,
    roles_form: RolesForm | None = None,
    error: str | None = None,
) -> str:
    if roles_form is None:
        roles_form = RolesForm(
            formdata=None, roles=[r.value for r in staff.roles_of(user, clinic.id)]
        )
    now = utcnow()
    return render_template(
        "admin/staff/member.html",
        clinic=clinic,
        user=user,
        roles=staff.roles_of(user, clinic.id),
        is_locked=bool(staff.locked_emails(db.session, [user.email], now=now)),
        is_self=user.id == roles.user().id,
        may_change_account=_may_change_account(user),
        roles_form=roles_form,
        action_form=StaffActionForm(formdata=None),
        error=error,
    )


def _may_change_account(user: StaffUser) -> bool:
    try:
        staff.check_authority(user, roles.user())
    except AdminError:
        return False
    return True


def _done(clinic: Clinic, user: StaffUser, message: str) -> ResponseReturnValue:
    db.session.commit()
    flash(message, "info")
    if user.id == roles.user().id and Role.ADMIN not in user.roles_in(clinic.id):
        return redirect(url_for("admin.clinics"), 303)  # this page is an admin's no more
    return redirect(url_for("admin.staff_member", clinic_id=clinic.id, user_id=user.id), 303)


def _change_roles(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
    form = RolesForm()
    if not form.validate():
        return _member_page(clinic, user, roles_form=form), 400
    before = _roles_audit(clinic, user)
    try:
        staff.set_roles(db.session, clinic, user, form.roles.roles)
    except AdminError as exc:
        db.session.rollback()
        return _member_page(clinic, user, roles_form=form, error=str(exc)), 400
    _audit_roles("staff.roles_changed", clinic, user, before)
    return _done(clinic, user, f"{user.full_name}'s roles are saved.")


def _account_action(
    action: str, message: str, change: Callable[[StaffUser], object]
) -> Callable[[Clinic, StaffUser], ResponseReturnValue]:
    """A change to the account: run it, audit the account's fields before and after."""

    def run(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
        before = snapshot(user, staff.ACCOUNT_FIELDS)
        try:
            change(user)
        except AdminError as exc:
            db.session.rollback()
            return _member_page(clinic, user, error=str(exc)), 400
        audit_change(
            action,
            clinic_id=clinic.id,
            before=before,
            after=snapshot(user, staff.ACCOUNT_FIELDS),
            detail={"staff_user_id": user.id},
        )
        return _done(clinic, user, message.format(name=user.full_name))

    return run


def _unlock(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
    try:
        unlocked = staff.unlock(db.session, user, actor=roles.user())
    except AdminError as exc:
        return _member_page(clinic, user, error=str(exc)), 400
    if not unlocked:
        return _done(clinic, user, f"{user.full_name} had no failed sign-ins to clear.")
    audit_change(
        "staff.unlocked",
        clinic_id=clinic.id,
        before={"locked": True},
        after={"locked": False},
        detail={"staff_user_id": user.id},
    )
    return _done(clinic, user, f"{user.full_name} can sign in again.")


def _force_password_change(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
    before = snapshot(user, staff.ACCOUNT_FIELDS)
    try:
        raw = staff.force_password_change(db.session, user, actor=roles.user(), now=utcnow())
    except AdminError as exc:
        db.session.rollback()
        return _member_page(clinic, user, error=str(exc)), 400
    audit_change(
        "staff.password_change_forced",
        clinic_id=clinic.id,
        before=before,
        after=snapshot(user, staff.ACCOUNT_FIELDS),
        detail={"staff_user_id": user.id},
    )
    db.session.commit()
    return _link_page(clinic, user, raw, tokens.Purpose.RESET)


def _remove(clinic: Clinic, user: StaffUser) -> ResponseReturnValue:
    before = _roles_audit(clinic, user)
    try:
        staff.remove_from_clinic(db.session, clinic, user)
    except AdminError as exc:
        db.session.rollback()
        return _member_page(clinic, user, error=str(exc)), 400
    _audit_roles("staff.removed_from_clinic", clinic, user, before)
    db.session.commit()
    flash(f"{user.full_name} no longer works at {clinic.name}.", "info")
    return redirect(url_for("admin.clinic", clinic_id=clinic.id), 303)


ACTIONS: dict[str, Callable[[Clinic, StaffUser], ResponseReturnValue]] = {
    "roles": _change_roles,
    "remove": _remove,
    "deactivate": _account_action(
        "staff.deactivated",
        "{name}'s account is deactivated and signed out everywhere.",
        lambda user: staff.deactivate(db.session, user, actor=roles.user(), now=utcnow()),
    ),
    "reactivate": _account_action(
        "staff.reactivated",
        "{name}'s account is active again.",
        lambda user: staff.reactivate(db.session, user, actor=roles.user()),
    ),
    "unlock": _unlock,
    "force_password_change": _force_password_change,
}


@bp.route("/clinics/<id:clinic_id>/staff/<id:user_id>", methods=["GET", "POST"])
@requires(ADMINISTRATION)
def staff_member(clinic_id: int, user_id: int) -> ResponseReturnValue:
    clinic = roles.clinic_for(db.session, clinic_id)
    user = staff.member_or_none(db.session, clinic, user_id)
    if user is None:
        abort(404)
    if request.method == "GET":
        return _member_page(clinic, user)
    action = ACTIONS.get(request.form.get("action", ""))
    if action is None:
        abort(400, description="Choose one of the buttons on the staff member's page.")
    return action(clinic, user)
