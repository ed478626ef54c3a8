"""The `proms` command: the commands of every capability, `proms db`, and `proms shell`."""

from __future__ import annotations

from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, shell_command, with_appcontext
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from proms import ConfigurationError, create_app, schema
from proms.instruments.errors import DefinitionError

# A configuration or a bundled file that stops the app from being built: said in one line.
START_ERRORS = (ConfigurationError, DefinitionError)

# Commands of the capabilities that work without a migrated database: `proms score` scores with
# the bundled instruments when there is none (proms/outcomes/cli.py). Every other one refuses a
# database whose schema is not this proms' (missing, behind or ahead) before it reads or writes.
SCHEMA_OPTIONAL = frozenset({"score"})


def _app_for_commands() -> Flask:
    # Commands need no secret key or public address; those are checked where they are used.
    return create_app(serving=False)


def fail(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"proms: {message}", err=True)
    ctx.exit(1)


class ProMSGroup(AppGroup):
    """Flask's command group for one app, proms, without Flask's own options and commands.

    Like flask.cli.FlaskGroup it adds the commands each capability registers on `app.cli` and
    runs them in an app context. It has no -A/--app and no --env-file (proms is the app, and
    its configuration is PROMS_* variables and instance/config.py), and no `run`, `routes` or
    extension commands (Flask-Limiter's `limiter`): `flask --app proms ...` keeps those. It says
    in one line, without a traceback, when the configuration is refused or when a command
    fails because the database is missing its schema, is behind, or cannot be reached.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if "obj" not in extra and "obj" not in self.context_settings:
            extra["obj"] = ScriptInfo(
                create_app=_app_for_commands, set_debug_flag=False, load_dotenv_defaults=False
            )
        return super().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        try:
            app = ctx.ensure_object(ScriptInfo).load_app()
        except START_ERRORS as exc:
            click.echo(f"proms: {exc}", err=True)  # the help still lists proms' own commands
        else:
            names.update(app.cli.list_commands(ctx))
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        try:
            app = ctx.ensure_object(ScriptInfo).load_app()
        except START_ERRORS as exc:
            fail(ctx, str(exc))
        if not current_app or current_app._get_current_object() is not app:  # type: ignore[attr-defined]
            ctx.with_resource(app.app_context())
        command = app.cli.get_command(ctx, name)
        if command is not None and name not in SCHEMA_OPTIONAL:
            check_schema_on_first_use(app)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:  # e.g. a link without a public address
            fail(ctx, str(exc))
        except schema.SchemaError as exc:
            fail(ctx, str(exc))
        except SQLAlchemyError:
            problem = database_problem(ctx)
            if problem is None:
                raise  # the schema is right and the database answers: a bug, with its traceback
            fail(ctx, problem)


def check_schema_on_first_use(app: Flask) -> None:
    """Have the app's first database connection check the schema (SchemaError if not ours).

    Checked when a command first uses the database, not before it runs: its --help, its
    argument errors and its prompts come first, and a command that never touches the database
    needs none.
    """
    from proms.db import db

    with app.app_context():
        engine = db.engine
    url = str(app.config["SQLALCHEMY_DATABASE_URI"])
    checked = False

    def check(dbapi_connection: Any, connection_record: Any) -> None:
        nonlocal checked
        if checked:
            return
        problem = schema.schema_state(url).problem()
        if problem is not None:
            raise schema.SchemaError(problem)
        checked = True

    event.listen(engine, "connect", check)


def database_problem(ctx: click.Context) -> str | None:
    """Why a command failed on the database, if the schema or the connection is the cause."""
    app = ctx.ensure_object(ScriptInfo).load_app()
    if current_app:
        from proms.db import db

        db.session.remove()  # end the failed transaction before looking
    url = str(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        state = schema.schema_state(url)
    except SQLAlchemyError as exc:
        return f"cannot use the database at {schema.display_url(url)}: {_reason(exc)}"
    return state.problem()


def _reason(exc: SQLAlchemyError) -> str:
    """What the database said, in one line (SQL parameters are hidden by the engine)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@click.group(
    cls=ProMSGroup,
    help="proms: patient-reported outcomes.",
    epilog=(
        "Configuration: PROMS_* environment variables or instance/config.py (PROMS_ENV, "
        "PROMS_DATABASE_URL, PROMS_SECRET_KEY, PROMS_PUBLIC_BASE_URL, ...). Flask's developer "
        "commands (run, routes, limiter) are under `flask --app proms`."
    ),
)
@click.version_option(package_name="proms", prog_name="proms", message="%(prog)s %(version)s")
def cli() -> None:
    pass


@cli.group("db")
def db_group() -> None:
    """The database schema: the migrations that ship with this proms."""


def _database_url() -> str:
    return str(current_app.config["SQLALCHEMY_DATABASE_URI"])


@db_group.command("upgrade")
@with_appcontext
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the schema this proms needs (an empty one gets every table)."""
    url = _database_url()
    try:
        done = schema.upgrade(url)
    except SQLAlchemyError as exc:
        # Where it stopped, and why: "run proms db upgrade" would only send the operator round.
        state = schema.schema_state(url)  # an unreachable database: one line from `invoke`
        where = (
            f"is at revision {', '.join(state.current)}" if state.current else "has no migration"
        )
        fail(
            ctx,
            f"the upgrade failed: {_reason(exc)}. The database at {state.url} {where}; fix the "
            "cause, then run proms db upgrade again.",
        )
    for revision, message in done.applied:
        click.echo(f"applied {revision} {message}")
    if done.applied:
        click.echo(f"Upgraded: {done.after.describe()}")
    else:
        click.echo(f"Nothing to do: {done.after.describe()}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Say which migration the database is at, and whether this proms needs another."""
    click.echo(_sentence(schema.schema_state(_database_url()).describe(with_message=True)))


@db_group.command("check")
@with_appcontext
@click.pass_context
def db_check(ctx: click.Context) -> None:
    """Exit 0 when the database has exactly the schema of this proms; else say why, exit 1."""
    url = _database_url()
    state = schema.schema_state(url)
    problem = state.problem()
    if problem is not None:
        fail(ctx, problem)
    differences = schema.drift(url)
    if differences is not None:
        fail(
            ctx,
            f"the database at {state.url} is at head, but its tables differ from this proms' "
            f"models: {differences}",
        )
    click.echo(_sentence(state.describe()) + ", and its tables match this proms' models")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


cli.add_command(shell_command)


def _add_database_commands() -> None:
    """`proms backup`, `proms restore`, `proms audit verify`: beside `proms db`, not among the
    capabilities' commands, because they must run on a database that is not at this proms'
    head (a backup is taken before `proms db upgrade`; a restore may bring an older schema).
    A database without the audit chain's columns gets the usual one-line "run proms db
    upgrade" from `invoke`."""
    from proms import audit_chain, backup

    cli.add_command(backup.backup_command)
    cli.add_command(backup.restore_command)
    cli.add_command(audit_chain.audit_group)


_add_database_commands()


def main() -> None:
    try:
        cli.main(prog_name="proms")
    except ConfigurationError as exc:  # raised before any command could report it
        raise SystemExit(f"proms: {exc}") from None
