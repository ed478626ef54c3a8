"""The `proms` command: works with no configuration, and says in one line what is wrong.

The first tests run the installed `proms` in a child process with a bare environment, as an
analyst or an operator would on a new machine. The database tests run the command in this
process against a scratch database (a SQLite file, or a PostgreSQL schema with
--database=postgresql).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo

from proms import create_app, schema
from proms.cli import cli
from proms.db import db
from tests.helpers import ScratchDatabases

PROMS = Path(sys.executable).parent / "proms"


def run_proms(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`proms ARGS` with no variable but PATH, HOME, LANG and these (no PROMS_ENV: production)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "LANG": "C.UTF-8", **variables}
    return subprocess.run(
        [str(PROMS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_commands_of_proms_and_none_of_flask(tmp_path: Path) -> None:
    result = run_proms("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == ""  # no traceback, no refusal: help needs no configuration
    commands = result.stdout.split("Commands:\n")[1].split("\n\n")[0]
    listed = {line.split()[0] for line in commands.splitlines() if not line.startswith("   ")}
    assert {"db", "score", "instruments", "link", "staff", "clinic", "demo", "shell"} <= listed
    assert not {"routes", "run", "limiter"} & listed
    options = result.stdout.split("Options:")[1].split("Commands:")[0]
    for flask_option in ("--app", "--env-file", "--debug"):
        assert flask_option not in options
    assert "`flask --app proms`" in " ".join(result.stdout.split())  # where Flask's went


def test_scoring_a_csv_needs_no_configuration_and_no_database(tmp_path: Path) -> None:
    assert run_proms("score", "--help", cwd=tmp_path).returncode == 0
    source = tmp_path / "in.csv"
    source.write_text("instrument,NRS1\npain-nrs,7\n", encoding="utf-8")
    database = f"sqlite:///{tmp_path / 'none.sqlite3'}"  # not migrated: no proms database
    result = run_proms("score", str(source), cwd=tmp_path, PROMS_DATABASE_URL=database)
    assert result.returncode == 0, result.stderr
    assert "bundled instruments only" in result.stderr
    (row,) = csv.DictReader(result.stdout.splitlines())
    assert (row["raw_score"], row["method"]) == ("7", "sum")
    assert not (tmp_path / "none.sqlite3").exists()  # no empty database left behind


def one_line(text: str) -> str:
    assert text.endswith("\n"), text
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    return text.strip()


def test_a_command_on_an_unmigrated_database_says_so_in_one_line(tmp_path: Path) -> None:
    database = tmp_path / "new.sqlite3"
    result = run_proms(
        "instruments", "list", cwd=tmp_path, PROMS_DATABASE_URL=f"sqlite:///{database}"
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert one_line(result.stderr) == (
        f"proms: the database at sqlite:///{database} is not migrated (run: proms db upgrade)"
    )


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    # Port 1 on loopback refuses connections at once.
    url = "postgresql+psycopg://proms:hunter2@127.0.0.1:1/proms"
    result = run_proms("instruments", "list", cwd=tmp_path, PROMS_DATABASE_URL=url)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(
        "proms: cannot use the database at postgresql+psycopg://proms:***@127.0.0.1:1/proms: "
    )
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # The old Heroku-style scheme SQLAlchemy 1.4 dropped.
        ("postgres://proms:hunter2@db/proms", "SQLAlchemy knows no database 'postgres'"),
        # A database whose driver is not installed.
        ("mysql://proms:hunter2@db/proms", "its driver is not installed"),
        ("hunter2", "is not a database URL"),
    ],
)
def test_a_database_url_proms_cannot_use_is_one_line_without_its_password(
    tmp_path: Path, url: str, says: str
) -> None:
    helped = run_proms("--help", cwd=tmp_path, PROMS_DATABASE_URL=url)
    assert helped.returncode == 0
    assert says in one_line(helped.stderr)
    listed = run_proms("instruments", "list", cwd=tmp_path, PROMS_DATABASE_URL=url)
    assert listed.returncode == 1
    line = one_line(listed.stderr)
    assert says in line
    assert "hunter2" not in line
    assert "postgresql+psycopg://" in line  # an example of what works


def test_a_refused_configuration_is_one_line_and_help_still_works(tmp_path: Path) -> None:
    helped = run_proms("--help", cwd=tmp_path, PROMS_ENV="staging")
    assert helped.returncode == 0
    assert "PROMS_ENV must be production, development or test" in one_line(helped.stderr)
    assert "db " in helped.stdout
    listed = run_proms("instruments", "list", cwd=tmp_path, PROMS_ENV="staging")
    assert listed.returncode == 1
    assert one_line(listed.stderr).startswith("proms: PROMS_ENV must be")


# `proms db` and schema checks, in this process --------------------------------------------


@dataclass
class Proms:
    """`proms ARGS` in this process, on one scratch database, in production with no secret."""

    url: str
    extra_commands: list[click.Command] = field(default_factory=list)
    apps: list[Flask] = field(default_factory=list)

    def _app(self) -> Flask:
        app = create_app({"ENV": "production", "DATABASE_URL": self.url}, serving=False)
        for extra in self.extra_commands:
            app.cli.add_command(extra)
        self.apps.append(app)
        return app

    def sql(self, statement: str) -> None:
        """Run one statement on the scratch database, outside proms (as something else would)."""
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        with engine.begin() as connection:
            connection.execute(sa.text(statement))
        engine.dispose()

    def __call__(self, *args: str) -> Result:
        info = ScriptInfo(create_app=self._app, set_debug_flag=False, load_dotenv_defaults=False)
        return CliRunner().invoke(cli, list(args), obj=info, prog_name="proms")


@pytest.fixture
def proms(scratch_databases: ScratchDatabases) -> Iterator[Proms]:
    runner = Proms(scratch_databases.new_url())
    yield runner
    for app in runner.apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(schema.alembic_config("sqlite://"))


def shown(url: str) -> str:
    return schema.display_url(url)


def test_db_upgrade_current_and_check_on_a_new_database(proms: Proms) -> None:
    url, (head,) = proms.url, script().get_heads()
    current = proms("db", "current")
    assert current.exit_code == 0
    assert (
        current.stdout == f"The database at {shown(url)} is not migrated (run: proms db upgrade)\n"
    )
    checked = proms("db", "check")
    assert checked.exit_code == 1
    assert "is not migrated" in one_line(checked.stderr)

    upgraded = proms("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    revisions = [rev.revision for rev in reversed(list(script().walk_revisions()))]
    applied = [
        line.split()[1] for line in upgraded.stdout.splitlines() if line.startswith("applied ")
    ]
    assert applied == revisions
    assert upgraded.stdout.endswith(
        f"Upgraded: the database at {shown(url)} is at revision {head} (head)\n"
    )
    again = proms("db", "upgrade")
    assert (
        again.stdout
        == f"Nothing to do: the database at {shown(url)} is at revision {head} (head)\n"
    )

    doc = script().get_revision(head).doc
    assert proms("db", "current").stdout == (
        f"The database at {shown(url)} is at revision {head} (head): {doc}\n"
    )
    checked = proms("db", "check")
    assert checked.exit_code == 0, checked.output
    assert "its tables match this proms' models" in checked.stdout
    parsed = sa.make_url(url)
    if parsed.password:  # PostgreSQL in CI: the URL has one, the output never
        # In its place in the URL (CI's role is named like its password): user:password@host.
        secret = f":{parsed.password}@"
        for result in (current, upgraded, checked):
            assert secret not in result.output
            assert ":***@" in result.output
    # And the database is usable: a command that reads it works, in production, with no secret.
    assert proms("instruments", "list").exit_code == 0


def test_a_failed_upgrade_says_why_and_where_the_database_stopped(proms: Proms) -> None:
    proms.sql("CREATE TABLE clinic (id INTEGER)")  # a table of the first migration, already there
    result = proms("db", "upgrade")
    assert result.exit_code == 1
    line = one_line(result.output)
    assert "the upgrade failed:" in line
    assert "clinic" in line  # the database's own reason
    assert f"The database at {shown(proms.url)} has no migration" in line
    assert "Traceback" not in result.output


def test_every_command_refuses_an_old_schema_until_it_is_upgraded(proms: Proms) -> None:
    head = script().get_current_head()
    previous = script().get_revision(head).down_revision
    command.upgrade(schema.alembic_config(proms.url), previous)
    expected = (
        f"proms: the database at {shown(proms.url)} is at revision {previous}; this proms needs "
        f"{head} (run: proms db upgrade)"
    )
    # Reading instruments would work on this schema: refused all the same, before it reads.
    for args in (["instruments", "list"], ["clinic", "list"], ["db", "check"]):
        result = proms(*args)
        assert result.exit_code == 1, args
        assert one_line(result.stderr) == expected
    upgraded = proms("db", "upgrade")
    assert [line.split()[1] for line in upgraded.stdout.splitlines()[:-1]] == [head]
    assert proms("instruments", "list").exit_code == 0


def test_a_database_migrated_by_a_newer_proms_is_refused(proms: Proms) -> None:
    command.upgrade(schema.alembic_config(proms.url), "head")
    proms.sql("UPDATE alembic_version SET version_num = '0123456789ab'")
    for args in (["db", "upgrade"], ["instruments", "list"]):
        result = proms(*args)
        assert result.exit_code == 1
        assert "is at revision 0123456789ab, which this proms does not know" in one_line(
            result.stderr
        )


def test_db_check_reports_tables_that_differ_from_the_models(proms: Proms) -> None:
    assert proms("db", "upgrade").exit_code == 0
    proms.sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    result = proms("db", "check")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "is at head, but its tables differ from this proms' models" in line
    assert "stray" in line


def test_a_database_error_of_a_migrated_database_keeps_its_traceback(proms: Proms) -> None:
    """Only a missing or foreign schema is explained away; anything else is a bug to see."""

    @click.command("boom")
    def boom() -> None:
        db.session.execute(sa.text("SELECT no_such_column FROM clinic"))

    proms.extra_commands.append(boom)
    unmigrated = proms("boom")
    assert unmigrated.exit_code == 1
    assert "is not migrated (run: proms db upgrade)" in one_line(unmigrated.stderr)
    assert proms("db", "upgrade").exit_code == 0
    migrated = proms("boom")
    assert isinstance(migrated.exception, sa.exc.DBAPIError)
