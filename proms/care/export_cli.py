"""`proms export`: the web page's exports from the command line, for every clinic or one.

Whoever runs it already holds the database, so it is not limited by role; it is audited all the
same ("cli:<user>"), when it starts and when it has written the last row.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

import click
from flask import current_app
from sqlalchemy import select

from proms.admin.models import Clinic
from proms.auth.services import cli_actor, record_event
from proms.care import exports
from proms.care.deidentify import ExportRefused
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow


@click.command("export")
@click.option(
    "--format",
    "format_",
    required=True,
    type=click.Choice([f.value for f in exports.ExportFormat]),
    help="csv-long: a row per score; csv-wide: a row per course; items: a row per answer; "
    "fhir: a FHIR R4 Bundle (JSON).",
)
@click.option("--deidentified", is_flag=True, help="Pseudonyms, shifted dates, no names or MRNs.")
@click.option("--clinic", "clinic_slug", default=None, help="Only this clinic (its slug).")
@click.option("--protocol", default=None, help="Only courses of this protocol (its slug).")
@click.option(
    "--from",
    "start_from",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only courses starting on or after this day (YYYY-MM-DD).",
)
@click.option(
    "--to",
    "start_to",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only courses starting on or before this day (YYYY-MM-DD).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write it (default: standard output).",
)
def export_command(
    format_: str,
    deidentified: bool,
    clinic_slug: str | None,
    protocol: str | None,
    start_from: dt.datetime | None,
    start_to: dt.datetime | None,
    output_path: Path | None,
) -> None:
    """Export scores, answers or a FHIR Bundle of the clinics' courses (docs/exports.md)."""
    if start_from and start_to and start_to < start_from:
        raise click.UsageError("--to is before --from.")
    if clinic_slug is None:
        clinic_ids = tuple(db.session.scalars(select(Clinic.id).order_by(Clinic.id)))
    else:
        found = db.session.scalar(select(Clinic.id).where(Clinic.slug == clinic_slug))
        if found is None:
            raise click.UsageError(f"there is no clinic {clinic_slug!r} (see the clinic's slug).")
        clinic_ids = (found,)
    spec = exports.ExportSpec(
        format=exports.ExportFormat(format_),
        clinic_ids=clinic_ids,
        deidentified=deidentified,
        protocol=protocol or None,
        start_from=start_from.date() if start_from else None,
        start_to=start_to.date() if start_to else None,
    )
    try:
        ids = exports.identifiers_for(spec, current_app.config)
    except ExportRefused as exc:
        raise click.UsageError(str(exc)) from exc
    clinic_id = clinic_ids[0] if clinic_slug is not None else None
    actor = cli_actor()
    record_event(
        db.session, "export.started", actor_email=actor, clinic_id=clinic_id, detail=spec.filters()
    )
    now = utcnow()
    running = exports.export(db.engine, deployment_registry(db.session), spec, ids, now=now)
    db.session.commit()
    try:
        if output_path is None:
            _write(running, sys.stdout)
        else:
            with output_path.open("w", newline="", encoding="utf-8") as target:
                _write(running, target)
    except BaseException as exc:
        if output_path is not None:
            output_path.unlink(missing_ok=True)  # no half-written file that looks like an export
        if isinstance(exc, OSError):
            raise click.UsageError(f"cannot write {output_path or 'the output'}: {exc}") from exc
        raise
    record_event(
        db.session,
        "export.finished",
        actor_email=actor,
        clinic_id=clinic_id,
        detail={**spec.filters(), "rows": running.counter.rows},
    )
    db.session.commit()
    what = "resources" if spec.format is exports.ExportFormat.FHIR else "rows"
    click.echo(f"exported {running.counter.rows} {what} ({spec.format.value})", err=True)


def _write(running: exports.Export, target: TextIO) -> None:
    for chunk in running.chunks:
        target.write(chunk)
    target.flush()
