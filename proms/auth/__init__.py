"""Staff login, roles, clinic scoping and the audit log."""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, logout_user
from sqlalchemy import select

from proms.auth.forms import LogoutForm
from proms.auth.models import StaffUser
from proms.db import db, utcnow

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"
# Cookie sessions: "basic" marks a session non-fresh when the browser changes; "strong" would
# sign out staff whose mobile network changes their address.
login_manager.session_protection = "basic"


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    """The user of a session cookie, if its session token is still current."""
    raw_id, _, token = user_id.partition(":")
    if not raw_id.isdigit() or not token:
        return None
    user = db.session.scalar(select(StaffUser).where(StaffUser.id == int(raw_id)))
    if user is None or not user.is_active or user.session_token != token:
        return None
    return user


def enforce_idle_timeout() -> ResponseReturnValue | None:
    """Sign staff out after IDLE_TIMEOUT_MINUTES without a request."""
    if request.endpoint in (None, "static", "health.healthz") or request.blueprint == "surveys":
        # Patient pages have no staff sign-in to time out: no user is loaded for them (which
        # would also mark the session changed and send its cookie again).
        return None
    if not current_user.is_authenticated:
        return None
    now = utcnow().timestamp()
    limit = dt.timedelta(minutes=current_app.config["IDLE_TIMEOUT_MINUTES"]).total_seconds()
    last_seen = session.get("last_seen")
    if not isinstance(last_seen, float) or now - last_seen > limit:
        logout_user()
        session.clear()
        flash("You were signed out after a period without activity. Sign in again.", "info")
        return redirect(url_for("auth.login"))
    session["last_seen"] = now
    return None


# Pages open to a signed-in user who must choose a new password first.
NEW_PASSWORD_EXEMPT = frozenset(
    {None, "static", "health.healthz", "auth.change_password", "auth.logout", "auth.set_password"}
)


def require_new_password() -> ResponseReturnValue | None:
    """Send a user whose admin asked for a new password to "choose a new password" first."""
    if request.endpoint in NEW_PASSWORD_EXEMPT or request.blueprint == "surveys":
        return None
    if current_user.is_authenticated and current_user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return None


def init_app(app: Flask) -> None:
    from proms.auth import cli, views

    login_manager.init_app(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(
        minutes=app.config["IDLE_TIMEOUT_MINUTES"]
    )
    app.before_request(enforce_idle_timeout)
    app.before_request(require_new_password)  # after the timeout: a stale session signs in again
    app.register_blueprint(views.bp)
    app.cli.add_command(cli.staff)

    @app.context_processor
    def logout_form() -> dict[str, object]:
        # formdata=None: the sign-out form in the page header never reads the request body (it
        # may be the one being refused as too large). Outside a request (the scheduler renders
        # messages) there is no user at all.
        if not current_user or not current_user.is_authenticated:
            return {}
        return {"logout_form": lambda: LogoutForm(formdata=None)}
