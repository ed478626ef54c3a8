"""Database plumbing: the declarative base, naming convention, UTC datetimes, SQLite pragmas,
and what a database failure means for the person waiting (`trouble_status`)."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import sqlite3
from contextvars import ContextVar
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Dialect, Enum, MetaData, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime stored in UTC; naive datetimes are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: proms stores aware UTC datetimes only")
        value = value.astimezone(dt.UTC)
        # SQLite stores text; keep it free of an offset so that it sorts as it compares.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def enum_type(enum_class: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: a VARCHAR with a named CHECK constraint, storing the values."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(str(member.value)) for member in enum_class),
        values_callable=lambda members: [str(member.value) for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    # Set on the registry, not the class: Flask-SQLAlchemy subclasses this base.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={dt.datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base, disable_autonaming=True)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL for concurrent readers beside one writer; SQLite leaves foreign keys off by default.

    pysqlite's own transaction handling is switched off (isolation_level None): it begins a
    transaction only before a write, so reads before it see another moment, and a read
    transaction that later writes fails at once when another writer got in between. proms
    begins every transaction itself instead (below).
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


# How SQLite transactions begin in this context: IMMEDIATE (the default) or DEFERRED.
sqlite_begin: ContextVar[str] = ContextVar("sqlite_begin", default="IMMEDIATE")


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection: Connection) -> None:
    """On SQLite every transaction takes the write lock when it begins (BEGIN IMMEDIATE).

    SQLite has one writer at a time and no row locks: `SELECT ... FOR UPDATE` is a no-op there,
    and a transaction that reads, then writes after another writer committed, fails at once
    (the busy timeout cannot help it). Taking the write lock up front makes each transaction run
    alone among writers, so read-check-write code (is the draft still open? is the link locked?)
    holds on SQLite as it does under PostgreSQL's row locks; a second writer waits
    (busy_timeout) instead of failing. Readers in WAL mode are never blocked. This is
    SQLAlchemy's documented pysqlite recipe.

    Code that only reads, and must not queue behind writers (test assertions that read what a
    server stored), sets `sqlite_begin` to DEFERRED in its own context.
    """
    if connection.dialect.name == "sqlite":
        mode = sqlite_begin.get()
        assert mode in ("IMMEDIATE", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@event.listens_for(Engine, "handle_error")
def _no_values_in_errors(context: ExceptionContext) -> None:
    """Keep PostgreSQL's error details (which quote row values) out of error messages.

    `hide_parameters` keeps bound values out of SQLAlchemy's messages, but PostgreSQL's own text
    repeats them ("DETAIL: Failing row contains (..., name, ...)", "Key (mrn)=(...)"). Only the
    primary message stays in what gets logged; the details remain on the driver's `diag`.
    """
    original = context.original_exception
    diag = getattr(original, "diag", None)
    if diag is None or not (diag.message_detail or diag.context):
        return
    terse = diag.message_primary or type(original).__name__
    original.args = (terse,)
    if context.sqlalchemy_exception is not None:
        kind = f"{type(original).__module__}.{type(original).__name__}"
        context.sqlalchemy_exception.args = (f"({kind}) {terse}",)


# What a failed statement means for the person waiting (proms.errors answers with the status):
# 503 "try again in a moment" while the database cannot be reached, is restarting or is busy,
# 507 while its storage is full (nothing more can be saved until space is freed). Anything else
# is a bug and stays a 500. docs/soak.md tells how each was produced against real processes.
UNAVAILABLE = 503
STORAGE_FULL = 507

# SQLite primary result codes (the low byte of the extended code Python 3.11 gives).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 13, 14
# PostgreSQL SQLSTATEs: disk full; out of memory and too many connections; the server shutting
# down (an administrator's restart, a crash) or still starting up. Class 08 is any lost or
# refused connection.
_PG_DISK_FULL = "53100"
_PG_UNAVAILABLE = frozenset({"53200", "53300", "57P01", "57P02", "57P03"})


def trouble_status(error: BaseException) -> int | None:
    """503 or 507 when `error` says the database is unavailable or full; None otherwise."""
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection busy for too long
        return UNAVAILABLE
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:  # SQLAlchemy found the connection dead (and retired it)
        return UNAVAILABLE
    original = error.orig
    if isinstance(original, sqlite3.Error):
        code = (getattr(original, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL:
            return STORAGE_FULL
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN):
            return UNAVAILABLE
        return None
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate == _PG_DISK_FULL:
        return STORAGE_FULL
    if sqlstate in _PG_UNAVAILABLE or (sqlstate or "").startswith("08"):
        return UNAVAILABLE
    # A connection refused, timed out or dropped before the server said anything: no SQLSTATE.
    if isinstance(error, sa_exc.OperationalError) and sqlstate is None:
        return UNAVAILABLE
    return None


def init_app(app: Flask) -> None:
    """Bind the database to the app; PostgreSQL connections give up quickly when it is down."""
    options: dict[str, Any] = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    # Recovery after a database restart without restarting proms: a pooled connection is
    # tested when it is checked out and replaced if the server dropped it, and a statement
    # failing on a dropped connection makes SQLAlchemy retire every connection older than it
    # (psycopg marks such a connection broken, which is what SQLAlchemy's check reads). The
    # requests caught in between get a 503 (proms.errors). bench/soak/faults.py proves it.
    options.setdefault("pool_pre_ping", True)
    # Errors and echo never print bound parameters: they hold answers, scores and names.
    options["hide_parameters"] = True
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql"):
        connect_args = dict(options.get("connect_args", {"connect_timeout": 3}))
        # No JIT compilation: the app's statements are short, and the few large ones (the
        # cohort report's aggregates) spent more compiling than JIT saved them (docs/reports.md).
        # Kept with the server options the URL gives (the tests' search_path).
        found = make_url(uri).query.get("options", ())
        given = [found] if isinstance(found, str) else list(found)
        connect_args.setdefault("options", " ".join([*given, "-c jit=off"]))
        options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    import proms.models  # noqa: F401 - registers every table on the metadata

    db.init_app(app)
    # Registered after Flask-SQLAlchemy's own teardown, so it runs first (Flask runs them in
    # reverse): that one would let the error out.
    app.teardown_appcontext(_end_session)


def _end_session(_error: BaseException | None) -> None:
    """End the request's session even when the database went away during the request.

    Ending a session rolls back its transaction; if the server was restarted after the page
    was built, that rollback fails, and the error would escape Flask after the response was
    made (the server then sends its own bare 500 instead of the page). The failed connection
    has been invalidated by then (pool_pre_ping and SQLAlchemy's disconnect handling replace
    it), so a second close ends the session cleanly; nothing was left to roll back.
    """
    try:
        db.session.remove()
    except sa_exc.DBAPIError as error:
        if trouble_status(error) is None:
            raise
        logging.getLogger(__name__).warning(
            "the database went away before the session ended (%s)", type(error.orig).__name__
        )
        try:
            db.session.remove()
        except sa_exc.DBAPIError:
            db.session.registry.clear()
