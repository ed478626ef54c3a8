"""`proms clinic ...` and `proms import ...`: clinics and bulk imports from the command line."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from proms.admin import importer, patients, services
from proms.admin.models import Clinic
from proms.auth.services import cli_actor
from proms.db import db, utcnow


@click.group(help="Clinics.")
def clinic() -> None:
    pass


@clinic.command("create")
@click.option("--slug", required=True, help="Short name, e.g. pain-main.")
@click.option("--name", required=True, help="Full name shown to patients.")
@click.option("--time-zone", required=True, help="IANA time zone, e.g. America/New_York.")
@click.option("--phone", default=None, help="Contact phone shown to patients.")
@click.option("--email", default=None, help="Contact email shown to patients.")
def create(slug: str, name: str, time_zone: str, phone: str | None, email: str | None) -> None:
    """Create a clinic."""
    try:
        created = services.create_clinic(
            db.session,
            slug=slug,
            name=name,
            time_zone=time_zone,
            contact_phone=phone,
            contact_email=email,
        )
    except services.AdminError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created clinic {created.slug} ({created.name}).")


@clinic.command("list")
def list_() -> None:
    """List clinics."""
    for row in db.session.scalars(select(Clinic).order_by(Clinic.slug)):
        click.echo(f"{row.slug}\t{row.name}\t{row.time_zone}")


@click.group("import", help="Bulk imports from CSV files.")
def import_() -> None:
    pass


@import_.command("enrollments")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clinic", "clinic_slug", required=True, help="Short name of the clinic.")
@click.option("--dry-run", is_flag=True, help="Check the file and show what would change.")
def enrollments(file: Path, clinic_slug: str, dry_run: bool) -> None:
    """Create or update patients by MRN and enroll them, from a CSV file.

    Columns: mrn, given_name, family_name, birth_date, email, phone, timezone, language,
    protocol, anchor_date. The whole file is checked first; a file with any problem imports
    nothing (exit code 1).
    """
    found = db.session.scalar(select(Clinic).where(Clinic.slug == clinic_slug))
    if found is None:
        raise click.UsageError(f"No clinic {clinic_slug!r}: see `proms clinic list`.")
    now = utcnow()
    plan = importer.check_file(
        db.session, found, file.read_bytes(), today=patients.clinic_today(found, now)
    )
    if not plan.is_clean:
        for problem in plan.problems:
            click.echo(str(problem), err=True)
        count = len(plan.problems)
        click.echo(f"{count} problem{'' if count == 1 else 's'}: nothing was imported.", err=True)
        raise SystemExit(1)
    for row in plan.rows:
        click.echo(describe(row))
    if dry_run:
        click.echo(f"Dry run, nothing was imported. {plan.summary}")
        return
    importer.apply(db.session, plan, now=now, user=None)
    importer.audit(db.session, plan, actor_email=cli_actor())
    db.session.commit()
    click.echo(f"Imported {plan.summary}")


def describe(row: importer.RowPlan) -> str:
    """One row's outcome, by MRN (the names stay in the file)."""
    changed = f" ({', '.join(row.changed)})" if row.changed else ""
    return (
        f"line {row.line}: MRN {row.mrn}: patient {row.patient_action}{changed}; "
        f"{row.protocol.slug} from {row.anchor_on.isoformat()}: {row.enrollment_action}"
    )
