"""Care-team pages: patient list, patient page (trends, answers, notes), visit summary."""

from __future__ import annotations

import segno
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import Markup

from proms.admin.models import Patient
from proms.auth import roles
from proms.auth.audit import audit_change, audit_patient_view, request_info
from proms.auth.roles import ANY_STAFF, CARE_TEAM, COORDINATION, requires
from proms.auth.scoping import visible_clinic_ids
from proms.auth.services import record_event
from proms.care import patient_page, services
from proms.care.forms import LinkForm, NoteForm, PatientPageForm, PatientSearchForm
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.instruments.errors import NotSendableError
from proms.scheduling.history import recent_messages
from proms.surveys.links import link_max_age, link_url, open_assessment_of
from proms.surveys.services import NoOpenQuestionnaire, make_staff_link

bp = Blueprint("care", __name__)


@bp.route("/patients", methods=["GET", "POST"])
@requires(CARE_TEAM)
def patients() -> ResponseReturnValue:
    if request.method == "POST":
        form = PatientSearchForm()
        if not form.validate():
            form.form_errors.extend(form.page.errors)  # a hidden field has nowhere else to say it
            return render_template("care/patients.html", form=form, page=None), 400
        search, page_number = form.q.data or "", int(form.page.data or 1)
        filter_key = form.filter.data or ""
    else:
        page_form = PatientPageForm(request.args)
        form = PatientSearchForm(formdata=None, filter=request.args.get("filter", ""))
        if not page_form.validate():
            form.form_errors.extend(page_form.page.errors + page_form.filter.errors)
            return render_template("care/patients.html", form=form, page=None), 400
        search, page_number = "", page_form.page.data or 1
        filter_key = page_form.filter.data or ""

    clinic_ids = visible_clinic_ids(current_user, CARE_TEAM)
    page = services.patient_page(
        db.session,
        clinic_ids,
        search=search,
        filter_key=filter_key,
        now=utcnow(),
        page=page_number,
        per_page=current_app.config["PATIENTS_PER_PAGE"],
    )
    if page_number > 1 and not page.items:
        abort(404)  # past the last page: not an empty list that looks like "no patients"
    shown = [row.id for row in page.items]
    record_event(
        db.session,
        "patient.list",
        actor=current_user._get_current_object(),
        origin=request_info(),
        detail={
            "page": page.page,
            "searched": bool(search),
            "filter": filter_key,
            "patient_ids": shown,
        },
    )
    summaries = services.patient_summaries(db.session, shown, utcnow())
    html = render_template(
        "care/patients.html",
        form=form,
        page=page,
        search=search,
        filter_key=filter_key,
        filters=services.FILTERS,
        summaries=summaries,
        can_enroll=any(m.role in COORDINATION for m in current_user.memberships),
        show_clinic=len(clinic_ids) > 1,
        **patient_page.template_helpers(),
    )
    db.session.commit()
    return html


@bp.route("/instruments")
@requires(ANY_STAFF)
def instruments() -> ResponseReturnValue:
    """Which questionnaires this deployment has, where their wording and tables come from."""
    registry = deployment_registry(db.session)
    production = current_app.config["ENV"] == "production"
    return render_template(
        "care/instruments.html",
        definitions=list(registry),
        production=production,
        table_labels=TABLE_STATUS_LABELS,
    )


# The reference data's table statuses, in words that wrap on a phone.
TABLE_STATUS_LABELS = {
    "CONFIRMED": "confirmed",
    "UNCONFIRMED_COMPUTED": "unconfirmed (computed)",
    "UNCONFIRMED_SINGLE_TRANSCRIPTION": "unconfirmed (one transcription)",
    "T_CONFIRMED_SE_COMPUTED": "T confirmed, SE computed",
}


@bp.route("/patients/<id:patient_id>")
@requires(CARE_TEAM)
def patient(patient_id: int) -> ResponseReturnValue:
    found = roles.patient_for(db.session, patient_id)
    audit_patient_view("patient.view", found)
    html = _patient_page(found, NoteForm(formdata=None))
    db.session.commit()
    return html


def _patient_page(found: Patient, note_form: NoteForm) -> str:
    now = utcnow()
    record = patient_page.patient_record(db.session, deployment_registry(db.session), found, now)
    return render_template(
        "care/patient.html",
        patient=found,
        record=record,
        alerts=record.alerts,
        now=now,
        open_assessment=open_assessment_of(db.session, found, now),
        can_make_links=_can_make_links(found),
        coordinates=_can_make_links(found),
        link_form=LinkForm(),
        note_form=note_form,
        messages=recent_messages(db.session, found, now),
        **patient_page.template_helpers(),
    )


@bp.route("/patients/<id:patient_id>/notes", methods=["POST"])
@requires(CARE_TEAM)
def add_note(patient_id: int) -> ResponseReturnValue:
    """Append a staff note to the patient's record."""
    found = roles.patient_for(db.session, patient_id)
    form = NoteForm()
    if not form.validate():
        audit_patient_view("patient.view", found)
        html = _patient_page(found, form)
        db.session.commit()
        return html, 400
    note = patient_page.add_note(
        db.session, found, current_user._get_current_object(), form.text.data or ""
    )
    audit_change(
        "note.added",
        clinic_id=found.clinic_id,
        patient_id=found.id,
        after={"note_id": note.id, "length": len(note.text)},
    )
    db.session.commit()
    flash("Note added.", "info")
    return redirect(url_for("care.patient", patient_id=found.id, _anchor="notes"), 303)


@bp.route("/patients/<id:patient_id>/summary")
@requires(CARE_TEAM)
def summary(patient_id: int) -> ResponseReturnValue:
    """A one-page summary for the visit, to print or save as PDF from the browser."""
    found = roles.patient_for(db.session, patient_id)
    audit_patient_view("patient.summary", found)
    now = utcnow()
    record = patient_page.patient_record(db.session, deployment_registry(db.session), found, now)
    html = render_template(
        "care/summary.html",
        patient=found,
        record=record,
        now=now,
        **patient_page.template_helpers(),
    )
    db.session.commit()
    return html


QR_NAME = "QR code of the patient link"


def qr_svg(url: str) -> Markup:
    """The link as a QR code, inline SVG made on the server (no script, nothing fetched)."""
    svg = segno.make(url, error="m").svg_inline(scale=5, border=2, title=QR_NAME)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{QR_NAME}" ', 1)
    return Markup(svg)  # noqa: S704 - segno writes path data from the URL's bits and our title


def _can_make_links(patient: Patient) -> bool:
    return bool(current_user.roles_in(patient.clinic_id) & COORDINATION)


@bp.route("/patients/<id:patient_id>/link", methods=["POST"])
@requires(COORDINATION)
def make_link(patient_id: int) -> ResponseReturnValue:
    """A new link to the patient's open questionnaire, shown once, for a call by phone."""
    found = roles.patient_for(db.session, patient_id)
    try:
        assessment, raw = make_staff_link(
            db.session,
            deployment_registry(db.session),
            found,
            now=utcnow(),
            env=current_app.config["ENV"],
            max_age=link_max_age(current_app.config),
            created_by=current_user._get_current_object(),
        )
    except (NoOpenQuestionnaire, NotSendableError) as exc:
        flash(str(exc), "info" if isinstance(exc, NoOpenQuestionnaire) else "error")
        return redirect(url_for("care.patient", patient_id=found.id), 303)
    audit_patient_view("link.created", found, {"assessment_id": assessment.id})
    url = link_url(current_app.config, raw)
    html = render_template("care/link.html", patient=found, url=url, qr_svg=qr_svg(url))
    db.session.commit()
    return html
