"""proms: patient-reported outcomes for pain medicine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Defined beside the checks that raise it; `from proms import ConfigurationError` still works.
from proms.checks import ConfigurationError

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None, *, serving: bool = True) -> Flask:
    """Build the web application (also used by the CLI, the scheduler and migrations).

    In production an app that serves pages (gunicorn's `proms:create_app()`, `flask run`) needs
    a real secret key and an https PUBLIC_BASE_URL, or this refuses (ConfigurationError, one
    line). `serving=False` builds the app for commands, which may need neither: the address is
    checked when a link is made (proms.checks), and a weak key is removed so nothing signs with it.
    """
    app = _configured_app(test_config, serving=serving)
    from proms import logs

    logs.install(app)  # also the request ids and, by LOG_FORMAT, JSON logs

    from proms import (
        admin,
        auth,
        care,
        catalog,
        db,
        demo,
        errors,
        health,
        i18n,
        outcomes,
        scheduling,
        security,
        surveys,
        templating,
        webhooks,
    )

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    i18n.init_app(app)
    for feature in (
        catalog,
        outcomes,
        scheduling,
        auth,
        surveys,
        webhooks,
        care,
        admin,
        health,
        demo,
    ):
        feature.init_app(app)
    return app


def check_serving_config() -> Mapping[str, Any]:
    """Refuse what `create_app()` would refuse, without building the app (gunicorn's master).

    Returns the checked configuration, for the checks only the master can make (its workers).
    """
    return _configured_app(None, serving=True).config


def _configured_app(test_config: Mapping[str, Any] | None, *, serving: bool) -> Flask:
    """A Flask app with proms' configuration loaded and checked, and no extensions yet."""
    # Imported here so that `import proms.scoring` (the pure core) does not load Flask.
    from flask import Flask

    from proms.resources import resource_dir

    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.from_object("proms.config")
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("PROMS")
    else:
        app.config.update(test_config)
    _finish_config(app, serving=serving)
    return app


def _finish_config(app: Flask, *, serving: bool) -> None:
    from proms import checks

    env = app.config["ENV"]
    if env not in ("production", "development", "test"):
        raise ConfigurationError(f"PROMS_ENV must be production, development or test, not {env!r}")
    if serving:
        checks.refuse_to_serve(app.config)
    elif checks.secret_key_problem(app.config):
        # A command has no use for the key; without it nothing here can sign with a known one.
        app.config["SECRET_KEY"] = None
    if app.config["PROXY_FIX_HOPS"]:
        # Behind a TLS-terminating proxy: trust its X-Forwarded-* headers, so the scheme (HSTS,
        # secure cookies), host (the Origin check) and client address (audit log) are right.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'proms.sqlite3'}"
    checks.check_database_url(url)
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = env != "development"
    if app.config["SESSION_COOKIE_NAME"] == "session":  # Flask's default: name it ours
        # __Host- makes the browser insist on Secure, Path=/ and no Domain.
        secure = app.config["SESSION_COOKIE_SECURE"]
        app.config["SESSION_COOKIE_NAME"] = "__Host-proms" if secure else "proms"
