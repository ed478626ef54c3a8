"""`proms link MRN`: a new link to the patient's open questionnaire, for staff on the phone."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select

from proms.admin.models import Clinic, Patient
from proms.auth.services import cli_actor, record_event
from proms.catalog.services import deployment_registry
from proms.checks import ConfigurationError, public_base_url
from proms.db import db, utcnow
from proms.instruments.errors import NotSendableError
from proms.surveys import links
from proms.surveys.services import NoOpenQuestionnaire, make_staff_link


@click.command("link")
@click.argument("mrn")
@click.option(
    "--clinic",
    "clinic_slug",
    default=None,
    help="The clinic's short name, when the MRN exists in several clinics.",
)
def link_command(mrn: str, clinic_slug: str | None) -> None:
    """Print a new link to the patient's currently open questionnaire."""
    # Before anything is made: production refuses a link without its https address.
    try:
        public_base_url(current_app.config)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    query = select(Patient).where(Patient.mrn == mrn)
    if clinic_slug:
        query = query.join(Clinic).where(Clinic.slug == clinic_slug)
    patients = db.session.scalars(query).all()
    if not patients:
        raise click.ClickException(
            f"No patient with MRN {mrn}" + (f" at {clinic_slug}." if clinic_slug else ".")
        )
    if len(patients) > 1:
        raise click.ClickException(
            f"MRN {mrn} exists in several clinics: add --clinic "
            + " or ".join(p.clinic.slug for p in patients)
        )
    patient = patients[0]
    try:
        assessment, raw = make_staff_link(
            db.session,
            deployment_registry(db.session),
            patient,
            now=utcnow(),
            env=current_app.config["ENV"],
            max_age=links.link_max_age(current_app.config),
        )
    except NoOpenQuestionnaire as exc:
        raise click.ClickException(f"Patient {mrn} has no questionnaire open today.") from exc
    except NotSendableError as exc:
        raise click.ClickException(str(exc)) from exc
    record_event(
        db.session,
        "link.created",
        actor_email=cli_actor(),
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        detail={"assessment_id": assessment.id, "via": "cli"},
    )
    db.session.commit()
    click.echo(links.link_url(current_app.config, raw))
