"""`proms clinic ...`: clinics from the command line."""

from __future__ import annotations

import click
from sqlalchemy import select

from proms.admin import services
from proms.admin.models import Clinic
from proms.db import db


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
