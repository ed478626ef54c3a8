"""Patient pages: add, edit, opt out of messages and back in."""

from __future__ import annotations

from dataclasses import asdict

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from proms.admin import enrollment, patients
from proms.admin.errors import AdminError
from proms.admin.forms.patients import OptInForm, OptOutForm, PatientForm, clinic_choices
from proms.admin.models import Patient
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import audit_change, audit_patient_view, snapshot
from proms.auth.roles import COORDINATION, requires
from proms.db import db, utcnow

FORM = "admin/patients/form.html"


def _form_page(
    form: PatientForm, patient: Patient | None, status: int = 200
) -> ResponseReturnValue:
    several = len(form.clinic_id.choices or []) > 1
    return render_template(FORM, form=form, patient=patient, several=several), status


def _saved(form: PatientForm) -> bool:
    """Commit; False (with the message on the MRN) when a concurrent save took the MRN."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        form.show_errors({"mrn": "Another patient was just given this MRN: check it."})
        return False
    return True


@bp.route("/patients/new", methods=["GET", "POST"])
@requires(COORDINATION)
def new_patient() -> ResponseReturnValue:
    clinics = roles.clinics(db.session)
    form = PatientForm()
    form.clinic_id.choices = clinic_choices(clinics)
    if form.clinic_id.data is None:  # one clinic: no select on the page
        form.clinic_id.data = clinics[0].id
    if not form.is_submitted():
        form.time_zone.data = clinics[0].time_zone if len(clinics) == 1 else ""
        return _form_page(form, None)
    if not form.validate():
        return _form_page(form, None, 400)
    clinic = roles.clinic_for(db.session, form.clinic_id.data)
    try:
        patient = patients.create_patient(
            db.session, clinic, form.details(), today=patients.clinic_today(clinic, utcnow())
        )
    except patients.PatientErrors as exc:
        form.show_errors(exc.errors)
        return _form_page(form, None, 400)
    audit_change(
        "patient.created",
        clinic_id=clinic.id,
        patient_id=patient.id,
        after=snapshot(patient, patients.AUDIT_FIELDS),
    )
    if not _saved(form):
        return _form_page(form, None, 400)
    flash(f"Added {patient.display_name}.", "success")
    return redirect(url_for("care.patient", patient_id=patient.id), 303)


@bp.route("/patients/<id:patient_id>/edit", methods=["GET", "POST"])
@requires(COORDINATION)
def edit_patient(patient_id: int) -> ResponseReturnValue:
    patient = roles.patient_for(db.session, patient_id)
    form = PatientForm(data=asdict(patients.details_of(patient)))
    form.clinic_id.choices = clinic_choices([patient.clinic])
    form.clinic_id.data = patient.clinic_id  # a patient stays in their clinic
    if not form.is_submitted():
        audit_patient_view("patient.view", patient, {"page": "edit"})
        page = _form_page(form, patient)
        db.session.commit()
        return page
    if not form.validate():
        return _form_page(form, patient, 400)
    before = snapshot(patient, patients.AUDIT_FIELDS)
    try:
        patients.update_patient(db.session, patient, form.details(), now=utcnow())
    except patients.PatientErrors as exc:
        form.show_errors(exc.errors)
        return _form_page(form, patient, 400)
    after = snapshot(patient, patients.AUDIT_FIELDS)
    if after == before:
        flash("Nothing changed.", "info")
        return redirect(url_for("care.patient", patient_id=patient.id), 303)
    audit_change(
        "patient.updated",
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        before=before,
        after=after,
    )
    if not _saved(form):
        return _form_page(form, patient, 400)
    flash(f"Saved {patient.display_name}'s details.", "success")
    return redirect(url_for("care.patient", patient_id=patient.id), 303)


@bp.route("/patients/<id:patient_id>/opt-out", methods=["POST"])
@requires(COORDINATION)
def opt_out(patient_id: int) -> ResponseReturnValue:
    """Stop every message to the patient, with the reason; planned ones are cancelled."""
    patient = roles.patient_for(db.session, patient_id)
    form = OptOutForm()
    if not form.validate():
        return _contact_page(patient, form, 400)
    before = snapshot(patient, patients.OPT_OUT_FIELDS)
    try:
        cancelled = enrollment.opt_out(
            db.session, patient, now=utcnow(), reason=form.reason.data or "", by=roles.user()
        )
    except AdminError as exc:  # already opted out (in another tab)
        flash(str(exc), "error")
        return redirect(url_for("care.patient", patient_id=patient.id), 303)
    _audit_opt(patient, "patient.opted_out", before, cancelled)
    db.session.commit()
    flash(f"Opted out: {_messages(cancelled)} cancelled.", "success")
    return redirect(url_for("care.patient", patient_id=patient.id), 303)


@bp.route("/patients/<id:patient_id>/opt-in", methods=["POST"])
@requires(COORDINATION)
def opt_in(patient_id: int) -> ResponseReturnValue:
    """Messages again: the planned ones still to come go back to pending."""
    patient = roles.patient_for(db.session, patient_id)
    form = OptInForm()
    if not form.validate():
        return _contact_page(patient, OptOutForm(formdata=None), 400)
    before = snapshot(patient, patients.OPT_OUT_FIELDS)
    try:
        restored = enrollment.opt_in(db.session, patient, now=utcnow())
    except AdminError as exc:
        flash(str(exc), "error")
        return redirect(url_for("care.patient", patient_id=patient.id), 303)
    _audit_opt(patient, "patient.opted_in", before, restored)
    db.session.commit()
    flash(f"Opted back in: {_messages(restored)} planned again.", "success")
    return redirect(url_for("care.patient", patient_id=patient.id), 303)


def _messages(count: int) -> str:
    return f"{count} planned message{'' if count == 1 else 's'}"


def _audit_opt(patient: Patient, action: str, before: dict[str, object], count: int) -> None:
    audit_change(
        action,
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        before=before,
        after=snapshot(patient, patients.OPT_OUT_FIELDS),
        detail={"messages": count},
    )


def _contact_page(patient: Patient, form: OptOutForm, status: int) -> ResponseReturnValue:
    """The opt-out form again with its message (the patient page is not this blueprint's)."""
    return render_template("admin/patients/contact.html", patient=patient, form=form), status
