"""Exports for analysts and admins: the form, and the download it streams.

The download is a POST with its CSRF token: it reads health information (another site must not
be able to start one in a signed-in browser), and its filters stay out of URLs and logs. It is
audited twice: when it starts (who, from where, the format and filters) and, when the last byte
has gone, with the number of rows written.

De-identified exports cover the clinics where the user is an admin or an analyst; identified
ones (database ids and MRNs, names in FHIR) only those where the user is an admin: analysts see
no patient pages, so they get no identified data either.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, current_app, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import DateField, RadioField, SelectField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional, ValidationError

from proms.admin.models import Protocol
from proms.auth import roles
from proms.auth.audit import request_info
from proms.auth.models import Role, StaffUser
from proms.auth.roles import ANALYSIS, requires
from proms.auth.services import record_event
from proms.care import exports
from proms.care.deidentify import ExportRefused
from proms.care.views import bp
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow

# Who may export identified data (the rest of ANALYSIS gets de-identified exports only).
IDENTIFIED = frozenset({Role.ADMIN})

DATE_MESSAGE = "Enter the date as a calendar date, for example 2026-03-02."
DEIDENTIFIED_CHOICES = [
    SelectChoice("yes", "De-identified: pseudonyms, shifted dates, age bands; no names or MRNs"),
    SelectChoice("no", "Identified: database ids and MRNs (names in FHIR only); admins only"),
]


class IsoDateField(DateField):
    """A date as YYYY-MM-DD (what a date input sends), with our message when it is not one."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(DATE_MESSAGE) from exc


class ExportForm(FlaskForm):
    format = RadioField(
        "Format",
        choices=[SelectChoice(f.value, label) for f, label in exports.FORMAT_LABELS.items()],
        default=exports.ExportFormat.CSV_LONG.value,
        validators=[InputRequired("Choose a format.")],
    )
    deidentified = RadioField(
        "Identifiers",
        choices=DEIDENTIFIED_CHOICES,
        default="yes",
        validators=[InputRequired("Choose de-identified or identified.")],
    )
    clinic = SelectField("Clinic", validators=[Optional()])
    protocol = SelectField("Protocol", validators=[Optional()])
    start_from = IsoDateField("Courses starting on or after", validators=[Optional()])
    start_to = IsoDateField("Courses starting on or before", validators=[Optional()])
    submit = SubmitField("Download")

    def validate_start_to(self, field: DateField) -> None:
        if field.data and self.start_from.data and field.data < self.start_from.data:
            raise ValidationError("The end of the range is before its start.")


def _clinic_ids(allowed: frozenset[Role]) -> list[int]:
    return sorted({m.clinic_id for m in current_user.memberships if m.role in allowed})


def _form() -> ExportForm:
    """The form with the choices this user has: their clinics and those clinics' protocols."""
    clinics = roles.clinics(db.session)
    form = ExportForm()
    form.clinic.choices = [SelectChoice("", "All my clinics")] + [
        SelectChoice(str(c.id), c.name) for c in clinics
    ]
    names: dict[str, str] = {}
    for slug, name in db.session.execute(
        select(Protocol.slug, Protocol.name)
        .where(Protocol.clinic_id.in_([c.id for c in clinics]))
        .order_by(Protocol.slug, Protocol.version)
    ):
        names[slug] = name  # the newest version's name
    form.protocol.choices = [SelectChoice("", "All protocols")] + [
        SelectChoice(slug, f"{name} ({slug})") for slug, name in names.items()
    ]
    if not _clinic_ids(IDENTIFIED):
        form.deidentified.choices = DEIDENTIFIED_CHOICES[:1]
    return form


def _page(form: ExportForm, status: int = 200) -> tuple[str, int]:
    return render_template("care/exports/index.html", form=form), status


@bp.route("/exports")
@requires(ANALYSIS)
def exports_page() -> ResponseReturnValue:
    form = _form()
    return _page(form)


@bp.route("/exports/download", methods=["POST"])
@requires(ANALYSIS)
def download_export() -> ResponseReturnValue:
    form = _form()
    if not form.validate():
        return _page(form, 400)
    deidentified = form.deidentified.data == "yes"
    scope = _clinic_ids(ANALYSIS if deidentified else IDENTIFIED)
    if form.clinic.data:
        chosen = int(form.clinic.data)
        if chosen not in scope:
            form.form_errors.append(
                "Identified exports are for the clinic's admins: choose de-identified."
            )
            return _page(form, 403)
        scope = [chosen]
    spec = exports.ExportSpec(
        format=exports.ExportFormat(form.format.data),
        clinic_ids=tuple(scope),
        deidentified=deidentified,
        protocol=form.protocol.data or None,
        start_from=form.start_from.data,
        start_to=form.start_to.data,
    )
    try:
        ids = exports.identifiers_for(spec, current_app.config)
    except ExportRefused as exc:
        current_app.logger.error("export refused: %s", exc)
        form.form_errors.append(
            "De-identified exports are switched off until an administrator sets the "
            "pseudonym key (PROMS_EXPORT_PSEUDONYM_KEY; see docs/exports.md)."
        )
        return _page(form, 503)
    actor = roles.user()
    origin = request_info()
    clinic_id = scope[0] if len(scope) == 1 else None
    record_event(
        db.session,
        "export.started",
        actor=actor,
        clinic_id=clinic_id,
        origin=origin,
        detail=spec.filters(),
    )
    now = utcnow()
    engine = db.engine
    running = exports.export(engine, deployment_registry(db.session), spec, ids, now=now)
    actor_id = actor.id
    db.session.commit()  # the audit event is kept whatever happens to the download

    def body() -> Iterator[str]:
        # Runs as the server sends the response, after the request's context has ended: it
        # needs none (the export has its own connection, the last event its own session).
        yield from running.chunks
        with Session(engine) as session:
            record_event(
                session,
                "export.finished",
                actor=session.get(StaffUser, actor_id),
                clinic_id=clinic_id,
                origin=origin,
                detail={**spec.filters(), "rows": running.counter.rows},
            )
            session.commit()

    response = Response(body(), content_type=running.content_type)
    filename = running.filename(now.date())
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
