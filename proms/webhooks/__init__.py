"""What providers post to proms: replies to our texts (STOP, START, HELP) and delivery reports."""

from __future__ import annotations

from flask import Flask

# The endpoints, for the small form limits every public form gets (proms.security).
ENDPOINTS = ("webhooks.twilio_inbound", "webhooks.twilio_status")


def init_app(app: Flask) -> None:
    from proms.security import csrf
    from proms.webhooks import views

    app.register_blueprint(views.bp)
    # Machine posts with no session to hold a CSRF token: Twilio's signature protects them.
    csrf.exempt(views.bp)
    # Twilio posts some 20 to 40 short fields; a reply longer than the public limit (8 KiB) is
    # refused with 413, and it could not be a keyword anyway.
    limited = list(app.config["PUBLIC_FORM_ENDPOINTS"])
    app.config["PUBLIC_FORM_ENDPOINTS"] = limited + [e for e in ENDPOINTS if e not in limited]
