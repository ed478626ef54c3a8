"""A staff member's own account: two-step sign-in, recovery codes, signed-in browsers."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from proms.auth import lifetimes, mfa, roles, services, sessions
from proms.auth.audit import request_info
from proms.auth.forms import ButtonForm, EnrolForm
from proms.auth.models import StaffSession, StaffUser
from proms.auth.roles import ANY_STAFF, requires
from proms.auth.views import bp
from proms.db import db, utcnow


def _time_zone(user: StaffUser) -> str:
    """The zone the account page shows times in: the user's first clinic's."""
    zones = sorted((m.clinic_id, m.clinic.time_zone) for m in user.memberships)
    return zones[0][1] if zones else "UTC"


@bp.route("/account")
@requires(ANY_STAFF)
def account() -> ResponseReturnValue:
    user = roles.user()
    now = utcnow()
    return render_template(
        "auth/account.html",
        user=user,
        time_zone=_time_zone(user),
        is_required=mfa.is_required(db.session, user),
        unused_codes=mfa.unused_recovery_codes(db.session, user) if user.is_mfa_enabled else 0,
        open_sessions=sessions.open_sessions(
            db.session, user, lifetimes(current_app.config), now=now
        ),
        current=g.get("staff_session"),
        button=ButtonForm(formdata=None),
    )


def _setup_page(user: StaffUser, form: EnrolForm) -> str:
    secret = mfa.pending_secret(db.session, user)
    uri = mfa.provisioning_uri(secret, email=user.email, issuer=current_app.config["MFA_ISSUER"])
    return render_template(
        "auth/two_step_setup.html",
        form=form,
        qr=mfa.qr_svg(uri),
        secret=mfa.grouped(secret),
        is_required=mfa.is_required(db.session, user),
    )


def _recovery_codes_page(codes: list[str], *, first_time: bool) -> str:
    """The codes, on this page only: never in a flash, a log or a redirect."""
    return render_template("auth/recovery_codes.html", codes=codes, first_time=first_time)


@bp.route("/account/two-step", methods=["GET", "POST"])
@requires(ANY_STAFF)
def two_step_setup() -> ResponseReturnValue:
    """Set up two-step sign-in: scan the QR code (or type the secret), confirm with a code."""
    user = roles.user()
    if user.is_mfa_enabled:
        flash("Two-step sign-in is already on for your account.", "info")
        return redirect(url_for("auth.account"), 303)
    if request.method == "GET":
        page = _setup_page(user, EnrolForm())
        db.session.commit()  # the pending secret, so a reload shows the same QR code
        return page
    form = EnrolForm()
    if not form.validate():
        return _setup_page(user, form), 400
    codes = mfa.enable(db.session, user, form.code.data or "", now=utcnow())
    if codes is None:
        services.record_event(
            db.session, "mfa.setup_failed", actor=user, is_success=False, origin=request_info()
        )
        db.session.commit()
        form.code.errors = [
            "That code does not match. Check that the app's clock is right, and enter the code "
            "it shows now for proms."
        ]
        return _setup_page(user, form), 400
    services.record_event(db.session, "mfa.enabled", actor=user, origin=request_info())
    db.session.commit()
    return _recovery_codes_page(codes, first_time=True)


@bp.route("/account/recovery-codes", methods=["POST"])
@requires(ANY_STAFF)
def new_recovery_codes() -> ResponseReturnValue:
    """A new set of recovery codes; the old ones stop working."""
    user = roles.user()
    if not user.is_mfa_enabled:
        abort(400, description="Set up two-step sign-in first: recovery codes come with it.")
    codes = mfa.new_recovery_codes(db.session, user, now=utcnow())
    services.record_event(
        db.session, "mfa.recovery_codes_renewed", actor=user, origin=request_info()
    )
    db.session.commit()
    return _recovery_codes_page(codes, first_time=False)


@bp.route("/account/sessions/<id:session_id>/end", methods=["POST"])
@requires(ANY_STAFF)
def end_session(session_id: int) -> ResponseReturnValue:
    """Sign out one of the user's other browsers."""
    user = roles.user()
    record = db.session.scalar(
        select(StaffSession).where(StaffSession.id == session_id, StaffSession.user_id == user.id)
    )
    if record is None:
        abort(404)  # nobody else's sessions, and nothing says whether the id exists
    current = g.get("staff_session")
    if current is not None and record.id == current.id:
        abort(400, description="That is this browser: use “Sign out” at the top of the page.")
    ended = sessions.end(db.session, record, sessions.EndReason.SIGNED_OUT_ELSEWHERE, now=utcnow())
    if ended:
        services.record_event(
            db.session,
            "session.ended",
            actor=user,
            origin=request_info(),
            detail={"staff_session_id": record.id},
        )
    db.session.commit()
    flash("That browser is signed out." if ended else "That browser was signed out already.")
    return redirect(url_for("auth.account"), 303)


@bp.route("/account/sessions/end-others", methods=["POST"])
@requires(ANY_STAFF)
def end_other_sessions() -> ResponseReturnValue:
    """Sign out every browser of the user but this one."""
    user = roles.user()
    count = services.end_all_sessions(
        user,
        sessions.EndReason.SIGNED_OUT_ELSEWHERE.value,
        now=utcnow(),
        keep=g.get("staff_session"),
    )
    services.record_event(
        db.session,
        "session.ended_others",
        actor=user,
        origin=request_info(),
        detail={"sessions_ended": count},
    )
    db.session.commit()
    flash(
        f"{count} other browser{'s are' if count != 1 else ' is'} signed out."
        if count
        else "No other browser was signed in."
    )
    return redirect(url_for("auth.account"), 303)


def staff_sign_in_facts(user: StaffUser) -> dict[str, object]:
    """What the staff member's page shows of their sign-in (templates/auth/_staff_sign_in.html)."""
    config = current_app.config
    return {
        "is_required": mfa.is_required(db.session, user),
        "open_sessions": len(
            sessions.open_sessions(db.session, user, lifetimes(config), now=utcnow())
        ),
    }
