"""Protocol pages: the list, one version, the editor, and moving enrollments to a new version."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from proms.admin import protocol_editing as editing
from proms.admin.errors import AdminError
from proms.admin.forms.protocols import (
    InstallForm,
    MoveForm,
    NewProtocolForm,
    ProtocolForm,
    form_data,
)
from proms.admin.models import Clinic, Enrollment, EnrollmentStatus, Protocol
from proms.admin.services import BUNDLED_PROTOCOL, bundled_protocol, install_protocol
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import audit_change, request_info
from proms.auth.roles import COORDINATION, requires
from proms.auth.services import record_event
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow

# Problem fields whose form field has another name.
FORM_FIELD = {"reminder_offsets_days": "reminders"}


def _protocol(protocol_id: int) -> Protocol:
    protocol = db.session.get(Protocol, protocol_id)
    if protocol is None:
        abort(404)
    roles.check_clinic(protocol.clinic_id)
    return protocol


def _versions(protocol: Protocol) -> list[Protocol]:
    return list(
        db.session.scalars(
            select(Protocol)
            .where(Protocol.clinic_id == protocol.clinic_id, Protocol.slug == protocol.slug)
            .order_by(Protocol.version.desc())
        )
    )


def _active_counts(protocol_ids: Sequence[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(Enrollment.protocol_id, func.count(Enrollment.id))
        .where(
            Enrollment.protocol_id.in_(protocol_ids),
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
        .group_by(Enrollment.protocol_id)
    )
    return {protocol_id: count for protocol_id, count in rows}


def _audit_viewed(protocol: Protocol, enrollments: Sequence[Enrollment]) -> None:
    """Staff saw these patients' names on a protocol page."""
    record_event(
        db.session,
        "patient.list",
        actor=roles.user(),
        clinic_id=protocol.clinic_id,
        origin=request_info(),
        detail={"protocol_id": protocol.id, "patient_ids": [e.patient_id for e in enrollments]},
    )


# The list ------------------------------------------------------------------------------------


@bp.route("/protocols")
@requires(COORDINATION)
def protocols() -> ResponseReturnValue:
    clinics = roles.clinics(db.session)
    found = list(
        db.session.scalars(
            select(Protocol)
            .where(Protocol.clinic_id.in_([c.id for c in clinics]))
            .order_by(Protocol.slug, Protocol.version.desc())
        )
    )
    by_clinic: dict[int, list[Protocol]] = {c.id: [] for c in clinics}
    for protocol in found:
        by_clinic[protocol.clinic_id].append(protocol)
    return render_template(
        "admin/protocols/list.html",
        clinics=clinics,
        by_clinic=by_clinic,
        counts=_active_counts([p.id for p in found]),
        bundled=BUNDLED_PROTOCOL,
        install_form=InstallForm(),
    )


@bp.route("/clinics/<id:clinic_id>/protocols/bundled", methods=["POST"])
@requires(COORDINATION)
def install_bundled_protocol(clinic_id: int) -> ResponseReturnValue:
    """Give the clinic the bundled ketamine protocol (it may then edit it)."""
    clinic = roles.clinic_for(db.session, clinic_id)
    if not InstallForm().validate():
        abort(400)
    if editing.latest_version(db.session, clinic.id, BUNDLED_PROTOCOL) is not None:
        flash("The clinic already has this protocol.", "info")
        return redirect(url_for("admin.protocols"), 303)
    protocol = install_protocol(db.session, clinic, bundled_protocol(BUNDLED_PROTOCOL))
    protocol.created_by_id = roles.user().id
    db.session.flush()
    audit_change("protocol.created", clinic_id=clinic.id, after=editing.protocol_snapshot(protocol))
    db.session.commit()
    flash(f"{protocol.name} added to {clinic.name}.", "success")
    return redirect(url_for("admin.protocol", protocol_id=protocol.id), 303)


# One version ---------------------------------------------------------------------------------


@bp.route("/protocols/<id:protocol_id>")
@requires(COORDINATION)
def protocol(protocol_id: int) -> ResponseReturnValue:
    found = _protocol(protocol_id)
    versions = _versions(found)
    enrollments = list(
        db.session.scalars(
            select(Enrollment)
            .where(Enrollment.protocol_id == found.id)
            .order_by(Enrollment.anchor_on.desc(), Enrollment.id)
        )
    )
    _audit_viewed(found, enrollments)
    html = render_template(
        "admin/protocols/detail.html",
        protocol=found,
        versions=versions,
        latest=versions[0],
        counts=_active_counts([v.id for v in versions]),
        enrollments=enrollments,
        titles={(d.code, d.version): d.title for d in deployment_registry(db.session)},
    )
    db.session.commit()
    return html


# The editor ----------------------------------------------------------------------------------


def _render_editor(form: ProtocolForm, status: int = 200, **context: Any) -> ResponseReturnValue:
    registry = deployment_registry(db.session)
    return render_template(
        "admin/protocols/edit.html", form=form, definitions=list(registry), **context
    ), status


def _row_changed(form: ProtocolForm) -> bool:
    """Handle "Add a time point" and "Remove": True when the form only changed its rows."""
    removed = form.removed_row()
    if removed is not None:
        del form.timepoints.entries[removed]
        return True
    if not form.add_timepoint.data:
        return False
    if len(form.timepoints) >= editing.MAX_TIMEPOINTS:
        form.form_errors.append(f"A protocol has at most {editing.MAX_TIMEPOINTS} time points.")
    else:
        form.timepoints.append_entry()
    return True


def _summarize_field_errors(form: ProtocolForm) -> None:
    """Name each field error at the top, with its time point."""
    for name, field in form._fields.items():
        if name == "timepoints":
            for number, entry in enumerate(field, start=1):
                key = entry.form.key.data
                where = f"Time point {number}" + (f" ({key})" if key else "")
                for sub in entry.form:
                    form.form_errors.extend(f"{where}: {sub.label.text}: {m}" for m in sub.errors)
        elif field.errors and name != "csrf_token":
            form.form_errors.extend(f"{field.label.text}: {m}" for m in field.errors)
        elif field.errors:
            form.form_errors.append("The form expired: send it again.")


def _show_problems(form: ProtocolForm, problems: Sequence[editing.Problem]) -> None:
    """Every problem at the top (its time point named), and next to its field."""
    for problem in problems:
        form.form_errors.append(str(problem))
        name = FORM_FIELD.get(problem.field or "", problem.field or "")
        if problem.index is not None and problem.index < len(form.timepoints):
            target = form.timepoints[problem.index].form._fields.get(name)
        else:
            target = form._fields.get(name) if name != "timepoints" else None
        if target is not None:
            target.errors = [*target.errors, problem.message]


def _submit(
    form: ProtocolForm, slug: str, save: Callable[[editing.ProtocolSpec], Protocol]
) -> Protocol | None:
    """Validate and save; None when the form shows its problems."""
    if not form.validate():
        _summarize_field_errors(form)
        return None
    try:
        return save(form.spec(slug, deployment_registry(db.session)))
    except editing.InvalidProtocol as exc:
        _show_problems(form, exc.problems)
    except AdminError as exc:
        form.form_errors.append(str(exc))
    except IntegrityError:  # another coordinator saved the same version or slug just now
        db.session.rollback()
        form.form_errors.append(
            "Someone else saved this protocol at the same time: open it again to see their "
            "change, then make yours."
        )
    return None


@bp.route("/clinics/<id:clinic_id>/protocols/new", methods=["GET", "POST"])
@requires(COORDINATION)
def new_protocol(clinic_id: int) -> ResponseReturnValue:
    clinic = roles.clinic_for(db.session, clinic_id)
    form = NewProtocolForm()
    if request.method == "GET":
        form.timepoints.append_entry()
    context: dict[str, Any] = {"clinic": clinic, "protocol": None, "enrolled": 0}
    if request.method == "GET" or _row_changed(form):
        return _render_editor(form, **context)
    created = _submit(form, form.slug.data or "", lambda spec: _create(clinic, spec))
    if created is None:
        return _render_editor(form, 400, **context)
    db.session.commit()
    flash(f"Protocol {created.name} created.", "success")
    return redirect(url_for("admin.protocol", protocol_id=created.id), 303)


def _create(clinic: Clinic, spec: editing.ProtocolSpec) -> Protocol:
    protocol = editing.create_protocol(db.session, clinic, spec, roles.user())
    audit_change("protocol.created", clinic_id=clinic.id, after=editing.protocol_snapshot(protocol))
    return protocol


@bp.route("/protocols/<id:protocol_id>/edit", methods=["GET", "POST"])
@requires(COORDINATION)
def edit_protocol(protocol_id: int) -> ResponseReturnValue:
    found = _protocol(protocol_id)
    latest = editing.latest_version(db.session, found.clinic_id, found.slug)
    if latest is not None and latest.id != found.id:
        flash(f"Version {found.version} is retired: this is the latest version.", "info")
        return redirect(url_for("admin.edit_protocol", protocol_id=latest.id), 303)
    spec = editing.spec_of(found)
    form = ProtocolForm(data=form_data(spec))
    context: dict[str, Any] = {
        "clinic": found.clinic,
        "protocol": found,
        "enrolled": editing.enrollment_count(db.session, found),
    }
    if request.method == "GET" or _row_changed(form):
        return _render_editor(form, **context)
    saved = _submit(form, found.slug, lambda new: _save(found, new))
    if saved is None:
        return _render_editor(form, 400, **context)
    db.session.commit()
    if saved.id == found.id:
        flash(f"Saved version {saved.version} of {saved.name}.", "success")
    else:
        flash(
            f"Saved as version {saved.version}. Courses on version {found.version} stay on it "
            "until you move them.",
            "success",
        )
    return redirect(url_for("admin.protocol", protocol_id=saved.id), 303)


def _save(protocol: Protocol, spec: editing.ProtocolSpec) -> Protocol:
    before = editing.protocol_snapshot(protocol)
    saved = editing.save_edit(db.session, protocol, spec, roles.user())
    action = "protocol.updated" if saved.id == protocol.id else "protocol.versioned"
    audit_change(
        action,
        clinic_id=protocol.clinic_id,
        before=before,
        after=editing.protocol_snapshot(saved),
        detail={"protocol_id": saved.id}
        if saved.id == protocol.id
        else {"protocol_id": saved.id, "retired_protocol_id": protocol.id},
    )
    return saved


# Moving enrollments --------------------------------------------------------------------------


@bp.route("/protocols/<id:protocol_id>/move", methods=["GET", "POST"])
@requires(COORDINATION)
def move_version(protocol_id: int) -> ResponseReturnValue:
    """Preview (GET) and move (POST) a version's active courses to the latest version."""
    old = _protocol(protocol_id)
    target = editing.latest_version(db.session, old.clinic_id, old.slug)
    if target is None or target.id == old.id or not target.is_active:
        flash("There is no newer version to move to.", "info")
        return redirect(url_for("admin.protocol", protocol_id=old.id), 303)
    form = MoveForm()
    if request.method == "POST":
        if not form.validate():
            abort(400)
        chosen = _enrollments_to_move(old, form.enrollment.data)
        now = utcnow()
        try:
            moved = [
                (e, editing.move_to_version(db.session, e, target, now, roles.user()))
                for e in chosen
            ]
        except AdminError as exc:  # the move cannot be made: nothing is moved
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for("admin.move_version", protocol_id=old.id), 303)
        moved = [(e, changes) for e, changes in moved if changes]  # not moved already
        for enrollment, changes in moved:
            _audit_move(enrollment, old, target, changes)
        db.session.commit()
        flash(f"Moved {_courses(len(moved))} to version {target.version}.", "success")
        remaining = editing.enrollment_count(db.session, old, active_only=True)
        destination = old if remaining else target
        return redirect(url_for("admin.protocol", protocol_id=destination.id), 303)
    chosen = _enrollments_to_move(old, request.args.get("enrollment"))
    return _render_move(old, target, chosen, form)


def _courses(count: int) -> str:
    return f"{count} course" + ("" if count == 1 else "s")


def _enrollments_to_move(protocol: Protocol, raw: str | None) -> list[Enrollment]:
    """One active enrollment of the version (404 for any other id), or all of them."""
    if not raw:
        return editing.active_enrollments(db.session, protocol)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        abort(404)
    enrollment = db.session.get(Enrollment, int(raw))
    if (
        enrollment is None
        or enrollment.protocol_id != protocol.id
        or enrollment.status is not EnrollmentStatus.ACTIVE
    ):
        abort(404)
    return [enrollment]


def _render_move(
    old: Protocol,
    target: Protocol,
    chosen: Sequence[Enrollment],
    form: MoveForm,
) -> str:
    now = utcnow()
    previews = [(e, editing.version_move_preview(e, target, now)) for e in chosen]
    _audit_viewed(old, chosen)
    html = render_template(
        "admin/protocols/move.html",
        old=old,
        target=target,
        previews=previews,
        form=form,
        single=bool(request.args.get("enrollment")),
    )
    db.session.commit()
    return html


def _audit_move(
    enrollment: Enrollment,
    old: Protocol,
    target: Protocol,
    changes: Sequence[editing.VersionChange],
) -> None:
    by_action: dict[str, list[str]] = {}
    for change in changes:
        by_action.setdefault(change.action, []).append(change.key)
    audit_change(
        "enrollment.moved",
        clinic_id=old.clinic_id,
        patient_id=enrollment.patient_id,
        before={"protocol_id": old.id, "version": old.version},
        after={"protocol_id": target.id, "version": target.version},
        detail={"enrollment_id": enrollment.id, "time_points": by_action},
    )
