"""Friendly error pages: a clear message and the right status, never a stack trace.

Pages under /s/ are a patient's: they get the patient layout and the patient's language.
"""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

MESSAGES = {
    400: _l("The request could not be understood."),
    401: _l("Sign in to continue."),
    403: _l("You do not have access to this page."),
    404: _l("There is nothing here. Check the address, or go back to the start page."),
    405: _l("This page cannot be used that way."),
    413: _l("What you sent is too large. Shorten it and try again."),
    429: _l("Too many tries in a short time. Please wait a minute and try again."),
    500: _l("Something went wrong on our side. Nothing you entered was lost; try again shortly."),
}
# What a patient, who has no start page and no account, can do instead.
PATIENT_MESSAGES = {
    404: _l("There is nothing here. Please open the link from your message again."),
    401: _l("Please open the link from your message again."),
    403: _l("Please open the link from your message again."),
}
CSRF_MESSAGE = _l(
    "This form has expired or was not sent from this site. Go back, reload the page and try again."
)


def is_patient_page() -> bool:
    return request.path == "/s" or request.path.startswith("/s/")


def _render(status: int, message: object) -> ResponseReturnValue:
    if request.accept_mimetypes.best == "application/json":
        return {"error": str(message)}, status
    if not is_patient_page():
        return render_template("errors/error.html", status=status, message=message), status
    if message is MESSAGES.get(status):
        message = PATIENT_MESSAGES.get(status, message)
    return render_template("surveys/error.html", status=status, message=message), status


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    # Our own abort(400, description=...) messages are written for people; Werkzeug's and
    # Flask-Limiter's ("3 per 1 minute") are not.
    default = type(error).description
    own = error.description != default and not isinstance(error, RateLimitExceeded)
    message = error.description if own else MESSAGES.get(status, "")
    return _render(status, message or MESSAGES.get(status, ""))


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    return _render(400, CSRF_MESSAGE)


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    # Flask has already logged the exception with its traceback; the person gets a plain page.
    return _render(500, MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
