"""Shared fixtures: an app on SQLite (default) or PostgreSQL, a client, factories, logins.

`pytest` runs on a throwaway SQLite file. `pytest --database=postgresql` runs on the database in
PROMS_TEST_POSTGRES_URL, inside a schema of its own that is dropped at the end, so two runs never
see each other's rows. Tables are created once per run and emptied after every test.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import re
import secrets
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hypothesis
import pytest
import sqlalchemy as sa
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, has_app_context
from flask.testing import FlaskClient

from proms import create_app
from proms.admin.models import Clinic, Patient, Protocol
from proms.admin.services import bundled_protocol, create_clinic, install_protocol
from proms.auth.models import Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.db import Base, db, sqlite_begin

PASSWORD = "correct horse battery"

# argon2id at a test cost: the real cost is exercised by tests/auth/test_passwords.py.
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Run the suite on SQLite (default) or on PROMS_TEST_POSTGRES_URL.",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis draws new examples on every run. CI must not pass or fail by luck, so there
    # each property test gets the same examples every time (derandomize); on a laptop they stay
    # random, and an example that fails is kept in .hypothesis/ and replayed until fixed.
    hypothesis.settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        hypothesis.settings.load_profile("ci")


def pytest_report_header(config: pytest.Config) -> str:
    return f"proms database: {config.getoption('--database')}"


@pytest.fixture(scope="session")
def database_kind(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--database"))


def postgres_base_url() -> str:
    url = os.environ.get("PROMS_TEST_POSTGRES_URL")
    if not url:
        pytest.exit("--database=postgresql needs PROMS_TEST_POSTGRES_URL", returncode=2)
    return url


def with_search_path(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use one schema."""
    parsed = sa.make_url(url)
    return parsed.set(
        query={**parsed.query, "options": f"-csearch_path={schema}"}
    ).render_as_string(hide_password=False)


@dataclass
class ScratchDatabases:
    """Makes empty databases for migration tests: SQLite files, or PostgreSQL schemas."""

    kind: str
    tmp: Path
    created: list[str]

    def new_url(self) -> str:
        name = f"scratch_{secrets.token_hex(4)}"
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.sqlite3')}"
        base = postgres_base_url()
        engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        engine.dispose()
        self.created.append(name)
        return with_search_path(base, name)

    def drop_all(self) -> None:
        if not self.created:
            return
        engine = sa.create_engine(postgres_base_url(), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            for name in self.created:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def scratch_databases(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScratchDatabases]:
    scratch = ScratchDatabases(database_kind, tmp_path_factory.mktemp("scratch"), [])
    yield scratch
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


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ENV": "test",
        "TESTING": True,
        "SECRET_KEY": "test-" + secrets.token_hex(8),
        "DATABASE_URL": database_url,
        **CHEAP_ARGON2,
    }
    config.update(overrides)
    return config


class IsolatedClient(FlaskClient):
    """A test client whose requests never share the test's app context.

    Flask reuses an app context that is already pushed for the same app, so without this every
    request in a test would share `g` (Flask-Login's cached user) and the test's database
    session with each other: two browsers would see one login. Each request runs in an empty
    contextvars context instead, exactly as it would in a server. The test's own session is
    committed before (the request sees what the test set up) and expired after (the test then
    reads what the request stored, not its cached objects).
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            db.session.commit()
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context():
            db.session.expire_all()
        return response


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database; every table is emptied after the test."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(app_config(database_url, **overrides))
        app.instance_path = str(tmp_path / "instance")
        app.test_client_class = IsolatedClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    _empty_tables(database_url)


def _empty_tables(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        tables = Base.metadata.sorted_tables
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())
    engine.dispose()


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


TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"


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


# Factories -------------------------------------------------------------------------------------


@dataclass
class World:
    """Two clinics, each with a protocol, one staff member per role and a few patients."""

    clinic_a: Clinic
    clinic_b: Clinic
    protocol_a: Protocol
    protocol_b: Protocol
    staff: dict[tuple[str, Role], StaffUser]
    patients_a: list[Patient]
    patients_b: list[Patient]

    def user(self, clinic: str, role: Role) -> StaffUser:
        return self.staff[(clinic, role)]


def add_patient(clinic: Clinic, mrn: str, **fields: Any) -> Patient:
    values: dict[str, Any] = {
        "given_name": "Pat",
        "family_name": f"Test{mrn}",
        "birth_on": dt.date(1960, 5, 17),
        "email": f"{mrn.lower()}@example.org",
        "time_zone": "America/New_York",
    }
    values.update(fields)
    patient = Patient(clinic=clinic, mrn=mrn, **values)
    db.session.add(patient)
    db.session.flush()
    return patient


def patient_today(patient: Patient) -> dt.date:
    """Today on the patient's calendar: what "three days from now" counts from (not UTC's date).

    For tests that go through views, which read the real clock. Service tests pass a fixed `now`.
    """
    return dt.datetime.now(ZoneInfo(patient.time_zone)).date()


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


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of a form page, as a browser would read it."""
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )


@pytest.fixture
def staff_client(app: Flask, world: World) -> Callable[[StaffUser], FlaskClient]:
    """A test client logged in as the given staff member."""

    def factory(user: StaffUser) -> FlaskClient:
        client = app.test_client()
        response = login(client, user.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return factory
