"""The unsubscribe link of an email: `/u/<token>`, a patient page that stops every message.

Each email carries its own random token; the outbox row keeps only its SHA-256
(`Notification.unsubscribe_hash`), so the database cannot give a link away.

- GET shows one question and one button and changes nothing: mail scanners and link previews
  open links too.
- POST with the button (a CSRF-protected form) opts the patient out, then shows the
  confirmation (through a 303 to the GET, which shows it from then on).
- POST from a mail client's own "Unsubscribe" (RFC 8058 one-click: the body is exactly
  `List-Unsubscribe=One-Click`, sent without cookies, so without a CSRF token) opts out too.
  The route is exempt from CSRFProtect's automatic check and checks the token itself whenever
  the body is anything else. The token in the address is what proves the right to unsubscribe.

The link lives at `/u/`, outside the blueprint's `/s` prefix (it is short, and mail clients
show it), but its endpoints are the surveys blueprint's (`surveys.unsubscribe`): it is a public
patient page, takes the small public form limits, and is redacted from logs like `/s/` links
(proms.logs). The pages show the clinic and the patient's first name, nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app, g, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin.models import Patient
from proms.auth.audit import request_info, snapshot
from proms.auth.roles import public
from proms.auth.services import RequestInfo, record_event
from proms.db import db, utcnow
from proms.errors import CSRF_MESSAGE
from proms.scheduling.links import hash_token
from proms.scheduling.models import Notification
from proms.scheduling.planning import PlanningError, opt_in, opt_out
from proms.security import csrf, limiter
from proms.surveys.views import bp

log = logging.getLogger(__name__)

EMAIL_LINK_REASON = "unsubscribed by email link"
# RFC 8058 section 3.1: the body a mail client posts, as the email's List-Unsubscribe-Post says.
ONE_CLICK = ("List-Unsubscribe", "One-Click")
ONE_CLICK_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A token is 43 characters (secrets.token_urlsafe(32)); anything much longer is not one.
MAX_TOKEN_LENGTH = 100
# Who changed the patient, in the audit log, when the patient did it themselves.
PATIENT_ACTORS = {"email": "patient:email-link", "sms": "patient:text-message"}
OPT_OUT_FIELDS = ("opted_out_at", "opted_out_by_id", "opt_out_reason")


class UnsubscribeForm(FlaskForm):
    """No fields: the CSRF token, and a POST, so a link preview cannot unsubscribe anyone."""


# Services (flush, never commit): also used by proms.webhooks for replies to text messages. ------


def stop_messages(
    session: Session,
    patient: Patient,
    *,
    now: dt.datetime,
    reason: str,
    via: str,
    origin: RequestInfo | None = None,
) -> bool:
    """Opt the patient out at their own request, with an audit event. False when they already
    were (also when another request opted them out a moment ago): nothing changes then."""
    if patient.opted_out_at is not None:
        return False
    before = snapshot(patient, OPT_OUT_FIELDS)
    try:
        cancelled = opt_out(session, patient, now=now, reason=reason, by=None)
    except PlanningError:
        return False
    _audit(session, "patient.opted_out", patient, before, cancelled, via, origin)
    return True


def restart_messages(
    session: Session, patient: Patient, *, now: dt.datetime, via: str, origin: RequestInfo | None
) -> bool:
    """Opt the patient back in at their own request, with an audit event. False when they were
    not opted out."""
    if patient.opted_out_at is None:
        return False
    before = snapshot(patient, OPT_OUT_FIELDS)
    try:
        planned = opt_in(session, patient, now=now)
    except PlanningError:
        return False
    _audit(session, "patient.opted_in", patient, before, planned, via, origin)
    return True


def _audit(
    session: Session,
    action: str,
    patient: Patient,
    before: dict[str, object],
    messages: int,
    via: str,
    origin: RequestInfo | None,
) -> None:
    """The same event a coordinator's opt-out records, with the patient as the actor."""
    after = snapshot(patient, OPT_OUT_FIELDS)
    changed = sorted(name for name in OPT_OUT_FIELDS if before[name] != after[name])
    record_event(
        session,
        action,
        actor_email=PATIENT_ACTORS[via],
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        origin=origin,
        detail={
            "messages": messages,
            "via": via,
            "before": {name: before[name] for name in changed},
            "after": {name: after[name] for name in changed},
        },
    )


def find_notification(session: Session, raw_token: str) -> Notification | None:
    if not raw_token or len(raw_token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalar(
        select(Notification).where(Notification.unsubscribe_hash == hash_token(raw_token))
    )


# Pages ----------------------------------------------------------------------------------------


def _link_limit() -> str:
    return str(current_app.config["LINK_RATE_LIMIT"])


@public
@limiter.limit(_link_limit)
def unsubscribe(token: str) -> ResponseReturnValue:
    """The question and its button; the confirmation once the patient has opted out."""
    notification = find_notification(db.session, token)
    if notification is None:
        return _unknown_link()
    patient = notification.patient
    g.patient_language = patient.language
    if patient.opted_out_at is not None:
        return _done_page(patient)
    return render_template(
        "surveys/unsubscribe.html",
        clinic=patient.clinic,
        first_name=" ".join(patient.given_name.split()),
        form=UnsubscribeForm(),
        token=token,
    )


@public
@limiter.limit(_link_limit)
def unsubscribe_confirm(token: str) -> ResponseReturnValue:
    """Stop every message: the button (CSRF-checked here) or a mail client's one-click."""
    # Mail clients post multipart too, which check_form_size does not cover: at most the small
    # public allowance is read before the form is parsed (413 beyond it).
    request.max_content_length = current_app.config["PUBLIC_FORM_MAX_BYTES"]
    one_click = _is_one_click()
    if not one_click and current_app.config["WTF_CSRF_ENABLED"]:
        try:
            csrf.protect()
        except CSRFError:
            g.patient_language = _browser_language()
            body = render_template("surveys/error.html", status=400, message=CSRF_MESSAGE)
            return body, 400
    notification = find_notification(db.session, token)
    if notification is None:
        return _unknown_link()
    patient = notification.patient
    g.patient_language = patient.language
    if stop_messages(
        db.session,
        patient,
        now=utcnow(),
        reason=EMAIL_LINK_REASON,
        via="email",
        origin=request_info(),
    ):
        log.info("patient %s unsubscribed by email link (%s)", patient.id, _how(one_click))
    db.session.commit()
    if one_click:
        return _done_page(patient)
    # The confirmation is the GET of the same address from now on: a reload posts nothing.
    return redirect(url_for("surveys.unsubscribe", token=token), 303)


def _how(one_click: bool) -> str:
    return "mail client one-click" if one_click else "button"


def _is_one_click() -> bool:
    """RFC 8058's body and nothing else (a form with a CSRF token is the button's)."""
    if request.mimetype not in ONE_CLICK_TYPES:
        return False
    return not request.files and list(request.form.items(multi=True)) == [ONE_CLICK]


def _browser_language() -> str | None:
    return request.accept_languages.best_match(current_app.config["LANGUAGES"])


def _unknown_link() -> ResponseReturnValue:
    """The survey's "we could not find this link" page, in the browser's language."""
    g.patient_language = _browser_language()
    return render_template("surveys/state.html", state="unknown", clinic=None), 404


def _done_page(patient: Patient) -> ResponseReturnValue:
    return render_template("surveys/unsubscribe_done.html", clinic=patient.clinic)


def _register(state: BlueprintSetupState) -> None:
    """Add the routes at /u/<token>, outside the blueprint's /s prefix, under its name."""
    for view, methods in ((unsubscribe, ["GET"]), (unsubscribe_confirm, ["POST"])):
        state.app.add_url_rule("/u/<token>", f"{state.name}.{view.__name__}", view, methods=methods)


csrf.exempt(unsubscribe_confirm)
bp.record(_register)
