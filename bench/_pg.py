"""PostgreSQL plumbing for the benchmarks: a scratch database, bulk COPY, query plans.

Not a benchmark itself (`make bench` runs bench/*_bench.py only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@contextlib.contextmanager
def scratch_database(url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty place to put tables; the URL of it. Dropped afterwards unless `keep`.

    `url` names a server (no database): a new database on it. `url` names a database (CI's, whose
    role may not create databases): a new schema in it, which the URL's connections use.
    """
    parsed = sa.make_url(url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    if parsed.database:
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
        scratch = parsed.set(query={**parsed.query, "options": f"-csearch_path={name}"})
    else:
        create = f'CREATE DATABASE "{name}"'
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        scratch = parsed.set(database=name)
    with admin.connect() as connection:
        connection.execute(sa.text(create))
    try:
        yield scratch.render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(sa.text(drop))
        admin.dispose()


# COPY ------------------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _json(value: object) -> str:
    return json.dumps(value).translate(_ESCAPES)


def _text(value: object) -> str:
    return str(value).translate(_ESCAPES)


_FORMATS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _value: "\\N",
    bool: lambda value: "t" if value else "f",
    int: int.__repr__,
    float: float.__repr__,
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    list: _json,
    dict: _json,
    str: _text,
}


def copy_text(value: object) -> str:
    """One value in COPY's text format."""
    return _FORMATS.get(type(value), _text)(value)


def copy_rows(
    connection: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object] | str],
    *,
    chunk: int = 20_000,
) -> int:
    """COPY rows into a table (tuples in `columns` order, or lines made already); how many."""
    count = 0
    names = ", ".join(f'"{name}"' for name in columns)
    with connection.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        lines: list[str] = []
        for row in rows:
            lines.append(row if isinstance(row, str) else "\t".join(map(copy_text, row)))
            if len(lines) >= chunk:
                copy.write("\n".join(lines) + "\n")
                count += len(lines)
                lines.clear()
        if lines:
            copy.write("\n".join(lines) + "\n")
            count += len(lines)
    return count


def required_columns(connection: psycopg.Connection[Any], table: str) -> set[str]:
    """Columns of a table that need a value in a COPY: NOT NULL and no default."""
    found = connection.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    ).fetchall()
    return {name for (name,) in found}


def table_columns(connection: psycopg.Connection[Any], table: str) -> set[str]:
    found = connection.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    if not found:
        raise SystemExit(f"the table {table!r} does not exist: is the schema up to date?")
    return {name for (name,) in found}


def reset_sequence(connection: psycopg.Connection[Any], table: str) -> None:
    """The id sequence past the ids written by hand."""
    statement = (
        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608 - ours
        f'(SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
    )
    connection.execute(statement)


def vacuum_analyze(connection: psycopg.Connection[Any]) -> None:
    """VACUUM ANALYZE this schema's tables (not the whole database's: CI's holds the tests')."""
    tables = connection.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    ).fetchall()
    names = ", ".join(f'"{name}"' for (name,) in tables)
    connection.execute(f"VACUUM ANALYZE {names}")


def psycopg_dsn(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    parsed = sa.make_url(url)
    parts = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
        **{key: value for key, value in parsed.query.items() if isinstance(value, str)},
    }
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v is not None})


# Query plans -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeqScan:
    """A large table read whole by one plan node."""

    table: str
    rows: float  # the rows it keeps: estimated, or counted under EXPLAIN ANALYZE
    share: float  # of the table's rows (pg_class.reltuples)
    filter: str  # its Filter line, "" when it keeps every row


@dataclass(frozen=True, slots=True)
class Plan:
    statement: str
    parameters: Any
    text: str
    seq_scans: tuple[SeqScan, ...]
    milliseconds: float | None  # the execution time EXPLAIN ANALYZE measured


SEQ_SCAN = re.compile(
    r"(Parallel )?Seq Scan on (\w+)[^(]*\(cost=\S+ rows=(\d+) [^)]*\)"
    r"(?: \(actual time=\S+ rows=(\d+) loops=(\d+)\))?"
)
WORKERS = re.compile(r"Workers (?:Planned|Launched): (\d+)")
EXECUTION_TIME = re.compile(r"Execution Time: ([\d.]+) ms")


def table_sizes(connection: psycopg.Connection[Any], tables: Iterable[str]) -> dict[str, float]:
    """The planner's row count of each table (after ANALYZE)."""
    found = connection.execute(
        "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' "
        "AND relnamespace = current_schema()::regnamespace AND relname = ANY(%s)",
        (list(tables),),
    ).fetchall()
    return {name: max(float(rows), 0.0) for name, rows in found}


def explain(
    connection: psycopg.Connection[Any],
    statement: str,
    parameters: Any,
    sizes: Mapping[str, float],
    *,
    analyze: bool = False,
) -> Plan:
    """EXPLAIN one captured statement with its parameters (bound on the client, as literals).

    Every sequential scan of a table in `sizes` is reported with the share of the table it
    keeps: a scan that keeps a sliver of a big table wants an index; one that keeps most of it
    (a report over the whole cohort) reads what it must.
    """
    options = "ANALYZE, BUFFERS, FORMAT TEXT" if analyze else "FORMAT TEXT"
    cursor = psycopg.ClientCursor(connection)
    try:
        cursor.execute(f"EXPLAIN ({options}) {statement}", _plain(parameters))
        lines = [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()
        connection.rollback()  # EXPLAIN ANALYZE of a locking read takes its locks
    text = "\n".join(lines)
    workers = WORKERS.search(text)
    scans = []
    for n, line in enumerate(lines):
        found = SEQ_SCAN.search(line)
        if found is None or found[2] not in sizes:
            continue
        parallel, table, estimate, actual, loops = found.groups()
        if actual is not None:
            rows = float(actual) * int(loops)
        else:  # a parallel node's estimate is per process: PostgreSQL divides by the workers
            # plus what the leader still does (cost_seqscan's parallel divisor)
            count = int(workers[1]) if parallel and workers else 0
            rows = float(estimate) * (count + max(0.0, 1.0 - 0.3 * count) if count else 1.0)
        following = lines[n + 1].strip() if n + 1 < len(lines) else ""
        keep = following if following.startswith("Filter:") else ""
        size = sizes[table] or 1.0
        scans.append(SeqScan(table, rows, min(rows / size, 1.0), keep))
    timed = EXECUTION_TIME.search(text)
    return Plan(statement, parameters, text, tuple(scans), float(timed[1]) if timed else None)


def _plain(parameters: Any) -> Any:
    """Parameters as psycopg takes them (SQLAlchemy hands over dicts, tuples or lists)."""
    if isinstance(parameters, Mapping):
        return dict(parameters)
    if parameters is None:
        return None
    return tuple(parameters)
