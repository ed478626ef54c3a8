"""/healthz is liveness (no database), /readyz is readiness (database reachable, schema at head).

Readiness runs against a database migrated by this checkout's migrations (a SQLite file, or a
PostgreSQL schema with --database=postgresql), then one migration down, then not there at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from flask import Flask

from proms import schema
from proms.health import migrations
from tests.helpers import ScratchDatabases

REFUSING_PORT = "postgresql+psycopg://proms:secret-pw@127.0.0.1:1/proms"  # refused at once


@pytest.fixture
def migrated_url(scratch_databases: ScratchDatabases) -> str:
    url = scratch_databases.new_url()
    schema.upgrade(url)
    return url


def assert_short_and_plain(body: bytes) -> None:
    """No traceback, no URL, no password, no exception text: just the reason."""
    text = body.decode()
    assert len(text) < 120, text
    for leak in ("Traceback", "Error", "secret-pw", "127.0.0.1", "sqlite", "postgresql"):
        assert leak not in text, text


def test_healthz_is_liveness_without_the_database(make_app: Callable[..., Flask]) -> None:
    """Alive while the database is down: restarting the app would not bring it back."""
    app = make_app(DATABASE_URL=REFUSING_PORT)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_ready_at_head(make_app: Callable[..., Flask], migrated_url: str) -> None:
    response = make_app(DATABASE_URL=migrated_url).test_client().get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "ok", "database": "ok", "migrations": "at head"}
    assert response.headers["Cache-Control"] == "no-store"


def test_not_ready_one_migration_behind(make_app: Callable[..., Flask], migrated_url: str) -> None:
    command.downgrade(schema.alembic_config(migrated_url), "-1")
    assert not schema.schema_state(migrated_url).at_head
    client = make_app(DATABASE_URL=migrated_url).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "migrations behind"}
    assert_short_and_plain(response.data)
    # `proms db upgrade` brings it back without a restart: the head is cached, not the state.
    schema.upgrade(migrated_url)
    assert client.get("/readyz").status_code == 200


def test_a_newer_schema_is_ready(make_app: Callable[..., Flask], migrated_url: str) -> None:
    """During a rolling deploy the old hosts serve a database the new release migrated."""
    import sqlalchemy as sa

    engine = sa.create_engine(migrated_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfacef00d'"))
    engine.dispose()
    response = make_app(DATABASE_URL=migrated_url).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["migrations"] == "newer"


def test_not_ready_before_any_migration(
    make_app: Callable[..., Flask], scratch_databases: ScratchDatabases
) -> None:
    response = make_app(DATABASE_URL=scratch_databases.new_url()).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "database not migrated"}


def test_the_test_schema_without_migrations_is_not_ready(client) -> None:  # type: ignore[no-untyped-def]
    """The suite's database is built by create_all: no Alembic revision, so not ready."""
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "database not migrated"


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_not_ready_when_the_database_is_unreachable(
    make_app: Callable[..., Flask], tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A closed port, a SQLite file in a folder that does not exist: 503, and no details."""
    url = REFUSING_PORT if kind == "postgresql" else f"sqlite:///{tmp_path}/no/such/dir/x.sqlite3"
    app = make_app(DATABASE_URL=url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "database unreachable"}
    assert_short_and_plain(response.data)
    assert "readiness: database unreachable (OperationalError)" in caplog.text
    assert "secret-pw" not in caplog.text


def test_the_head_is_read_once() -> None:
    migrations.cache_clear()
    heads, known = migrations()
    assert heads <= known
    assert len(heads) == 1  # tests/test_migrations.py: one head
    migrations()
    assert migrations.cache_info().hits == 1
