"""The enrollment import page: upload a CSV file, read the preview, confirm.

The server keeps nothing between the preview and the import: the confirmation form carries the
file's text in a field signed with the app's secret key (valid for an hour, for the user and
clinic it was checked for), and confirming checks the whole file again, so what is imported is
checked against the database as it is then.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from proms.admin import importer, patients
from proms.admin.forms.imports import ConfirmForm, UploadForm
from proms.admin.forms.patients import clinic_choices
from proms.admin.models import Clinic
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import request_info
from proms.auth.roles import COORDINATION, requires
from proms.db import db, utcnow

UPLOAD = "admin/imports/upload.html"
PREVIEW = "admin/imports/preview.html"
MAX_AGE_SECONDS = 3600
TOO_LARGE = (
    f"The file is larger than {importer.MAX_BYTES // (1024 * 1024)} MB: "
    "split it into smaller files."
)
STALE = "This preview is more than an hour old or was changed: upload the file again."


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="import")


@bp.route("/import", methods=["GET", "POST"])
@requires(COORDINATION)
def import_enrollments() -> ResponseReturnValue:
    form = UploadForm()
    clinics = roles.clinics(db.session)
    form.clinic_id.choices = clinic_choices(clinics)
    if form.clinic_id.data is None:  # one clinic: no select on the page
        form.clinic_id.data = clinics[0].id
    if "payload" in request.form:
        return _confirm(form)
    if not form.is_submitted():
        return _upload_page(form)
    if not form.validate():
        return _upload_page(form, 400)
    content = form.file.data.stream.read(importer.MAX_BYTES + 1)
    if len(content) > importer.MAX_BYTES:
        form.file.errors = [TOO_LARGE]
        return _upload_page(form, 413)
    clinic = roles.clinic_for(db.session, form.clinic_id.data)
    plan = _check(clinic, content)
    if not plan.is_clean:
        return render_template(PREVIEW, plan=plan, confirm=None), 400
    payload = {"clinic": clinic.id, "user": roles.user().id, "csv": importer.decode(content)}
    confirm = ConfirmForm(formdata=None, payload=_signer().dumps(payload))
    return render_template(PREVIEW, plan=plan, confirm=confirm)


def _upload_page(form: UploadForm, status: int = 200) -> ResponseReturnValue:
    several = len(form.clinic_id.choices or []) > 1
    return render_template(UPLOAD, form=form, several=several), status


def _check(clinic: Clinic, content: bytes) -> importer.ImportPlan:
    today = patients.clinic_today(clinic, utcnow())
    return importer.check_file(db.session, clinic, content, today=today)


def _confirm(upload: UploadForm) -> ResponseReturnValue:
    """Import the file of a clean preview, after checking all of it again."""
    form = ConfirmForm()
    payload = _unsigned(form)
    if payload is None:
        upload.form_errors.append(STALE)
        return _upload_page(upload, 400)
    clinic = roles.clinic_for(db.session, payload["clinic"])
    plan = _check(clinic, payload["csv"].encode("utf-8"))
    if not plan.is_clean:  # the database changed since the preview
        return render_template(PREVIEW, plan=plan, confirm=None), 400
    importer.apply(db.session, plan, now=utcnow(), user=roles.user())
    importer.audit(db.session, plan, actor=roles.user(), origin=request_info())
    db.session.commit()
    flash(f"Imported {plan.summary}", "success")
    return redirect(url_for("admin.import_enrollments"), 303)


def _unsigned(form: ConfirmForm) -> dict[str, Any] | None:
    """The preview's file, if the form is valid, the signature good and fresh, and ours."""
    if not form.validate():
        return None
    try:
        payload = _signer().loads(form.payload.data, max_age=MAX_AGE_SECONDS)
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(payload, dict) or payload.get("user") != roles.user().id:
        return None
    clinic = payload.get("clinic")
    if (
        not isinstance(clinic, int)
        or not 1 <= clinic < 2**31
        or not isinstance(payload.get("csv"), str)
    ):
        return None
    return payload
