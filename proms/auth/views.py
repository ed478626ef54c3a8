"""Sign-in, sign-out, and passwords: one-time links and "choose a new password"."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, logout_user

from proms.auth import mfa, services, sessions, tokens
from proms.auth.audit import request_info
from proms.auth.forms import ChangePasswordForm, CodeForm, LoginForm, NewPasswordForm
from proms.auth.models import StaffUser
from proms.auth.passwords import hasher_from_config, verify
from proms.auth.roles import ANY_STAFF, public, requires
from proms.db import db, utcnow
from proms.security import limiter

bp = Blueprint("auth", __name__)


def lockout_policy() -> services.LockoutPolicy:
    config = current_app.config
    return services.LockoutPolicy(
        lock_after=config["LOGIN_LOCK_AFTER"],
        base_seconds=config["LOGIN_LOCK_BASE_SECONDS"],
        max_seconds=config["LOGIN_LOCK_MAX_SECONDS"],
    )


def safe_next(target: str | None) -> str:
    """Only a path on this site; anything else (another host, a scheme) goes to the start page."""
    if target:
        parts = urlsplit(target)
        local = target.startswith("/") and not target.startswith("//") and "\\" not in target
        if local and not parts.scheme and not parts.netloc:
            return target
    return url_for("index")


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    form = LoginForm()
    if request.method == "GET":
        return render_template("auth/login.html", form=form)
    if not form.validate():
        return render_template("auth/login.html", form=form), 400

    now = utcnow()
    result = services.authenticate(
        db.session,
        hasher_from_config(current_app.config),
        lockout_policy(),
        email=form.email.data or "",
        password=form.password.data or "",
        now=now,
        origin=request_info(),
    )
    db.session.commit()
    if result.outcome is services.LoginOutcome.LOCKED:
        assert result.locked_until is not None
        minutes = max(1, round((result.locked_until - now).total_seconds() / 60))
        form.form_errors.append(
            "Too many failed attempts: this account is locked for "
            f"{minutes} minute{'s' if minutes != 1 else ''}. "
            "Try again later, or ask an administrator to unlock it."
        )
        return render_template("auth/login.html", form=form), 429
    if result.outcome is services.LoginOutcome.BAD_CREDENTIALS:
        form.form_errors.append("That email and password do not match an active account.")
        return render_template("auth/login.html", form=form), 401

    user = result.user
    assert user is not None
    next_url = safe_next(request.args.get("next"))
    if result.outcome is services.LoginOutcome.CODE_NEEDED:
        # Not signed in yet: this browser only remembers (signed) who gave the right password.
        # A fresh session: nothing from before (a planted CSRF token, say) carries over.
        session.clear()
        session[PENDING] = {"user": user.id, "at": now.timestamp(), "next": next_url}
        return redirect(url_for("auth.login_code"))
    if user.must_change_password:
        next_url = url_for("auth.change_password")
    elif mfa.is_required(db.session, user):
        next_url = url_for("auth.two_step_setup")  # not set up yet: nothing else until it is
    sessions.sign_in_browser(db.session, user, now=now, origin=request_info())
    db.session.commit()
    return redirect(next_url)


# The Flask session key of a sign-in waiting for its code.
PENDING = "pending_sign_in"


def pending_sign_in(now: dt.datetime) -> tuple[StaffUser, str] | None:
    """The user whose password this browser gave, and where to go next, if still waiting."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    user_id, at, next_url = pending.get("user"), pending.get("at"), pending.get("next")
    if not isinstance(user_id, int) or not isinstance(at, float) or not isinstance(next_url, str):
        return None
    minutes = current_app.config["MFA_CODE_MINUTES"]
    if not 0 <= now.timestamp() - at <= minutes * 60:
        return None
    user = db.session.get(StaffUser, user_id)
    if user is None or not user.is_active or not user.is_mfa_enabled:
        return None
    return user, next_url


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login_code() -> ResponseReturnValue:
    """The second step: a code from the phone app (or a recovery code), after the password."""
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    now = utcnow()
    pending = pending_sign_in(now)
    if pending is None:
        session.pop(PENDING, None)
        flash("Sign in with your email and password first. A code is asked for after.", "info")
        return redirect(url_for("auth.login"))
    user, next_url = pending
    form = CodeForm()
    if request.method == "GET":
        return render_template("auth/login_code.html", form=form)
    if not form.validate():
        return render_template("auth/login_code.html", form=form), 400
    result = services.check_code(
        db.session, lockout_policy(), user, form.code.data or "", now=now, origin=request_info()
    )
    if result.outcome is services.LoginOutcome.LOCKED:
        db.session.commit()
        session.pop(PENDING, None)
        assert result.locked_until is not None
        minutes = max(1, round((result.locked_until - now).total_seconds() / 60))
        flash(
            "Too many wrong codes: this account is locked for "
            f"{minutes} minute{'s' if minutes != 1 else ''}. "
            "Try again later, or ask an administrator to unlock it.",
            "error",
        )
        return redirect(url_for("auth.login"), 303)
    if result.outcome is services.LoginOutcome.BAD_CODE:
        db.session.commit()
        form.form_errors.append(
            "That code is not right, or it was used already. Enter the code your app shows "
            "now, or one of your recovery codes."
        )
        form.code.data = ""
        return render_template("auth/login_code.html", form=form), 401
    if user.must_change_password:
        next_url = url_for("auth.change_password")
    sessions.sign_in_browser(db.session, user, now=now, origin=request_info())
    db.session.commit()
    return redirect(next_url)


@bp.route("/logout", methods=["POST"])
@public  # signing out needs a session, not a role
@login_required
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token of LogoutForm.
    user = current_user._get_current_object()
    record = g.get("staff_session")
    if record is not None:
        sessions.end(db.session, record, sessions.EndReason.LOGOUT, now=utcnow())
    services.record_event(db.session, "logout", actor=user, origin=request_info())
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/<token>", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def set_password(token: str) -> ResponseReturnValue:
    """A one-time link from an admin: the staff member sets their own password."""
    now = utcnow()
    found = tokens.find_valid(db.session, token, now=now)
    if found is None:
        return render_template("auth/link_invalid.html"), 404
    form = NewPasswordForm()
    page = {"form": form, "user": found.user, "purpose": found.purpose, "token": token}
    if request.method == "GET":
        return render_template("auth/set_password.html", **page)
    if not form.validate():
        return render_template("auth/set_password.html", **page), 400
    hasher = hasher_from_config(current_app.config)
    if not tokens.set_password_with_link(
        db.session, hasher, found, form.new_password.data or "", now=now
    ):
        db.session.rollback()
        return render_template("auth/link_invalid.html"), 404
    services.record_event(
        db.session,
        "password.set",
        actor=found.user,
        origin=request_info(),
        detail={"purpose": found.purpose, "password_token_id": found.id},
    )
    db.session.commit()
    if current_user.is_authenticated:
        # Someone else was signed in on this browser: the next sign-in is the link's owner's.
        logout_user()
    session.clear()
    flash("Your password is set. Sign in with your email address and the new password.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/password", methods=["GET", "POST"])
@requires(ANY_STAFF)
def change_password() -> ResponseReturnValue:
    """Choose a new password: when an admin asked for one, before any other page."""
    user: StaffUser = current_user._get_current_object()
    form = ChangePasswordForm()
    if request.method == "GET":
        return render_template("auth/change_password.html", form=form)
    if not form.validate():
        return render_template("auth/change_password.html", form=form), 400
    hasher = hasher_from_config(current_app.config)
    if not verify(hasher, user.password_hash, form.current_password.data or ""):
        form.current_password.errors = ["That is not your current password."]
        return render_template("auth/change_password.html", form=form), 400
    tokens.set_new_password(
        db.session,
        hasher,
        user,
        form.new_password.data or "",
        now=utcnow(),
        keep=g.get("staff_session"),  # this browser goes on; every other session ends
    )
    services.record_event(db.session, "password.changed", actor=user, origin=request_info())
    db.session.commit()
    flash("Your password is changed.", "info")
    return redirect(url_for("index"), 303)
