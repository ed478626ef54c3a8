"""Staff login, roles, clinic scoping and the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, logout_user

from proms.auth import mfa, sessions
from proms.auth.forms import LogoutForm
from proms.auth.models import StaffSession, StaffUser
from proms.db import db, utcnow

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"
# Cookie sessions: "basic" marks a session non-fresh when the browser changes; "strong" would
# sign out staff whose mobile network changes their address.
login_manager.session_protection = "basic"


def lifetimes(config: Mapping[str, Any]) -> sessions.Lifetimes:
    return sessions.Lifetimes(
        idle=dt.timedelta(minutes=config["IDLE_TIMEOUT_MINUTES"]),
        absolute=dt.timedelta(hours=config["SESSION_MAX_HOURS"]),
        touch_every=dt.timedelta(seconds=config["SESSION_TOUCH_SECONDS"]),
    )


def _record(raw: object) -> StaffSession | None:
    """The session record of the cookie's token, looked up once per request."""
    cached = g.get("staff_session_lookup")
    if cached is not None and cached[0] == raw:
        return cached[1]  # type: ignore[no-any-return]
    record = sessions.find(db.session, raw)
    g.staff_session_lookup = (raw, record)
    return record


@login_manager.user_loader
def load_user(raw_token: str) -> StaffUser | None:
    """The user of a session cookie, while its record is open, in time, and the account active."""
    record = _record(raw_token)
    if record is None or record.ended_at is not None or not record.user.is_active:
        return None
    if lifetimes(current_app.config).expired(record, utcnow()) is not None:
        return None
    g.staff_session = record
    return record.user


SIGNED_OUT_MESSAGES = {
    sessions.EndReason.IDLE: "You were signed out after a period without activity. Sign in again.",
    sessions.EndReason.LIFETIME: "You were signed out: a session lasts {hours} hours at most. "
    "Sign in again.",
}


# Requests no staff sign-in rule applies to: static files and the load balancer's probes
# (an unknown URL has no endpoint).
NO_STAFF_SIGN_IN: frozenset[str | None] = frozenset(
    {None, "static", "health.healthz", "health.readyz"}
)


def check_session() -> ResponseReturnValue | None:
    """End a session that timed out (idle, or past its lifetime); note activity on the others.

    A cookie whose record has ended (logout, "sign out everywhere", a password change) signs
    nobody in: the request goes on as anonymous, and the cookie is cleared.
    """
    if request.endpoint in NO_STAFF_SIGN_IN or request.blueprint == "surveys":
        # Patient pages have no staff sign-in to time out: no user is loaded for them (which
        # would also mark the session changed and send its cookie again).
        return None
    raw = session.get("_user_id")
    if raw is None:
        return None
    record = _record(raw)
    if record is None or record.ended_at is not None or not record.user.is_active:
        logout_user()
        session.clear()
        return None
    now = utcnow()
    rules = lifetimes(current_app.config)
    reason = rules.expired(record, now)
    if reason is not None:
        sessions.end(db.session, record, reason, now=now)
        db.session.commit()
        logout_user()
        session.clear()
        hours = current_app.config["SESSION_MAX_HOURS"]
        flash(SIGNED_OUT_MESSAGES[reason].format(hours=hours), "info")
        return redirect(url_for("auth.login"))
    if sessions.touch(db.session, record, rules, now=now):
        db.session.commit()
    return None


# Pages open to a signed-in user who must choose a new password first.
NEW_PASSWORD_EXEMPT = NO_STAFF_SIGN_IN | {
    "auth.change_password",
    "auth.logout",
    "auth.set_password",
}


def require_new_password() -> ResponseReturnValue | None:
    """Send a user whose admin asked for a new password to "choose a new password" first."""
    if request.endpoint in NEW_PASSWORD_EXEMPT or request.blueprint == "surveys":
        return None
    if current_user.is_authenticated and current_user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return None


# Pages open to a signed-in user who must set up two-step sign-in first.
ENROLMENT_EXEMPT = NO_STAFF_SIGN_IN | {"auth.two_step_setup", "auth.logout", "auth.set_password"}


def require_two_step() -> ResponseReturnValue | None:
    """Send a user who must use two-step sign-in, and has not set it up, to set it up first.

    They signed in with the password alone (there was no code to ask for); until a code from
    their phone is confirmed they reach nothing else.
    """
    if request.endpoint in ENROLMENT_EXEMPT or request.blueprint == "surveys":
        return None
    if not current_user.is_authenticated or current_user.is_mfa_enabled:
        return None
    if current_user.must_change_password and request.endpoint == "auth.change_password":
        return None  # the new password an admin asked for comes first, then this
    if mfa.is_required(db.session, current_user._get_current_object()):
        return redirect(url_for("auth.two_step_setup"))
    return None


def init_app(app: Flask) -> None:
    from proms.auth import account_views, cli, views

    login_manager.init_app(app)
    # Anyone may post the code page, like the sign-in form: it takes the small public limits.
    limited = list(app.config["PUBLIC_FORM_ENDPOINTS"])
    app.config["PUBLIC_FORM_ENDPOINTS"] = [*limited, *({"auth.login_code"} - set(limited))]
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(
        minutes=app.config["IDLE_TIMEOUT_MINUTES"]
    )
    app.before_request(check_session)
    app.before_request(require_new_password)  # after the timeout: a stale session signs in again
    app.before_request(require_two_step)  # after the new password: one page at a time
    app.register_blueprint(views.bp)
    app.cli.add_command(cli.staff)
    app.add_template_global(account_views.staff_sign_in_facts)
    app.add_template_filter(sessions.browser_name)

    @app.context_processor
    def logout_form() -> dict[str, object]:
        # formdata=None: the sign-out form in the page header never reads the request body (it
        # may be the one being refused as too large). Outside a request (the scheduler renders
        # messages) there is no user at all.
        if not current_user or not current_user.is_authenticated:
            return {}
        return {"logout_form": lambda: LogoutForm(formdata=None)}
