"""proms: patient-reported outcomes for pain medicine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - the value refused in production


class ConfigurationError(RuntimeError):
    """The app cannot start with this configuration; the message says why in one line."""


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web application (also used by the CLI, the scheduler and migrations)."""
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

    from proms import admin, auth, care, db, demo, errors, health, security, templating

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    for feature in (auth, care, admin, health, demo):
        feature.init_app(app)
    return app


def _finish_config(app: Flask) -> None:
    env = app.config["ENV"]
    if env not in ("production", "development", "test"):
        raise ConfigurationError(f"PROMS_ENV must be production, development or test, not {env!r}")
    if env == "production" and app.config.get("SECRET_KEY") in (None, "", DEFAULT_SECRET_KEY):
        raise ConfigurationError(
            "Refusing to start in production with a missing or default SECRET_KEY: "
            "set PROMS_SECRET_KEY or SECRET_KEY in instance/config.py."
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
