"""What production needs before proms uses a secret or a public address.

Serving pages signs cookies with SECRET_KEY and shows links under PUBLIC_BASE_URL, so
`create_app()` refuses to serve without both, or in debug mode (`refuse_to_serve`); gunicorn's
master also refuses in-memory rate limits for more than one worker (`rate_limit_storage_problem`,
called from proms.gunicorn_conf). docs/security.md lists the refusals. A command that makes a link
refuses without the address (`public_base_url`). Everything else, such as scoring a CSV, listing
instruments or migrating the database, needs neither and works with no configuration at all.

`import proms` loads this module: it imports no web library (Flask only inside a function).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - the value refused in production


class ConfigurationError(RuntimeError):
    """The app cannot start with this configuration; the message says why in one line."""


# Links made outside a request in development, when PUBLIC_BASE_URL is not set: `flask run`'s
# default address. `make run` sets PROMS_PUBLIC_BASE_URL from its HOST and PORT instead.
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"

SET_ADDRESS = (
    "set PROMS_PUBLIC_BASE_URL (or PUBLIC_BASE_URL in instance/config.py) to the https address "
    "patients open, e.g. https://proms.example.org"
)


def secret_key_problem(config: Mapping[str, Any]) -> str | None:
    """Why production must not sign with this SECRET_KEY; None when it may (or not production)."""
    secret = config.get("SECRET_KEY")
    if config["ENV"] != "production" or (
        isinstance(secret, str) and secret != DEFAULT_SECRET_KEY and len(secret) >= 32
    ):
        return None
    return (
        "in production with a missing, default or short SECRET_KEY: set PROMS_SECRET_KEY (or "
        "SECRET_KEY in instance/config.py) to at least 32 random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_hex(32))'"
    )


def public_base_url_problem(config: Mapping[str, Any]) -> str | None:
    """Why links must not be made under this PUBLIC_BASE_URL; None when they may."""
    base = str(config.get("PUBLIC_BASE_URL") or "")
    production = config["ENV"] == "production"
    if not base:
        return f"in production without PUBLIC_BASE_URL: {SET_ADDRESS}" if production else None
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return f"with PUBLIC_BASE_URL {base!r}, which is not a web address: {SET_ADDRESS}"
    if production and parts.scheme != "https":
        return (
            f"in production with PUBLIC_BASE_URL {base!r}, which is not https (a patient link "
            f"opens the patient's questionnaire, so it must not travel in clear): {SET_ADDRESS}"
        )
    return None


def debug_problem(config: Mapping[str, Any]) -> str | None:
    """Why production must not serve in debug mode; None when it may.

    Flask's debug mode (FLASK_DEBUG, `flask run --debug`, PROMS_DEBUG) shows tracebacks with the
    code and local variables (a patient's answers) to whoever causes an error, and with the
    Werkzeug debugger lets them run code.
    """
    if config["ENV"] != "production" or not config.get("DEBUG"):
        return None
    return (
        "in production in debug mode (FLASK_DEBUG or DEBUG is on): unset FLASK_DEBUG and "
        "PROMS_DEBUG, and do not use `flask run --debug` to serve patients"
    )


def audit_chain_key_problem(config: Mapping[str, Any]) -> str | None:
    """Why production must not key the audit chain with this AUDIT_CHAIN_KEY (docs/audit.md)."""
    if config["ENV"] != "production":
        return None
    # Imported here: proms.audit_chain loads the models, and `import proms` loads this module.
    from proms.audit_chain import key_problem

    return key_problem(config)


def refuse_to_serve(config: Mapping[str, Any]) -> None:
    """ConfigurationError, saying every reason in one line, if this config must not serve."""
    problems = [
        problem
        for problem in (
            secret_key_problem(config),
            debug_problem(config),
            public_base_url_problem(config),
            audit_chain_key_problem(config),
        )
        if problem
    ]
    if problems:
        raise ConfigurationError("Refusing to start " + "; and ".join(problems) + ".")


def rate_limit_storage_problem(config: Mapping[str, Any], workers: int) -> str | None:
    """Why production must not serve with these rate limits and this many worker processes.

    Counters in memory:// belong to one process: with 4 workers a client gets 4 times every
    limit (sign-in attempts, identity checks), and which worker answers is luck. Only gunicorn's
    master knows how many workers it starts, so it asks (proms.gunicorn_conf). Several hosts
    with one worker each cannot be seen from here: docs/security.md says to share a store.
    """
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "memory://")
    if config["ENV"] != "production" or workers <= 1 or not storage.startswith("memory://"):
        return None
    return (
        f"in production with {workers} workers and in-memory rate limits "
        f"(RATELIMIT_STORAGE_URI {storage!r}), which each worker would count on its own: set "
        "PROMS_RATELIMIT_STORAGE_URI to a store they share, e.g. redis://127.0.0.1:6379"
    )


def public_base_url(config: Mapping[str, Any]) -> str:
    """The address patients reach proms at, without a trailing slash.

    PUBLIC_BASE_URL when set (production refuses to go on without an https one). Unset in
    development and tests: the address of the request being served, so a server on another
    port makes links to itself; outside a request, DEVELOPMENT_BASE_URL.
    """
    problem = public_base_url_problem(config)
    if problem:
        raise ConfigurationError(f"Refusing to make a patient link {problem}.")
    base = str(config.get("PUBLIC_BASE_URL") or "")
    if base:
        return base.rstrip("/")
    from flask import has_request_context, request

    if has_request_context():
        return request.host_url.rstrip("/")
    return DEVELOPMENT_BASE_URL


DATABASE_EXAMPLES = (
    "e.g. postgresql+psycopg://proms:password@db.example.org/proms or "
    "sqlite:////var/lib/proms/proms.sqlite3"
)


def check_database_url(url: str) -> None:
    """ConfigurationError, in one line and without the password, if proms cannot use this URL.

    Parsing and loading the dialect and its driver here turns a typo (`postgres://`, a missing
    driver) into one line at start-up instead of a traceback on every command.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            "PROMS_DATABASE_URL (DATABASE_URL) is not a database URL (a password with @, : or / "
            f"must be percent-encoded): {DATABASE_EXAMPLES}"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except ArgumentError:
        reason = f"SQLAlchemy knows no database {parsed.drivername!r}"
    except ImportError as exc:
        reason = f"its driver is not installed ({exc.name or exc})"
    else:
        return
    raise ConfigurationError(f"cannot use the database at {shown}: {reason}; {DATABASE_EXAMPLES}")
