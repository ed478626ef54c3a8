"""Clinic pages for admins: their clinics, one clinic's settings and staff, the settings form."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from proms.admin import staff
from proms.admin.forms.clinics import ClinicForm, time_zone_names
from proms.admin.models import Clinic
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import audit_change, snapshot
from proms.auth.roles import ADMINISTRATION, requires
from proms.db import db, utcnow
from proms.templating import phone

CLINIC_FIELDS = (
    "name",
    "time_zone",
    "contact_phone",
    "contact_email",
    "show_patient_scores",
    "quiet_hours_start",
    "quiet_hours_end",
    "baseline_reuse_days",
    "alert_email",
    "next_steps_en",
    "next_steps_es",
    "requires_mfa",
)


@bp.route("/clinics")
@requires(ADMINISTRATION)
def clinics() -> ResponseReturnValue:
    return render_template("admin/clinics/list.html", clinics=roles.clinics(db.session))


@bp.route("/clinics/<id:clinic_id>")
@requires(ADMINISTRATION)
def clinic(clinic_id: int) -> ResponseReturnValue:
    found = roles.clinic_for(db.session, clinic_id)
    members = staff.members(db.session, found, now=utcnow())
    return render_template("admin/clinics/clinic.html", clinic=found, members=members)


def _edit_page(clinic: Clinic, form: ClinicForm) -> str:
    return render_template(
        "admin/clinics/edit.html", clinic=clinic, form=form, time_zones=time_zone_names()
    )


@bp.route("/clinics/<id:clinic_id>/edit", methods=["GET", "POST"])
@requires(ADMINISTRATION)
def edit_clinic(clinic_id: int) -> ResponseReturnValue:
    found = roles.clinic_for(db.session, clinic_id)
    if request.method == "GET":
        # The number as people write it; saving stores it as E.164 again.
        form = ClinicForm(obj=found)
        form.contact_phone.data = phone(found.contact_phone, found.time_zone)
        return _edit_page(found, form)
    form = ClinicForm()
    if not form.validate():
        return _edit_page(found, form), 400
    before = snapshot(found, CLINIC_FIELDS)
    for name in CLINIC_FIELDS:
        # Empty optional text (phone, email) is stored as no value, not as "".
        setattr(found, name, getattr(form, name).data if getattr(form, name).data != "" else None)
    audit_change(
        "clinic.updated", clinic_id=found.id, before=before, after=snapshot(found, CLINIC_FIELDS)
    )
    db.session.commit()
    flash("The clinic's settings are saved.", "info")
    return redirect(url_for("admin.clinic", clinic_id=found.id), 303)
