"""`proms score` (analysts: score a CSV) and `proms rescore` (after a scoring change)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from proms.auth.services import cli_actor, record_event
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.instruments.registry import Registry, bundled_registry
from proms.outcomes.rescore import MET_AGAIN, NO_LONGER_MET, RAISED, UPDATED, rescore
from proms.scoring import SCORING_VERSION
from proms.scoring.batch import BatchInputError, score_csv


def _registry_for_scoring() -> Registry:
    """The deployment's instruments; the bundled ones when there is no migrated database."""
    if not _sqlite_file_missing():  # connecting to a missing file would create it, empty
        try:
            return deployment_registry(db.session)
        except SQLAlchemyError:
            db.session.rollback()
    click.echo("note: no proms database here; scoring with the bundled instruments only.", err=True)
    return bundled_registry()


def _sqlite_file_missing() -> bool:
    url = make_url(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    return (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(str(url.database)).exists()
    )


@click.command("score")
@click.argument("input_path", metavar="INPUT.csv", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the scored CSV (default: standard output).",
)
def score_command(input_path: Path, output_path: Path | None) -> None:
    """Score a CSV of completed questionnaires (one row each; blank cell = unanswered)."""
    forms = {definition.code: definition.form() for definition in _registry_for_scoring()}
    try:
        source = input_path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise click.UsageError(f"cannot read {input_path}: {exc.strerror}") from exc
    try:
        with source:
            if output_path is None:
                summary = score_csv(source, sys.stdout, forms)
            else:
                with output_path.open("w", newline="", encoding="utf-8") as target:
                    summary = score_csv(source, target, forms)
    except BatchInputError as exc:
        if output_path is not None:
            output_path.unlink(missing_ok=True)  # no half-written file that looks like a result
        raise click.UsageError(f"{input_path}: {exc}") from exc
    except OSError as exc:
        raise click.UsageError(f"cannot write {output_path}: {exc.strerror}") from exc
    counts = ", ".join(f"{n} {method}" for method, n in sorted(summary.by_method.items()))
    click.echo(
        f"scored {summary.rows} rows ({counts or 'none'}) with scoring {SCORING_VERSION}", err=True
    )


@click.command("rescore")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--limit", default=50, show_default=True, help="How many changes to list.")
def rescore_command(dry_run: bool, limit: int) -> None:
    """Recompute every stored score with the current scoring and report what changed."""
    report = rescore(db.session, deployment_registry(db.session), apply=not dry_run)
    if dry_run:
        db.session.rollback()
    else:
        record_event(
            db.session,
            "scores.rescored",
            actor_email=cli_actor(),
            detail={
                "scoring_version": SCORING_VERSION,
                "responses": report.responses,
                "changed": len(report.changes),
                "alerts": {
                    change: [r.alert_id for r in report.alerts if r.change == change]
                    for change in (RAISED, NO_LONGER_MET, MET_AGAIN, UPDATED)
                },
            },
        )
        db.session.commit()
    verb = "would change" if dry_run else "changed"
    click.echo(
        f"{report.responses} responses rescored with {SCORING_VERSION}: "
        f"{len(report.changes)} scores {verb}, {report.unchanged} unchanged."
    )
    for change in report.changes[:limit]:
        click.echo(
            f"  response {change.response_id} {change.scale}: "
            f"{_describe(change.before)} -> {_describe(change.after)}"
        )
    if len(report.changes) > limit:
        click.echo(f"  ... and {len(report.changes) - limit} more")
    if dry_run:
        click.echo("Alerts are revisited when the new scores are applied (without --dry-run).")
        return
    counts = Counter(revision.change for revision in report.alerts)
    click.echo(
        f"Alerts: {counts[RAISED]} raised, {counts[NO_LONGER_MET]} no longer met, "
        f"{counts[MET_AGAIN]} met again, {counts[UPDATED]} updated."
    )
    for revision in report.alerts[:limit]:
        where = f" at {revision.timepoint_key}" if revision.timepoint_key else ""
        click.echo(
            f"  alert {revision.alert_id} ({revision.rule}{where}) {revision.change}: "
            f"{_alert_facts(revision.before)} -> {_alert_facts(revision.after)}"
        )
    if len(report.alerts) > limit:
        click.echo(f"  ... and {len(report.alerts) - limit} more")


def _alert_facts(facts: dict[str, Any] | None) -> str:
    """What an alert's rule looked at, in a few words (ids and numbers only, no names)."""
    if facts is None:
        return "none"
    if "items" in facts:
        return "items " + (", ".join(facts["items"]) or "none")
    if "cut" in facts:  # a severity rule
        return f"{facts['unit']} {_number(facts['value'])}"
    if "current" in facts:  # change from baseline
        change = f" ({facts['change']})" if "change" in facts else ""
        return f"{_number(facts['baseline'])} to {_number(facts['current'])}{change}"
    return "facts not recorded"


def _number(value: object) -> str:
    return "no score" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _describe(values: dict[str, object] | None) -> str:
    if values is None:
        return "no score"
    shown = [
        f"{name}={values[name]}"
        for name in ("raw_score", "t_score", "standard_error")
        if values[name] is not None
    ]
    return f"{values['method']} " + " ".join(shown)
