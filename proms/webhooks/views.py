"""Twilio's webhooks: replies to our texts (`/hooks/twilio/inbound`) and delivery reports
(`/hooks/twilio/status`).

Both are public (Twilio has no session) and exempt from CSRF (proms.webhooks.init_app): what
proves a request is Twilio's is its X-Twilio-Signature, an HMAC of the URL Twilio called and the
posted fields, keyed with our TWILIO_AUTH_TOKEN (proms.notify.sms.valid_signature).

The URL Twilio signed is the public one it was given, which behind a proxy is not the URL this
process sees (http://127.0.0.1:8000/...). So it is rebuilt as PUBLIC_BASE_URL (as
proms.checks.public_base_url gives it, the same base the dispatcher puts in StatusCallback) plus
the path and query string of the request. Configure Twilio's messaging webhook as
<PUBLIC_BASE_URL>/hooks/twilio/inbound, exactly.

- TWILIO_AUTH_TOKEN unset: 404, the webhooks are off.
- No or a wrong signature: 403 with a short plain-text answer; nothing changes.
- A field missing: 400. GET: 405. An oversized body: 413 (the public form limits).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from markupsafe import escape

from proms.auth.audit import request_info
from proms.auth.roles import public
from proms.checks import public_base_url
from proms.db import db, utcnow
from proms.notify.sms import valid_signature
from proms.webhooks import services

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/hooks")

SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio's message sids: "SM" (or "MM", "MG"...) and 32 hex digits. Looser, but bounded.
SID = re.compile(r"[A-Za-z0-9]{2,64}")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _plain(text: str, status: int) -> Response:
    return Response(text + "\n", status, mimetype="text/plain")


def _refusal() -> Response | None:
    """404 while webhooks are off; 403 unless Twilio signed this very request; else None."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    if not token:
        return _plain("Not found.", 404)
    url = public_base_url(current_app.config) + request.full_path.rstrip("?")
    params = request.form.to_dict(flat=True)
    if not valid_signature(token, url, params, request.headers.get(SIGNATURE_HEADER)):
        log.warning("Twilio webhook refused: missing or wrong signature (%s)", request.path)
        return _plain("Invalid signature.", 403)
    return None


def twiml(text: str | None) -> Response:
    """A TwiML answer: one message back to the sender, or nothing."""
    if text is None:
        body = EMPTY_TWIML
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            f"{escape(text)}</Message></Response>"
        )
    return Response(body, 200, mimetype="text/xml")


@bp.route("/twilio/inbound", methods=["POST"])
@public
def twilio_inbound() -> ResponseReturnValue:
    """A text to our number: STOP, START or HELP acted on; anything else gets no answer."""
    refused = _refusal()
    if refused is not None:
        return refused
    sender, body = request.form.get("From"), request.form.get("Body")
    if sender is None or body is None:
        return _plain("From and Body are required.", 400)
    result = services.handle_reply(
        db.session,
        sender,
        body,
        now=utcnow(),
        origin=request_info(),
        languages=current_app.config["LANGUAGES"],
    )
    db.session.commit()
    if result.keyword is not None:
        # The keyword and counts only: never the number or what was written.
        log.info(
            "text reply %s: %d patient(s) with that number, %d changed",
            result.keyword.value,
            result.patients,
            result.changed,
        )
    return twiml(result.reply)


@bp.route("/twilio/status", methods=["POST"])
@public
def twilio_status() -> ResponseReturnValue:
    """A delivery report for a text we sent (its StatusCallback)."""
    refused = _refusal()
    if refused is not None:
        return refused
    sid, status = request.form.get("MessageSid"), request.form.get("MessageStatus")
    if not sid or not status or not SID.fullmatch(sid) or len(status) > 40:
        return _plain("MessageSid and MessageStatus are required.", 400)
    status = status.lower()
    stored = services.record_delivery(
        db.session, sid, status, request.form.get("ErrorCode"), now=utcnow()
    )
    db.session.commit()
    shown = status if status in services.DELIVERY_ORDER else "other"
    log.info("delivery report %s for %s: %s", shown, sid, "stored" if stored else "not stored")
    return "", 204
