"""The audit log page: an admin reads who saw or changed what at their clinic, and when."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue

from proms.admin import audit
from proms.admin.forms.audit import AuditFilterForm
from proms.admin.models import Clinic, Patient
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import request_info
from proms.auth.roles import ADMINISTRATION, requires
from proms.auth.services import record_event
from proms.db import db

TEMPLATE = "admin/audit/log.html"


@bp.route("/audit")
@requires(ADMINISTRATION)
def audit_log() -> ResponseReturnValue:
    """One clinic's audit events, newest first; `?patient=<id>` (a link from the patient's
    page) shows the events about that patient at the patient's clinic."""
    form = AuditFilterForm(request.args)
    clinics = roles.clinics(db.session)
    patient = _patient(form)
    clinic = _clinic(form, clinics, patient)
    form.clinic.data = clinic.id
    staff = audit.staff_of(db.session, clinic)
    form.set_places(
        [(c.id, c.name) for c in clinics], [(user.id, user.full_name) for user in staff]
    )
    page: dict[str, Any] = {"form": form, "clinic": clinic, "clinics": clinics, "patient": patient}
    if not form.validate():
        # Fields with no control of their own on the page say what is wrong at the top.
        hidden = [form.page, form.patient] + ([form.clinic] if len(clinics) == 1 else [])
        form.form_errors.extend(error for f in hidden for error in f.errors)
        return render_template(TEMPLATE, events=None, **page), 400
    wanted = audit.AuditFilter(
        clinic=clinic,
        action=form.action.data or "",
        actor_id=form.staff.data,
        patient_id=patient.id if patient else None,
        from_on=form.from_on.data,
        to_on=form.to_on.data,
        upto_id=form.upto.data,
        staff_ids=[user.id for user in staff],
    )
    number = form.page.data or 1
    events = audit.events(db.session, wanted, page=number)
    if number > 1 and not events.rows:
        abort(404)  # past the last page: not an empty log that looks like "nothing happened"
    # Read the log, then record the reading: the page does not list its own visit.
    reading = record_event(
        db.session,
        "audit.view",
        actor=roles.user(),
        clinic_id=clinic.id,
        patient_id=wanted.patient_id,
        origin=request_info(),
        detail={**wanted.described(), "page": number, "events": len(events.rows)},
    )
    db.session.flush()  # the reading's id: the next pages show what was there before it
    link_args = _link_args(form, clinics)
    pager_args = {**link_args, "upto": form.upto.data or reading.id - 1}
    html = render_template(
        TEMPLATE, events=events, link_args=link_args, pager_args=pager_args, **page
    )
    db.session.commit()
    return html


def _patient(form: AuditFilterForm) -> Patient | None:
    """The patient filter's patient: 404 outside the user's clinics, 403 where not an admin."""
    wanted = form.patient.data
    if wanted is None or not 1 <= wanted < 2**31:
        return None  # none, or a number the form's validation refuses
    return roles.patient_for(db.session, wanted)


def _clinic(form: AuditFilterForm, clinics: list[Clinic], patient: Patient | None) -> Clinic:
    """The patient's clinic, else the chosen one (checked), else the first by name."""
    if patient is not None:
        return patient.clinic
    if form.clinic.data is not None:
        return roles.clinic_for(db.session, form.clinic.data)
    return clinics[0]


def _link_args(form: AuditFilterForm, clinics: list[Clinic]) -> dict[str, Any]:
    """The filters in use, for the pager's links (ids and dates only, never a name)."""
    args = {
        "clinic": form.clinic.data if len(clinics) > 1 and not form.patient.data else None,
        "action": form.action.data or None,
        "staff": form.staff.data,
        "patient": form.patient.data,
        "from_on": form.from_on.data.isoformat() if form.from_on.data else None,
        "to_on": form.to_on.data.isoformat() if form.to_on.data else None,
    }
    return {key: value for key, value in args.items() if value is not None}
