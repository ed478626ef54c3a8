"""Shared fixtures: an app on SQLite (default) or PostgreSQL, a client, factories, logins.

`pytest` runs on a throwaway SQLite file. `pytest --database=postgresql` runs on the database in
PROMS_TEST_POSTGRES_URL, inside a schema of its own that is dropped at the end, so two runs never
see each other's rows. Tables are created once per run and emptied after every test.

Only fixtures and hooks live here; what they are built from, and what tests import (`World`,
`login`, `add_patient`, ...), is in tests/helpers.py. Under CI an undocumented skip fails the
run (tests/skips.py).
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import sqlalchemy as sa
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from proms import create_app
from proms.admin.services import bundled_protocol, create_clinic, install_protocol
from proms.auth.models import Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.db import Base, db, sqlite_begin
from tests.compiled import SharedStatements, TemplateBytecode, share_url_builders
from tests.helpers import (
    PASSWORD,
    TRANSLATIONS,
    IsolatedClient,
    ScratchDatabases,
    World,
    add_patient,
    app_config,
    dispose_emptying_engines,
    empty_tables,
    in_ci,
    login,
)
from tests.skips import enforce_under_ci
from tests.wheel import Installed, install_wheel


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Run the suite on SQLite (default) or on PROMS_TEST_POSTGRES_URL.",
    )
    parser.addoption(
        "--database-dependent-only",
        action="store_true",
        help=(
            "Deselect the tests that do not depend on --database: those that use no fixture "
            "built on `database_kind` (database_url, make_app, app, world, ...) run the same on "
            "either database. make test's PostgreSQL pass uses it; the SQLite pass runs all."
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis draws new examples on every run. CI must not pass or fail by luck, so there
    # each property test gets the same examples every time (derandomize); on a laptop they stay
    # random, and an example that fails is kept in .hypothesis/ and replayed until fixed.
    hypothesis.settings.register_profile("ci", derandomize=True, database=None)
    if in_ci():
        hypothesis.settings.load_profile("ci")
    enforce_under_ci(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --database-dependent-only, keep only the tests whose fixtures reach `database_kind`.

    Every fixture that reads --database is built on `database_kind` (the database URL, the
    scratch databases, and from them every app, client and world), and no test reads the option
    otherwise. A test that uses none of them does exactly the same on SQLite and on PostgreSQL,
    so a second pass on PostgreSQL would only repeat it (CONTRIBUTING.md, "Tests").
    """
    if not config.getoption("--database-dependent-only"):
        return
    kept: list[pytest.Item] = []
    independent: list[pytest.Item] = []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        (kept if "database_kind" in fixtures else independent).append(item)
    if independent:
        config.hook.pytest_deselected(items=independent)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    return f"proms database: {config.getoption('--database')}"


@pytest.fixture(scope="session")
def database_kind(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--database"))


@pytest.fixture(scope="session")
def scratch_databases(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScratchDatabases]:
    scratch = ScratchDatabases(database_kind, tmp_path_factory.mktemp("scratch"), [])
    yield scratch
    dispose_emptying_engines()
    scratch.drop_all()


@pytest.fixture(scope="session")
def database_url(scratch_databases: ScratchDatabases) -> Iterator[str]:
    """One database for the run, with every table created from the models."""
    url = scratch_databases.new_url()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    import proms.models  # noqa: F401

    Base.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session", autouse=True)
def _shared_url_builders() -> Iterator[None]:
    """Every app of the run reuses werkzeug's URL builders for equal rules (tests/compiled.py)."""
    with share_url_builders():
        yield


@pytest.fixture(scope="session")
def template_bytecode() -> TemplateBytecode:
    """Templates compiled once per run, for every app `make_app` builds (tests/compiled.py)."""
    return TemplateBytecode()


@pytest.fixture(scope="session")
def shared_statements() -> SharedStatements:
    """SQL statements compiled once per run, for every app `make_app` builds (tests/compiled.py)."""
    return SharedStatements()


@pytest.fixture
def make_app(
    database_url: str,
    tmp_path: Path,
    template_bytecode: TemplateBytecode,
    shared_statements: SharedStatements,
) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database; every table is emptied after the test."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(app_config(database_url, **overrides))
        app.jinja_env.bytecode_cache = template_bytecode
        with app.app_context():
            for engine in db.engines.values():
                engine._compiled_cache = shared_statements
        app.instance_path = str(tmp_path / "instance")
        app.test_client_class = IsolatedClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    empty_tables(database_url)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture(scope="session", autouse=True)
def _compiled_catalogs() -> None:
    """Compile a missing or stale .mo before the first test (`make install` does this too).

    Any test that renders a Spanish page needs it, not only tests/test_i18n.py: were it compiled
    there alone, those tests would pass or fail depending on which file happened to run first.
    """
    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=po_path.parent.parent.name)
        partial = mo_path.with_name(f"{mo_path.name}.{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        partial.replace(mo_path)  # atomic: a parallel run never reads half a file


@pytest.fixture(autouse=True)
def _test_code_reads_without_the_write_lock() -> Iterator[None]:
    """The test's own SQLite transactions begin DEFERRED; the app's begin IMMEDIATE.

    A test reads what a request stored, often on a connection of its own; with BEGIN IMMEDIATE
    that read would queue behind (or hold up) the server it is checking. Requests never run in
    this context: the test client runs each in a fresh one, and servers in their own threads.
    """
    token = sqlite_begin.set("DEFERRED")
    yield
    sqlite_begin.reset(token)


@pytest.fixture(autouse=True)
def _no_real_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would open an SMTP connection anywhere but loopback."""
    original = smtplib.SMTP.connect

    def guarded(self: smtplib.SMTP, host: str = "localhost", port: int = 0, *args: Any) -> Any:
        if host not in ("localhost", "127.0.0.1", "::1"):
            pytest.fail(f"a test tried to send real mail through {host}")
        return original(self, host, port, *args)

    monkeypatch.setattr(smtplib.SMTP, "connect", guarded)


@pytest.fixture(autouse=True)
def _no_real_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would make an HTTP request (Twilio's API) anywhere but loopback."""
    original = httpx.HTTPTransport.handle_request

    def guarded(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("localhost", "127.0.0.1", "::1"):
            pytest.fail(f"a test tried to reach {request.url.host} (a real SMS provider?)")
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", guarded)


# Factories -------------------------------------------------------------------------------------


@pytest.fixture
def world(app: Flask) -> World:
    hasher = hasher_from_config(app.config)
    clinic_a = create_clinic(
        db.session,
        slug="a",
        name="Clinic A",
        time_zone="America/New_York",
        contact_phone="+12165550100",
    )
    clinic_b = create_clinic(db.session, slug="b", name="Clinic B", time_zone="America/Chicago")
    spec = bundled_protocol("ketamine-infusion-course")
    staff = {}
    for key, clinic in (("a", clinic_a), ("b", clinic_b)):
        for role in Role:
            staff[(key, role)] = create_staff(
                db.session,
                hasher,
                email=f"{role.value}@{key}.example.org",
                full_name=f"{role.value} {key}",
                password=PASSWORD,
                clinic=clinic,
                role=role,
            )
    world = World(
        clinic_a=clinic_a,
        clinic_b=clinic_b,
        protocol_a=install_protocol(db.session, clinic_a, spec),
        protocol_b=install_protocol(db.session, clinic_b, spec),
        staff=staff,
        patients_a=[add_patient(clinic_a, f"A{n}") for n in range(3)],
        patients_b=[add_patient(clinic_b, f"B{n}") for n in range(3)],
    )
    db.session.commit()
    return world


@pytest.fixture
def staff_client(app: Flask, world: World) -> Callable[[StaffUser], FlaskClient]:
    """A test client logged in as the given staff member."""

    def factory(user: StaffUser) -> FlaskClient:
        client = app.test_client()
        response = login(client, user.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return factory


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """proms installed from its wheel outside the checkout, once per run (tests/wheel.py)."""
    return install_wheel(tmp_path_factory)
