"""Friendly error pages: a clear message and the right status, never a stack trace."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in to continue.",
    403: "You do not have access to this page.",
    404: "There is nothing here. Check the address, or go back to the start page.",
    405: "This page cannot be used that way.",
    413: "What you sent is too large. Shorten it and try again.",
    429: "Too many requests. Wait a minute and try again.",
    500: "Something went wrong on our side. Nothing you entered was lost; try again shortly.",
}


def _render(status: int, message: str) -> ResponseReturnValue:
    if request.accept_mimetypes.best == "application/json":
        return {"error": message}, status
    return render_template("errors/error.html", status=status, message=message), status


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    # Our own abort(400, description=...) messages are written for people; Werkzeug's are not.
    default = type(error).description
    message = error.description if error.description != default else MESSAGES.get(status, "")
    response = _render(status, message or MESSAGES.get(status, ""))
    return response


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    return _render(
        400,
        "This form has expired or was not sent from this site. "
        "Go back, reload the page and try again.",
    )


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    # Flask has already logged the exception with its traceback; the person gets a plain page.
    return _render(500, MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
