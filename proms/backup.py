"""`proms backup FILE` and `proms restore FILE`: a copy of the whole database, and back.

SQLite: the online backup API (sqlite3.Connection.backup) copies the database page by page while
the app keeps running; the copy is one consistent moment (SQLite restarts the copy if a writer
changes a page it already copied). PostgreSQL: `pg_dump --format=custom` (one consistent
snapshot, taken without stopping anyone) and, to restore, `pg_restore` turned into SQL that
`psql` runs in a single transaction together with the removal of what is there now: a restore
that fails leaves the database as it was.

The database password goes to pg_dump, pg_restore and psql in the environment (PGPASSWORD),
never on their command line (which any user of the machine can read in `ps`), and is never
printed. The binaries must be at least the server's major version: they are looked for in
/usr/lib/postgresql/<server major>/bin (Debian's layout), then on PATH, or in --pg-bin.

A restore refuses a file of the other kind (a pg_dump file for a SQLite database, or anything
else), and refuses to overwrite a database that holds data unless --force (or, at a terminal,
the operator confirms). Afterwards it says where the schema stands: a backup from an older proms
needs `proms db upgrade`. See docs/backup.md.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sqlite3
import subprocess  # nosec B404
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from proms import schema

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


def file_kind(path: Path) -> str | None:
    """ "sqlite" or "postgresql" by the file's first bytes; None for anything else."""
    with path.open("rb") as handle:
        start = handle.read(len(SQLITE_MAGIC))
    if start.startswith(SQLITE_MAGIC):
        return "sqlite"
    if start.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    return None


def _sqlite_path(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(url.database)


# What is in a database -----------------------------------------------------------------------


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per table of proms (Alembic's own table left out)."""
    inspector = sa.inspect(engine)
    counts = {}
    with engine.connect() as connection:
        for name in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
            table = sa.table(name)
            counts[name] = int(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
    return counts


def _revision(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return "not migrated"
        found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        return ", ".join(found) or "not migrated"


# Backing up ------------------------------------------------------------------------------------


def backup_sqlite(url: sa.URL, target: Path) -> None:
    source = _sqlite_path(url)
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    partial = target.with_name(f".{target.name}.partial")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # page by page; restarts if a writer changes a copied page
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside
            problems = dst.execute("PRAGMA integrity_check").fetchall()
        finally:
            dst.close()
    finally:
        src.close()
    if problems != [("ok",)]:
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {problems[:3]}")
    partial.replace(target)  # the file appears whole or not at all


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """How the PostgreSQL tools reach the database: environment (with the password), schema."""

    env: dict[str, str]
    schema: str | None  # the URL's search_path schema (CI and tests), or None: the default


def postgres_target(url: sa.URL) -> PostgresTarget:
    """libpq environment variables for the URL; the password only there, never in argv."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    for name, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[name] = str(value)
    found = url.query.get("options", ())
    options = " ".join([found] if isinstance(found, str) else list(found))
    if options:
        env["PGOPTIONS"] = options
    match = re.search(r"search_path\s*=\s*([A-Za-z_][\w$]*)", options)
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    return PostgresTarget(env=env, schema=match[1] if match else None)


def server_major(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        number = int(connection.execute(sa.text("SHOW server_version_num")).scalar_one())
    return number // 10000


def find_tool(name: str, major: int, pg_bin: Path | None) -> str:
    """The PostgreSQL client `name` of at least the server's major version."""
    candidates = [pg_bin / name] if pg_bin else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        usable = candidate.is_file() and os.access(candidate, os.X_OK)
        if usable and _tool_major(candidate) >= major:
            return str(candidate)
    raise BackupError(
        f"no {name} for PostgreSQL {major} or later: install the client (Debian: apt install "
        f"postgresql-client-{major}) or give its directory with --pg-bin"
    )


# The S603/B603 exemptions: argument lists of our own, never a shell.
def _tool_major(path: Path) -> int:
    result = subprocess.run(  # noqa: S603  # nosec B603
        [str(path), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+)(?:\.\d+)?", result.stdout)
    return int(match[1]) if match else 0


def _run(argv: list[str], env: dict[str, str], *, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(  # noqa: S603  # nosec B603
        argv, env=env, input=stdin, capture_output=True, check=False
    )
    if result.returncode != 0:
        tool = Path(argv[0]).name
        said = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BackupError(f"{tool} failed: {said[0] if said else f'exit {result.returncode}'}")
    return result.stdout


def current_schema(engine: sa.Engine) -> str:
    """The schema proms' tables are in: the URL's search_path one, or the database's default."""
    with engine.connect() as connection:
        return str(connection.execute(sa.text("SELECT current_schema()")).scalar_one())


def backup_postgresql(url: sa.URL, engine: sa.Engine, target: Path, pg_bin: Path | None) -> None:
    """One schema, proms', not the whole database: what else the database holds is not ours to
    restore over (another application's schema, an extension's)."""
    where = postgres_target(url)
    pg_dump = find_tool("pg_dump", server_major(engine), pg_bin)
    partial = target.with_name(f".{target.name}.partial")
    argv = [
        pg_dump,
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        f"--schema={current_schema(engine)}",
        f"--file={partial}",
    ]
    try:
        _run(argv, where.env)
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)


# Restoring -------------------------------------------------------------------------------------


def restore_sqlite(url: sa.URL, source: Path) -> None:
    target = _sqlite_path(url)
    src = sqlite3.connect(source)
    try:
        problems = src.execute("PRAGMA integrity_check").fetchall()
        if problems != [("ok",)]:
            raise BackupError(f"{source} fails SQLite's integrity check: {problems[:3]}")
        dst = sqlite3.connect(target, timeout=30)
        try:
            # Page by page into the live file, under its write lock: readers in other processes
            # see the old database or the restored one, never a mixture.
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _drop_statements(engine: sa.Engine) -> str:
    """SQL that removes what the restore replaces (the tables and functions in proms' schema, not
    the schema itself), run in the restore's own transaction."""
    statements = []
    with engine.connect() as connection:
        for (table,) in connection.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ):
            statements.append(f'DROP TABLE IF EXISTS "{table}" CASCADE;')
        for (signature,) in connection.execute(
            sa.text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = current_schema()"
            )
        ):
            statements.append(f"DROP FUNCTION IF EXISTS {signature} CASCADE;")
    return "\n".join(statements) + "\n"


# pg_restore --list lines: "215; 1259 16398 TABLE myschema audit_event owner".
TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?:DATA )?(\S+) ", re.M)
TOC_SCHEMA = re.compile(r"^\d+; \d+ \d+ (SCHEMA|COMMENT) - (SCHEMA )?\S+")


def restore_postgresql(url: sa.URL, engine: sa.Engine, source: Path, pg_bin: Path | None) -> None:
    where = postgres_target(url)
    major = server_major(engine)
    pg_restore = find_tool("pg_restore", major, pg_bin)
    psql = find_tool("psql", major, pg_bin)
    listing = _run([pg_restore, "--list", str(source)], where.env).decode("utf-8", "replace")
    dumped = set(TOC_TABLE.findall(listing))
    wanted = current_schema(engine)
    if dumped != {wanted}:
        names = ", ".join(sorted(dumped)) or "none"
        raise BackupError(
            f"{source} holds the tables of schema {names}; this proms uses the schema {wanted}"
        )
    # The schema stays (it may hold grants, or belong to another role); its contents are replaced.
    keep = "\n".join(line for line in listing.splitlines() if not TOC_SCHEMA.match(line))
    with tempfile.TemporaryDirectory(prefix="proms-restore-") as tmp:
        listed = Path(tmp) / "list"
        listed.write_text(keep + "\n", encoding="utf-8")
        argv = [pg_restore, "--no-owner", "--no-privileges", f"--use-list={listed}", "--file=-"]
        script = _run([*argv, str(source)], where.env)
    sql = _drop_statements(engine).encode() + script
    engine.dispose()  # our own idle connections must not hold locks the DROPs wait for
    _run(
        [psql, "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1"],
        where.env,
        stdin=sql,
    )


# The commands ----------------------------------------------------------------------------------


def _engine() -> sa.Engine:
    from proms.db import db

    return db.engine


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option(
    "--pg-bin",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of pg_dump (PostgreSQL), if not the server version's own.",
)
@with_appcontext
@click.pass_context
def backup_command(ctx: click.Context, file: Path, force: bool, pg_bin: Path | None) -> None:
    """Copy the whole database to FILE while proms keeps running (see docs/backup.md)."""
    url = sa.make_url(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    if file.exists() and not force:
        _fail(ctx, f"{file} exists; choose another name, or --force to overwrite it")
    engine = _engine()
    started = dt.datetime.now(dt.UTC)
    try:
        if url.get_backend_name() == "sqlite":
            backup_sqlite(url, file)
        else:
            backup_postgresql(url, engine, file, pg_bin)
    except BackupError as exc:
        _fail(ctx, str(exc))
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    click.echo(
        f"Backed up {schema.display_url(str(url))} (revision {_revision(engine)}) to {file}: "
        f"{file.stat().st_size:,} bytes in {seconds:.1f} s"
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that holds data, without asking.")
@click.option(
    "--pg-bin",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of pg_restore and psql (PostgreSQL), if not the server version's own.",
)
@with_appcontext
@click.pass_context
def restore_command(ctx: click.Context, file: Path, force: bool, pg_bin: Path | None) -> None:
    """Replace the whole database with a backup made by `proms backup` (see docs/backup.md)."""
    url = sa.make_url(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    found = file_kind(file)
    if found is None:
        _fail(ctx, f"{file} is not a proms backup (neither a SQLite file nor a pg_dump file)")
    if found != kind:
        _fail(
            ctx,
            f"{file} is a {_name(found)} backup, but this proms uses {_name(kind)} "
            f"({schema.display_url(str(url))}); restore it where that database is configured",
        )
    from proms.db import db

    db.session.remove()  # this command's own session: it must hold no lock the restore waits for
    engine = _engine()
    held = {name: n for name, n in row_counts(engine).items() if n} if _exists(url) else {}
    if held and not force:
        summary = ", ".join(f"{name} {n:,}" for name, n in sorted(held.items())[:6])
        question = (
            f"The database at {schema.display_url(str(url))} holds data ({summary}, ...). "
            "Restoring replaces all of it"
        )
        if not (sys.stdin.isatty() and click.confirm(f"{question}. Continue?", default=False)):
            _fail(
                ctx,
                f"{question}: back it up first (proms backup FILE), then restore with --force",
            )
    try:
        if kind == "sqlite":
            engine.dispose()  # no connection of ours may hold a lock the copy waits for
            restore_sqlite(url, file)
        else:
            restore_postgresql(url, engine, file, pg_bin)
    except BackupError as exc:
        _fail(ctx, str(exc))
    engine.dispose()  # connections made before the restore may cache the old schema
    state = schema.schema_state(str(url))
    click.echo(f"Restored {file} into {schema.display_url(str(url))}.")
    problem = state.problem()
    if problem is None:
        click.echo("The schema is at this proms' head. Check the audit log: proms audit verify")
    elif state.unknown:
        click.echo(f"Warning: {problem}. Use the proms that made the backup.")
    else:
        click.echo(
            f"The backup is older than this proms: {problem}. Then check the audit log: "
            "proms audit verify"
        )


def _exists(url: sa.URL) -> bool:
    return url.get_backend_name() != "sqlite" or _sqlite_path(url).exists()


def _name(kind: str) -> str:
    return "SQLite" if kind == "sqlite" else "PostgreSQL"


def _fail(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"proms: {message}", err=True)
    ctx.exit(1)
