"""Security that every response and form gets: headers, CSRF, a same-origin check."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from flask import Flask, Response, abort, current_app, request
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
# Limits are set per route (patient links, identity checks); the store comes from
# RATELIMIT_STORAGE_URI. Behind a proxy, PROXY_FIX_HOPS makes the remote address the client's.
limiter = Limiter(get_remote_address)
compress = Compress()

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
URLENCODED = "application/x-www-form-urlencoded"

# Control characters other than tab, line feed and carriage return: never part of real input,
# and PostgreSQL refuses NUL in text outright.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
UNREADABLE = (
    "Some of what you sent could not be read: it contains characters that cannot be used. "
    "Check it and try again."
)


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Pages hold health information: no browser or proxy keeps a copy.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def check_origin() -> None:
    """Refuse a cross-site form post whose browser says where it came from.

    With Referrer-Policy: no-referrer, Flask-WTF's HTTPS Referer check cannot work, so the
    Origin header (sent by every current browser on a POST) takes its place beside the token.
    """
    if request.method not in UNSAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return
    if urlsplit(origin).netloc != request.host:
        abort(400, description="This form was sent from another site and was refused.")


def check_form_size() -> None:
    """Refuse an oversized or many-field plain form before anything reads or parses it.

    Sizes come from the Content-Length header (or, for a chunked body, from reading at most the
    limit): a 3 MB field or 380,000 empty fields cost an anonymous sender nothing but a 413.
    """
    if request.method not in UNSAFE_METHODS or request.mimetype != URLENCODED:
        return
    config = current_app.config
    public = request.blueprint == "surveys" or request.endpoint in config["PUBLIC_FORM_ENDPOINTS"]
    max_bytes = config["PUBLIC_FORM_MAX_BYTES" if public else "FORM_MAX_BYTES"]
    max_fields = config["PUBLIC_FORM_MAX_FIELDS" if public else "FORM_MAX_FIELDS"]
    if request.content_length is not None and request.content_length > max_bytes:
        abort(413)
    # A chunked body has no length to check: read one byte past the limit at most, and refuse
    # the body when that byte arrives.
    request.max_content_length = max_bytes + 1
    body = request.get_data(cache=True)  # cached: the form is parsed from it later
    if len(body) > max_bytes or body.count(b"&") + 1 > max_fields:
        abort(413)


def check_text() -> None:
    """Refuse a query string or form that is not UTF-8 text, before anything reads it.

    Werkzeug would quietly replace undecodable bytes (or drop the whole form), so a mistyped or
    hostile value would reach validation as something else; a 400 that says so is clearer.
    """
    sources = [request.query_string]
    if request.method in UNSAFE_METHODS and request.mimetype == URLENCODED:
        sources.append(request.get_data(cache=True))  # cached: the form is parsed from it later
    for raw in sources:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            abort(400, description=UNREADABLE)
        if any(CONTROL_CHARACTERS.search(key + value) for key, value in pairs):
            abort(400, description=UNREADABLE)


def init_app(app: Flask) -> None:
    app.before_request(check_form_size)  # first: nothing may parse a form before its size is known
    app.before_request(check_text)  # before CSRFProtect, which parses the form
    csrf.init_app(app)
    limiter.init_app(app)
    compress.init_app(app)
    app.before_request(check_origin)
    app.after_request(add_security_headers)
