"""Friendly error pages: a clear message and the right status, never a stack trace.

Pages under /s/ and /u/ are a patient's: they get the patient layout and the patient's language.

An error can leave the database session in a failed transaction (an IntegrityError on flush),
and the pages read the database too (the signed-in staff member, the patient's clinic): every
handler rolls back first. If the page still cannot be rendered (the database is gone, a template
breaks), a plain page built here without templates goes out instead of the server's bare one.
Either way the response carries the security headers and `Cache-Control: no-store`: after an
error Flask may skip the remaining after-request functions, so they are set here too.

A database that cannot be reached (restarting, refusing connections, busy) is not a bug: a 503
with Retry-After says to try again in a moment; a full disk is a 507 that says to try later.
Both tell a patient that the answers saved before are kept (proms.db.trouble_status decides).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, make_response, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, InternalServerError

from proms.db import STORAGE_FULL, UNAVAILABLE, db, trouble_status
from proms.i18n import is_patient_path
from proms.security import add_security_headers

MESSAGES = {
    400: _l("The request could not be understood."),
    401: _l("Sign in to continue."),
    403: _l("You do not have access to this page."),
    404: _l("There is nothing here. Check the address, or go back to the start page."),
    405: _l("This page cannot be used that way."),
    413: _l("What you sent is too large. Shorten it and try again."),
    429: _l("Too many tries in a short time. Please wait a minute and try again."),
    500: _l("Something went wrong on our side. Nothing you entered was lost; try again shortly."),
    # The database restarting or unreachable, or its storage full (proms.db.trouble_status).
    503: _l("This cannot be done just now. What was saved before is kept; try again in a moment."),
    507: _l("Nothing can be saved just now. What was saved before is kept; try again later."),
}
# What a patient, who has no start page and no account, can do instead.
PATIENT_MESSAGES = {
    404: _l("There is nothing here. Please open the link from your message again."),
    401: _l("Please open the link from your message again."),
    403: _l("Please open the link from your message again."),
    503: _l(
        "Your answer could not be saved just now. The answers you saved before are kept. "
        "Please try again in a moment."
    ),
    507: _l(
        "Your answer could not be saved just now. The answers you saved before are kept. "
        "Please try again later."
    ),
}
# Seconds a 503 asks clients to wait: about what a PostgreSQL restart takes.
RETRY_AFTER_SECONDS = 5
CSRF_MESSAGE = _l(
    "This form has expired or was not sent from this site. Go back, reload the page and try again."
)

# The last resort: no template, no database, no translation, no stylesheet (its unversioned URL
# would be cached for a year). Readable on a phone and by a screen reader.
PLAIN_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{robots}<title>{title}</title>
</head>
<body{body_class}>
<main id="main">
<h1>{title}</h1>
<p>{message}</p>
</main>
</body>
</html>
"""
# If even the translations fail.
PLAIN_TITLE = "Something went wrong"
PLAIN_MESSAGE = "Something went wrong on our side. Try again shortly."


def is_patient_page() -> bool:
    return is_patient_path(request.path)


def _title(status: int) -> str:
    """The heading of an error page (the same words as templates/surveys/error.html)."""
    if status == 404:
        return _("Not found")
    if status == 429:
        return _("Please wait")
    if status >= 500:
        return _("Something went wrong")
    return _("That did not work")


def _message_for(status: int, message: object) -> object:
    if is_patient_page() and message is MESSAGES.get(status):
        return PATIENT_MESSAGES.get(status, message)
    return message


def _render(status: int, message: object) -> Response:
    if request.accept_mimetypes.best == "application/json":
        return make_response({"error": str(message)}, status)
    if not is_patient_page():
        page = render_template("errors/error.html", status=status, message=message)
    else:
        page = render_template("surveys/error.html", status=status, message=message)
    return make_response(page, status)


def _plain_page(status: int, message: object) -> Response:
    try:
        title, text, lang = _title(status), str(message), str(get_locale() or "en")
    except Exception:
        title, text, lang = PLAIN_TITLE, PLAIN_MESSAGE, "en"
    patient = is_patient_page()
    page = PLAIN_PAGE.format(
        lang=escape(lang),
        robots='<meta name="robots" content="noindex, nofollow">\n' if patient else "",
        title=escape(title),
        body_class=' class="patient"' if patient else "",
        message=escape(text),
    )
    return Response(page, status, mimetype="text/html")


def _rollback() -> None:
    """End a failed transaction so that the page can read the database again."""
    try:
        db.session.rollback()
    except Exception:
        # The database is unreachable: render without it, or fall back to the plain page.
        current_app.logger.warning("rolling back before an error page failed", exc_info=True)


def respond(status: int, message: object) -> Response:
    """The error page for a status: friendly if it can be rendered, plain if not; protected."""
    _rollback()
    message = _message_for(status, message)
    try:
        response = _render(status, message)
    except Exception:
        current_app.logger.exception(
            "the %s error page could not be rendered; sending the plain one", status
        )
        response = _plain_page(status, message)
    add_security_headers(response)
    # Even a missing static file: an error page is never kept by a browser or proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    # Our own abort(400, description=...) messages are written for people; Werkzeug's and
    # Flask-Limiter's ("3 per 1 minute") are not.
    default = type(error).description
    own = error.description != default and not isinstance(error, RateLimitExceeded)
    message = error.description if own else MESSAGES.get(status, "")
    response = respond(status, message or MESSAGES.get(status, ""))
    if isinstance(error, RateLimitExceeded):
        # Said here rather than by Flask-Limiter's headers, which would go out on every response
        # of a limited page (about 120 bytes each on a patient's phone): at most a whole window.
        response.headers["Retry-After"] = str(error.limit.limit.get_expiry())
    return response


def handle_csrf_error(error: CSRFError) -> Response:
    return respond(400, CSRF_MESSAGE)


def handle_unexpected(error: Exception) -> Response:
    # Flask has already logged the exception with its traceback; the person gets a plain page.
    original = getattr(error, "original_exception", None)
    if original is not None and trouble_status(original) is not None:
        # Raised outside the view (opening the session, a teardown): the same answer as inside.
        return _database_trouble(original)
    return respond(500, MESSAGES[500])


def handle_database_error(error: Exception) -> Response:
    """The database unreachable or full: 503 (with Retry-After) or 507, not a 500.

    Whatever else a driver error means (a constraint, a bug) is raised again, so Flask treats
    it as before: logged with its traceback (or propagated in tests), then the friendly 500.
    """
    if trouble_status(error) is None:
        raise error
    return _database_trouble(error)


def _database_trouble(error: BaseException) -> Response:
    status = trouble_status(error)
    assert status in (UNAVAILABLE, STORAGE_FULL)
    # One line, no traceback: a restart would otherwise fill the log. The driver's own words
    # only (its details, which may quote values, are already gone: proms.db).
    cause = getattr(error, "orig", None) or error
    first_line = (str(cause).strip().splitlines() or [""])[0][:200]
    current_app.logger.warning(
        "database %s (%s): %s",
        "storage full" if status == STORAGE_FULL else "unavailable",
        type(cause).__name__,
        first_line,
    )
    response = respond(status, MESSAGES[status])
    if status == UNAVAILABLE:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(sa_exc.DBAPIError, handle_database_error)
    app.register_error_handler(sa_exc.TimeoutError, handle_database_error)
