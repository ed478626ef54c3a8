"""What the whole suite builds on besides fixtures: databases, app config, a world, logins.

tests/conftest.py turns these into fixtures (`scratch_databases`, `make_app`, `world`, ...);
test modules import the rest from here: the `World` type, `add_patient`, the staff `PASSWORD`,
`login`, the CSRF helpers and `patient_today`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient

from proms.admin.models import Clinic, Patient, Protocol
from proms.auth import mfa
from proms.auth.models import SQLITE_AUDIT_GUARD, Role, StaffUser
from proms.auth.services import find_staff
from proms.db import Base, db, utcnow

PASSWORD = "correct horse battery"

# argon2id at a test cost: the real cost is exercised by tests/auth/test_passwords.py.
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"


def in_ci() -> bool:
    """Whether this run is CI's (.ci/run sets CI=true): "", "0" and "false" mean it is not."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


# Databases -------------------------------------------------------------------------------------


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


_EMPTYING_ENGINES: dict[str, sa.Engine] = {}


def _emptying_engine(url: str) -> sa.Engine:
    """The engine `empty_tables` uses for a database, made once.

    On PostgreSQL it keeps one connection for the run: a new session reads the catalog of every
    table again, a few tens of ms each time. Idle between tests it holds no lock; one cut from
    outside is replaced (pre-ping). On SQLite no connection is kept, as before.
    """
    engine = _EMPTYING_ENGINES.get(url)
    if engine is None:
        if sa.make_url(url).get_backend_name() == "postgresql":
            engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        else:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        _EMPTYING_ENGINES[url] = engine
    return engine


def dispose_emptying_engines() -> None:
    """Close the connections `empty_tables` kept (at the end of the run)."""
    while _EMPTYING_ENGINES:
        _EMPTYING_ENGINES.popitem()[1].dispose()


# Past this many rows in a table, TRUNCATE (a fixed cost) beats DELETE (a cost a row).
_DELETE_AT_MOST = 1000


def _postgresql_emptying() -> str:
    """One round trip that empties every table and restarts the id sequences they own.

    TRUNCATE of every table with RESTART IDENTITY makes new files for each table and index:
    over 100 ms, where deleting a test's few rows takes a few. So that is kept for a test that
    left more than `_DELETE_AT_MOST` rows in a table. Otherwise the rows are deleted, children
    first, and each sequence owned by a column (serial or identity) is set back to its start,
    as RESTART IDENTITY does. The guard refuses to delete audit events (docs/audit.md) and
    TRUNCATE fires no row triggers, so the audit table (which no other table references) is
    truncated, first and only when it has rows.
    """
    tables = Base.metadata.sorted_tables
    audit = Base.metadata.tables["audit_event"]
    # Names from the models, not from input.
    quoted = [f'"{table.name}"' for table in tables]
    many = " OR ".join(f"EXISTS (SELECT FROM {name} OFFSET {_DELETE_AT_MOST})" for name in quoted)
    names = ", ".join(f"'{table.name}'" for table in tables)
    deletes = " ".join(
        f'DELETE FROM "{table.name}";'  # noqa: S608
        for table in reversed(tables)
        if table is not audit
    )
    return f"""DO $$ BEGIN
IF {many} THEN
    TRUNCATE {", ".join(quoted)} RESTART IDENTITY;
    RETURN;
END IF;
IF EXISTS (SELECT FROM "{audit.name}") THEN TRUNCATE "{audit.name}"; END IF;
{deletes}
PERFORM setval(s.seqrelid, s.seqstart, false)
FROM pg_depend AS d JOIN pg_sequence AS s ON s.seqrelid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.deptype IN ('a', 'i')
    AND d.refobjid IN (
        SELECT to_regclass(quote_ident(name))::oid FROM unnest(ARRAY[{names}]) AS name
    );
END $$"""  # noqa: S608


def empty_tables(url: str) -> None:
    """Delete every row of every table (on PostgreSQL, restart the id sequences too)."""
    engine = _emptying_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(_postgresql_emptying())
            return
        # The guard refuses to delete audit events (docs/audit.md): lifted while emptying, in
        # the same transaction.
        for name, _ in SQLITE_AUDIT_GUARD:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for _, statement in SQLITE_AUDIT_GUARD:
            conn.exec_driver_sql(statement)


# Apps ------------------------------------------------------------------------------------------


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


# A staff member's browser ----------------------------------------------------------------------


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of a form page, as a browser would read it."""
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


# The two-step sign-in key tests give staff who must use it (admins) before signing them in.
TOTP_SECRET = "TESTSECRETFORTWOSTEPSIGNINTESTS2"


def enrol_if_required(email: str) -> None:
    """Turn on two-step sign-in with TOTP_SECRET for a staff member who must use it and has not.

    Test set-up, as if they had enrolled before (tests/auth/test_mfa.py goes through the page).
    """
    if not has_app_context():
        return
    user = find_staff(db.session, email)
    if user is None or user.is_mfa_enabled or not mfa.is_required(db.session, user):
        return
    user.mfa_secret = TOTP_SECRET
    user.mfa_enabled_at = utcnow()
    db.session.commit()


def next_code(email: str) -> str:
    """A code of the staff member's phone app that the server has not accepted yet.

    A code works once per account: when an earlier sign-in of the test used this time step, the
    next one's code (accepted too: one step either side) is given, and when both were used the
    record of the last step is cleared (set-up again: tests/auth/test_mfa.py tests the refusal).
    """
    user = find_staff(db.session, email)
    assert user is not None, email
    db.session.refresh(user)
    step = mfa.time_step(utcnow())
    if user.mfa_last_step is not None and user.mfa_last_step >= step:
        if user.mfa_last_step == step:
            step += 1
        else:
            user.mfa_last_step = None
            db.session.commit()
    assert user.mfa_secret is not None, f"{email} has no two-step sign-in"
    return mfa.code_at(user.mfa_secret, step)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    """Sign in as a browser would: the password, then a code when two-step sign-in asks for one.

    The response is the last one: a redirect when signed in.
    """
    enrol_if_required(email)
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )
    if response.status_code == 302 and response.headers["Location"] == "/login/code":
        response = client.post(
            "/login/code",
            data={"code": next_code(email), "csrf_token": csrf_token(client, "/login/code")},
        )
    return response


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop servers a test started: politely, then for good after 15 seconds."""
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """The SQL statements the app's engine runs meanwhile (a listener, removed after): for
    tests that a page's or a service's statement count does not grow with the data."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
