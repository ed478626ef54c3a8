"""`proms scheduler`: run the sweeps forever, or each once (`--once [--now ...]`)."""

from __future__ import annotations

import datetime as dt
import logging

import click
from flask import current_app

from proms.checks import ConfigurationError
from proms.scheduling.runner import Runner


class Instant(click.ParamType):
    """An ISO 8601 date and time; without an offset it is read as UTC."""

    name = "ISO-8601"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):  # type: ignore[no-untyped-def]
        if isinstance(value, dt.datetime):
            return value
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date and time like 2027-03-08T14:00:00Z", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every sweep once, in order, and exit.")
@click.option(
    "--now",
    type=Instant(),
    help="With --once: the moment to run at (ISO 8601; UTC unless it has an offset).",
)
def scheduler_command(once: bool, now: dt.datetime | None) -> None:
    """Send invitations and reminders, close windows, heal schedules, purge old links.

    Runs until stopped (SIGTERM or Ctrl-C finish the message in hand first). One line per sweep
    goes to the log: what was claimed, sent, skipped (by reason), deferred, failed, uncertain.
    """
    if now is not None and not once:
        raise click.UsageError("--now goes with --once (a running scheduler uses the clock).")
    if not logging.getLogger().handlers:  # a deployment's own logging configuration wins
        # Running, one line per sweep goes to the log; with --once they are printed instead.
        logging.basicConfig(
            level=logging.WARNING if once else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # APScheduler's two lines per job and Alembic's are noise beside ours.
        for name in ("apscheduler", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        runner = Runner(current_app._get_current_object())  # type: ignore[attr-defined]
    except ConfigurationError as exc:
        click.echo(f"proms: {exc}", err=True)  # one line, as every proms command says it
        raise SystemExit(1) from None
    if once:
        for line in runner.once(now.astimezone(dt.UTC) if now else None):
            click.echo(line)
        return
    runner.forever()
