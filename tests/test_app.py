"""App factory, configuration, health, security headers, error pages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from proms import ConfigurationError, create_app
from proms.db import db
from tests.helpers import CSRF_RE


def test_production_refuses_the_default_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="default or short SECRET_KEY"):
        create_app({"ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})


@pytest.mark.parametrize("key", ["", None, "short-key", 12345678901234567890123456789012345])
def test_production_refuses_a_missing_or_weak_secret_key(tmp_path: Path, key: object) -> None:
    with pytest.raises(ConfigurationError, match="PROMS_SECRET_KEY"):
        create_app(
            {
                "ENV": "production",
                "SECRET_KEY": key,
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
            }
        )


def test_production_starts_with_a_real_secret_key_and_an_https_address(tmp_path: Path) -> None:
    app = create_app(
        {
            "ENV": "production",
            "SECRET_KEY": "x" * 64,
            "AUDIT_CHAIN_KEY": "a" * 64,
            "PUBLIC_BASE_URL": "https://proms.example.org",
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_behind_a_proxy_the_forwarded_scheme_and_host_count(make_app) -> None:
    app = make_app(PROXY_FIX_HOPS=1)
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proms.example.org"}
    page = client.get("/login", headers=forwarded)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    form = {"email": "nobody@example.org", "password": "not the password", "csrf_token": token}

    # The Origin check compares with the host the browser used, as the proxy forwards it.
    same_site = client.post(
        "/login", data=form, headers={**forwarded, "Origin": "https://proms.example.org"}
    )
    assert same_site.status_code == 401
    cross_site = client.post(
        "/login", data=form, headers={**forwarded, "Origin": "https://evil.example.com"}
    )
    assert cross_site.status_code == 400
    assert "sent from another site" in cross_site.get_data(as_text=True)


def test_without_proxy_fix_forwarded_headers_are_ignored(client) -> None:
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers


def test_unknown_env_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="PROMS_ENV"):
        create_app({"ENV": "staging", "SECRET_KEY": "x" * 64})


def test_environment_variables_override_defaults(monkeypatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/env.sqlite3"
    monkeypatch.setenv("PROMS_ENV", "development")
    monkeypatch.setenv("PROMS_DATABASE_URL", url)
    monkeypatch.setenv("PROMS_IDLE_TIMEOUT_MINUTES", "30")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    assert app.config["IDLE_TIMEOUT_MINUTES"] == 30


def test_default_database_is_sqlite_in_the_instance_folder_with_wal_and_foreign_keys(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMS_DATABASE_URL", raising=False)
    app = create_app({"ENV": "test", "SECRET_KEY": "k", "DATABASE_URL": ""})
    app.instance_path = str(tmp_path)
    expected = Path(app.instance_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("proms.sqlite3")
    # The pragmas are set on every new connection of any SQLite engine.
    engine = sa.create_engine(f"sqlite:///{expected / 'pragma.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    raw = sqlite3.connect(expected / "pragma.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persisted in the file
    raw.close()


@pytest.mark.parametrize("path", ["/login", "/healthz", "/no-such-page"])
def test_security_headers_on_every_response(client, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_redirect_carries_the_headers_that_act_on_it(client) -> None:
    """A redirect renders nothing: its referrer policy and no-store, not the document headers."""
    response = client.get("/patients")  # signed out: to the sign-in page
    assert response.status_code == 302
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response.headers
    assert response.get_data() == b""


def test_pages_have_no_inline_script_or_style(client) -> None:
    body = client.get("/login").get_data(as_text=True)
    assert "<script" not in body
    assert "style=" not in body
    assert "<style" not in body


def test_not_found_is_a_friendly_page(client) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "There is nothing here" in response.get_data(as_text=True)


def test_method_not_allowed_is_a_friendly_page(client) -> None:
    response = client.delete("/login")
    assert response.status_code == 405
    assert "cannot be used that way" in response.get_data(as_text=True)


def test_unexpected_errors_are_500_without_a_traceback(make_app) -> None:
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False)

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side" in body
    assert "secret internals" not in body
    assert "Traceback" not in body


def test_json_clients_get_json_errors(client) -> None:
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_static_stylesheet_is_served(client) -> None:
    response = client.get("/static/proms.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    response.close()


def test_database_is_bound(app) -> None:
    assert db.session.execute(sa.text("SELECT 1")).scalar() == 1


def test_form_fields_carry_no_empty_aria_attributes(client) -> None:
    body = client.get("/login").get_data(as_text=True)
    assert '="None"' not in body
    assert "aria-describedby" not in body  # no hint, no error: nothing to describe


def test_field_errors_are_tied_to_their_controls(client) -> None:
    from tests.helpers import csrf_token

    body = client.post(
        "/login", data={"email": "", "password": "", "csrf_token": csrf_token(client)}
    ).get_data(as_text=True)
    assert 'id="email-error"' in body
    assert 'aria-describedby="email-error"' in body
    assert 'aria-invalid="true"' in body


def test_a_broken_instrument_file_stops_the_start_naming_file_and_field(
    monkeypatch, tmp_path: Path
) -> None:
    import json
    import shutil

    from proms.instruments import loader, registry
    from proms.instruments.errors import DefinitionError

    broken = tmp_path / "definitions"
    shutil.copytree(loader.DEFINITIONS_DIR, broken)
    path = broken / "promis-pi-4a.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["items"][2]["options"][1]["value"] = 1  # a duplicate answer value
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(registry, "DEFINITIONS_DIR", broken)
    registry.bundled_registry.cache_clear()
    try:
        with pytest.raises(DefinitionError, match=r"promis-pi-4a\.json: items\[2\]\.options"):
            create_app(
                {
                    "ENV": "test",
                    "SECRET_KEY": "k",
                    "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                }
            )
    finally:
        registry.bundled_registry.cache_clear()
