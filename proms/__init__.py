"""proms: patient-reported outcomes for pain medicine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - the value refused in production


class ConfigurationError(RuntimeError):
    """The app cannot start with this configuration; the message says why in one line."""


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web application (also used by the CLI, the scheduler and migrations)."""
    # Imported here so that `import proms.scoring` (the pure core) does not load Flask.
    from flask import Flask

    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_object("proms.config")
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("PROMS")
    else:
        app.config.update(test_config)
    _finish_config(app)
    from proms import logs

    logs.install()

    from proms import (
        admin,
        auth,
        care,
        db,
        demo,
        errors,
        health,
        i18n,
        security,
        surveys,
        templating,
    )

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    i18n.init_app(app)
    for feature in (auth, surveys, care, admin, health, demo):
        feature.init_app(app)
    return app


def _finish_config(app: Flask) -> None:
    env = app.config["ENV"]
    if env not in ("production", "development", "test"):
        raise ConfigurationError(f"PROMS_ENV must be production, development or test, not {env!r}")
    secret = app.config.get("SECRET_KEY")
    if env == "production" and (
        not isinstance(secret, str) or secret == DEFAULT_SECRET_KEY or len(secret) < 32
    ):
        raise ConfigurationError(
            "Refusing to start in production with a missing, default or short SECRET_KEY: set "
            "PROMS_SECRET_KEY (or SECRET_KEY in instance/config.py) to at least 32 random "
            "characters, e.g. python -c 'import secrets; print(secrets.token_hex(32))'."
        )
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
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = env != "development"
    if app.config["SESSION_COOKIE_NAME"] == "session":  # Flask's default: name it ours
        # __Host- makes the browser insist on Secure, Path=/ and no Domain.
        secure = app.config["SESSION_COOKIE_SECURE"]
        app.config["SESSION_COOKIE_NAME"] = "__Host-proms" if secure else "proms"
