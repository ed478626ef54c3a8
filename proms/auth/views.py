"""Sign-in, sign-out, and passwords: one-time links and "choose a new password"."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user

from proms.auth import services, tokens
from proms.auth.audit import request_info
from proms.auth.forms import ChangePasswordForm, LoginForm, NewPasswordForm
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

    assert result.user is not None
    next_url = safe_next(request.args.get("next"))
    if result.user.must_change_password:
        next_url = url_for("auth.change_password")
    # A fresh session at login: nothing from before (a planted CSRF token, say) carries over.
    session.clear()
    start_session(result.user)
    return redirect(next_url)


def start_session(user: StaffUser) -> None:
    """Sign the user in to this browser, with the account's current session token."""
    login_user(user)
    session.permanent = True
    session["last_seen"] = utcnow().timestamp()


@bp.route("/logout", methods=["POST"])
@public  # signing out needs a session, not a role
@login_required
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token of LogoutForm.
    user = current_user._get_current_object()
    services.end_all_sessions(user)
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
    tokens.set_new_password(db.session, hasher, user, form.new_password.data or "", now=utcnow())
    services.record_event(db.session, "password.changed", actor=user, origin=request_info())
    db.session.commit()
    # Every other session of the account has ended (the token rotated); this one goes on.
    start_session(user)
    flash("Your password is changed.", "info")
    return redirect(url_for("index"), 303)
