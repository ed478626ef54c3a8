"""Security that every response and form gets: headers, CSRF, a same-origin check."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import brotli
import flask_compress
from flask import Flask, Response, abort, current_app, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from proms.templating import static_version

F = TypeVar("F", bound=Callable[..., Any])

csrf = CSRFProtect()
# Limits are set per route (patient links, identity checks); the store comes from
# RATELIMIT_STORAGE_URI. Behind a proxy, PROXY_FIX_HOPS makes the remote address the client's.
limiter = Limiter(get_remote_address)

# Every response carries this, so every byte of it is paid on every page (a patient's phone
# fetches about 40 pages per questionnaire): nothing is allowed unless listed. 'none' as the
# default also covers fonts, connections, frames, objects, media and manifests, none of which
# proms uses.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

# No X-Frame-Options: CSP's frame-ancestors 'none' replaces it in every browser that has CSP
# level 2 (all current ones), and each header is paid for on every page a patient loads.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = frozenset({URLENCODED, MULTIPART, ""})

# Control characters other than tab, line feed and carriage return: never part of real input,
# and PostgreSQL refuses NUL in text outright.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# An address has no line breaks either (a text field drops them; only a textarea's body keeps
# them), and a query value may become a header: sign-in's `next` goes into Location, where
# Werkzeug refuses a line break with a 500.
QUERY_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
UNREADABLE = (
    "Some of what you sent could not be read: it contains characters that cannot be used. "
    "Check it and try again."
)


# A static file whose URL carries its content hash (templating.static_url): the same URL never
# serves other bytes, so browsers keep it a year and never ask again, not even on reload.
VERSIONED_STATIC_CACHE = "public, max-age=31536000, immutable"


# What a redirect needs. It renders nothing (its body is dropped, see Compress), so the headers
# that govern a document (CSP, framing, sniffing, opener, permissions) have nothing to act on,
# while each patient step pays ~350 bytes for them on its 303. Its Referer policy still applies
# to the request it leads to, and no-store keeps it out of caches.
REDIRECT_HEADERS = {"Referrer-Policy": SECURITY_HEADERS["Referrer-Policy"]}


def is_redirect(response: Response) -> bool:
    return 300 <= response.status_code < 400 and "Location" in response.headers


def add_security_headers(response: Response) -> Response:
    headers = REDIRECT_HEADERS if is_redirect(response) else SECURITY_HEADERS
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    if request.endpoint == "static" and response.status_code in (200, 304):
        filename = (request.view_args or {}).get("filename", "")
        # Only when the hash is this file's: during a rolling deploy an old host may be asked
        # for the new version, and must not have its old bytes kept a year under that URL.
        if request.args.get("v") and request.args["v"] == static_version(filename):
            response.headers["Cache-Control"] = VERSIONED_STATIC_CACHE
            response.headers.pop("Expires", None)  # max-age says the same, and wins
        # Otherwise Flask's (SEND_FILE_MAX_AGE_DEFAULT): revalidate, so an edit shows at once.
        response.headers.pop("Content-Disposition", None)  # "inline; filename=...": a no-op
    else:
        # Pages hold health information: no browser or proxy keeps a copy.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, left alone by static files.

    Flask-Login reads the session after every request (its remember-me check), and Flask answers
    any request that read it with `Vary: Cookie`. A browser may then reuse its copy of the
    stylesheet only while the Cookie header stays the same, and the survey cookie changes on
    every page: the stylesheet was downloaded again and again. A static file is the same for
    everyone: its response neither varies by cookie nor refreshes one.
    """

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if request.endpoint == "static":
            return
        super().save_session(app, session, response)
        # The last word on a response (Flask saves the session after every other hook): a
        # no-store response is kept by no cache, so `Vary` (Cookie, Accept-Encoding) tells no
        # one anything, and a phone would download it with every page.
        if "no-store" in response.headers.get("Cache-Control", ""):
            response.headers.pop("Vary", None)


class Compress(flask_compress.Compress):
    """Flask-Compress, also for the responses it leaves as they are, and without dead weight.

    - Static files: Flask serves them as an open file (a streamed response), which
      Flask-Compress compresses only in its streaming mode (COMPRESS_STREAMS), and that leaves
      the file open and offers no gzip. They are read into memory here instead (one small
      stylesheet, kept by browsers for a year) and compressed like pages.
    - Error pages: Flask-Compress compresses 2xx responses only, but a patient's 404 or 410 is a
      page like any other.
    - Redirects: the "Redirecting..." body (about 200 bytes) is never shown by a browser, and a
      patient's phone receives one after every answer: it is dropped.
    """

    def after_request(self, response: Response | None) -> Response:
        if response is None:
            return super().after_request(response)
        compressible = current_app.config["COMPRESS_MIMETYPES"]
        if (
            request.endpoint == "static"
            and response.status_code == 200
            and response.is_streamed
            and response.mimetype in compressible
        ):
            _read_file(response)
        if 300 <= response.status_code < 400 and "Location" in response.headers:
            if not response.is_streamed:
                response.set_data(b"")
                del response.headers["Content-Type"]
            return response
        if response.status_code >= 400:
            return _compress_error_page(response)
        return super().after_request(response)


def _compress_error_page(response: Response) -> Response:
    """Compress an error page as Flask-Compress does a 2xx one, with its settings."""
    response.vary.add("Accept-Encoding")
    config = current_app.config
    if (
        response.is_streamed
        or "Content-Encoding" in response.headers
        or response.mimetype not in config["COMPRESS_MIMETYPES"]
        or (response.content_length or 0) < config["COMPRESS_MIN_SIZE"]
    ):
        return response
    algorithms = config["COMPRESS_ALGORITHM"]
    if isinstance(algorithms, str):
        algorithms = [name.strip() for name in algorithms.split(",")]
    # The server's order breaks ties between encodings the browser likes equally.
    encoding = request.accept_encodings.best_match([a for a in algorithms if a in ("br", "gzip")])
    if encoding == "br":
        body = brotli.compress(response.get_data(), quality=config["COMPRESS_BR_LEVEL"])
    elif encoding == "gzip":
        body = gzip.compress(response.get_data(), compresslevel=config["COMPRESS_LEVEL"])
    else:
        return response
    response.set_data(body)
    response.headers["Content-Encoding"] = encoding
    return response


def _read_file(response: Response) -> None:
    """Replace a send_file body (an open file, read in blocks) with its bytes; close the file."""
    source = response.response
    try:
        body = b"".join(source)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    response.direct_passthrough = False
    response.set_data(body)


compress = Compress()


# Posts that come from another site by design: a mail client's one-click unsubscribe (RFC 8058).
# The token in its URL is what authorises it; the page's own button still checks its CSRF token.
CROSS_SITE_POSTS = frozenset({"surveys.unsubscribe_confirm"})


def check_origin() -> None:
    """Refuse a cross-site form post whose browser says where it came from.

    With Referrer-Policy: no-referrer, Flask-WTF's HTTPS Referer check cannot work, so the
    Origin header (sent by every current browser on a POST) takes its place beside the token.
    """
    if request.method not in UNSAFE_METHODS or request.endpoint in CROSS_SITE_POSTS:
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
    if request.method not in UNSAFE_METHODS or request.mimetype not in (URLENCODED, MULTIPART):
        return
    config = current_app.config
    public = request.blueprint == "surveys" or request.endpoint in config["PUBLIC_FORM_ENDPOINTS"]
    if request.mimetype == MULTIPART:
        # A file upload: staff imports keep MAX_CONTENT_LENGTH; anyone else's multipart post
        # (a mail client's one-click unsubscribe may send one) gets the public allowance, set
        # before check_text parses it.
        if public:
            request.max_content_length = config["PUBLIC_FORM_MAX_BYTES"]
            if (request.content_length or 0) > config["PUBLIC_FORM_MAX_BYTES"]:
                abort(413)
        return
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
    sources = [(request.query_string, QUERY_CONTROL_CHARACTERS)]
    if request.method in UNSAFE_METHODS and request.mimetype == URLENCODED:
        # Cached: the form is parsed from it later.
        sources.append((request.get_data(cache=True), CONTROL_CHARACTERS))
    for raw, refused in sources:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            abort(400, description=UNREADABLE)
        if any(refused.search(key + value) for key, value in pairs):
            abort(400, description=UNREADABLE)
    if request.method in UNSAFE_METHODS and request.mimetype == MULTIPART:
        # A file upload's other fields (the import page): parsed here, as CSRFProtect would.
        fields = request.form.items(multi=True)
        if any(CONTROL_CHARACTERS.search(key + value) for key, value in fields):
            abort(400, description=UNREADABLE)


def check_form_type() -> None:
    """Refuse a POST whose body is not a form (JSON, XML, plain text) with 415.

    Every page posts a form, and so do Twilio's webhooks. Given JSON, Flask-WTF would fill the
    form from it with JSON's own types (a number, a list, an object where a validator expects
    text): a 415 before that is clearer than whatever the validators make of it. A POST with no
    body at all passes, to fail its CSRF check like any other.
    """
    if request.method in UNSAFE_METHODS and request.mimetype not in FORM_TYPES:
        abort(415, description="This address takes a form, and what was sent is not one.")


def init_app(app: Flask) -> None:
    app.before_request(check_form_type)  # a body that is not a form is refused unread
    app.before_request(check_form_size)  # nothing may parse a form before its size is known
    app.before_request(check_text)  # before CSRFProtect, which parses the form
    csrf.init_app(app)
    limiter.init_app(app)
    compress.init_app(app)
    app.before_request(check_origin)
    app.after_request(add_security_headers)
    app.session_interface = SessionInterface()


def public(view: F) -> F:
    """The route's role rule: no sign-in needed (the patient side, sign-in, health checks).

    Staff routes use `proms.auth.roles.requires`; a test reads every route's rule.
    """
    view.allowed_roles = None  # type: ignore[attr-defined]
    return view
