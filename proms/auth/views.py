"""Login and logout."""

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

from proms.auth import services
from proms.auth.audit import request_info
from proms.auth.forms import LoginForm
from proms.auth.passwords import hasher_from_config
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
    return url_for("care.patients")


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("care.patients"))
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
    # A fresh session at login: nothing from before (a planted CSRF token, say) carries over.
    session.clear()
    login_user(result.user)
    session.permanent = True
    session["last_seen"] = now.timestamp()
    return redirect(next_url)


@bp.route("/logout", methods=["POST"])
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
