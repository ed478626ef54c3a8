"""Care-team pages: patient list and patient detail."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from proms.admin.instruments import deployment_registry
from proms.auth.audit import audit_patient_view, request_info
from proms.auth.scoping import patient_or_404, visible_patients
from proms.auth.services import record_event
from proms.care import services
from proms.care.forms import PatientPageForm, PatientSearchForm
from proms.db import db, utcnow

bp = Blueprint("care", __name__)


@bp.route("/patients", methods=["GET", "POST"])
@login_required
def patients() -> ResponseReturnValue:
    if request.method == "POST":
        form = PatientSearchForm()
        if not form.validate():
            form.form_errors.extend(form.page.errors)  # a hidden field has nowhere else to say it
            return render_template("care/patients.html", form=form, page=None), 400
        search, page_number = form.q.data or "", int(form.page.data or 1)
    else:
        page_form = PatientPageForm(request.args)
        form = PatientSearchForm(formdata=None)
        if not page_form.validate():
            form.form_errors.extend(page_form.page.errors)
            return render_template("care/patients.html", form=form, page=None), 400
        search, page_number = "", page_form.page.data or 1

    page = db.paginate(
        services.patient_list(visible_patients(current_user), search=search),
        page=page_number,
        per_page=current_app.config["PATIENTS_PER_PAGE"],
        error_out=False,
    )
    shown = [row.id for row in page.items]
    record_event(
        db.session,
        "patient.list",
        actor=current_user._get_current_object(),
        origin=request_info(),
        detail={"page": page.page, "searched": bool(search), "patient_ids": shown},
    )
    summaries = services.patient_summaries(db.session, shown, utcnow())
    html = render_template(
        "care/patients.html", form=form, page=page, search=search, summaries=summaries
    )
    db.session.commit()
    return html


@bp.route("/instruments")
@login_required
def instruments() -> ResponseReturnValue:
    """Which questionnaires this deployment has, where their wording and tables come from."""
    registry = deployment_registry(db.session)
    production = current_app.config["ENV"] == "production"
    return render_template(
        "care/instruments.html", definitions=list(registry), production=production
    )


@bp.route("/patients/<id:patient_id>")
@login_required
def patient(patient_id: int) -> ResponseReturnValue:
    found = patient_or_404(db.session, current_user, patient_id)
    audit_patient_view("patient.view", found)
    html = render_template("care/patient.html", patient=found, now=utcnow())
    db.session.commit()
    return html
