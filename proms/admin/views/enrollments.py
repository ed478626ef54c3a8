"""Enrollment pages: enroll with a preview, move the anchor, withdraw, infusion days, paper
answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import contains_eager
from wtforms.fields.choices import SelectChoice

from proms.admin import courses, paper
from proms.admin import enrollment as enrollments
from proms.admin.errors import AdminError
from proms.admin.forms.enrollments import (
    AnchorForm,
    EnrollForm,
    SessionForm,
    WithdrawForm,
    paper_form_class,
)
from proms.admin.messages import send_now_refusal
from proms.admin.models import Enrollment, Patient, Protocol
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import audit_change, audit_patient_view, snapshot
from proms.auth.roles import COORDINATION, requires
from proms.db import db, utcnow
from proms.scheduling.history import describe_message
from proms.scheduling.models import Assessment, Notification
from proms.scheduling.rules import SKIP_LABELS

# A day 0 further than this from today is allowed (a course entered late) but questioned.
FAR_AWAY = dt.timedelta(days=180)
ENROLLMENT_FIELDS = ("protocol_id", "anchor_on", "status", "withdrawal_reason", "baseline_from_id")
SESSION_FIELDS = ("status", "missed_reason", "side_effects", "notes")


def _enrollment_for(enrollment_id: int) -> Enrollment:
    """The enrollment, if the current user holds the view's role in its patient's clinic."""
    found = db.session.get(Enrollment, enrollment_id)
    if found is None:
        abort(404)
    roles.check_clinic(found.patient.clinic_id)
    return found


def _audit_course(
    action: str, found: Enrollment, before: dict[str, Any], after: dict[str, Any], **detail: Any
) -> None:
    """One audit event for a change to a course, with the fields it changed."""
    audit_change(
        action,
        clinic_id=found.patient.clinic_id,
        patient_id=found.patient_id,
        before=before,
        after=after,
        detail={"enrollment_id": found.id, **detail},
    )


def _protocol_choices(patient: Patient) -> list[SelectChoice]:
    rows = db.session.scalars(
        select(Protocol)
        .where(Protocol.clinic_id == patient.clinic_id, Protocol.is_active)
        .order_by(Protocol.name, Protocol.version)
    )
    return [SelectChoice(p.id, f"{p.name} (version {p.version})") for p in rows]


def _baseline_choices(patient: Patient, form: EnrollForm) -> list[Enrollment]:
    anchor = form.anchor_on.data if form.anchor_on.data else utcnow().date()
    reusable = enrollments.reusable_baselines(db.session, patient, anchor)
    form.baseline.choices = [SelectChoice("own", "Its own baseline questionnaire")] + [
        SelectChoice(
            f"reuse:{e.id}", f"Reuse the baseline of the course from {e.anchor_on.isoformat()}"
        )
        for e in reusable
    ]
    return reusable


@bp.route("/patients/<id:patient_id>/enroll", methods=["GET", "POST"])
@requires(COORDINATION)
def enroll(patient_id: int) -> ResponseReturnValue:
    patient = roles.patient_for(db.session, patient_id)
    form = EnrollForm()
    form.protocol.choices = _protocol_choices(patient)
    reusable = _baseline_choices(patient, form)
    context: dict[str, Any] = {"patient": patient, "form": form, "reusable": reusable}
    if request.method == "GET":
        audit_patient_view("patient.enroll_form", patient)
        html = render_template("admin/enrollments/enroll.html", **context)
        db.session.commit()
        return html
    if not form.validate():
        return render_template("admin/enrollments/enroll.html", **context), 400
    protocol = db.session.get(Protocol, form.protocol.data)
    assert protocol is not None  # a valid choice
    baseline_from = _reused(form.baseline.data, reusable)
    now = utcnow()
    try:
        plan = enrollments.plan_enrollment(
            patient, protocol, form.anchor_on.data, now, baseline_from=baseline_from
        )
    except AdminError as exc:
        form.form_errors.append(str(exc))
        return render_template("admin/enrollments/enroll.html", **context), 400
    if not form.save.data:
        far = abs(form.anchor_on.data - now.date()) > FAR_AWAY
        return render_template(
            "admin/enrollments/enroll.html",
            plan=plan,
            skip_labels=SKIP_LABELS,
            far_away=far,
            **context,
        )
    try:
        created = enrollments.enroll(
            db.session,
            patient,
            protocol,
            form.anchor_on.data,
            now=now,
            created_by=roles.user(),
            baseline_from=baseline_from,
        )
    except AdminError as exc:  # enrolled a moment ago (a double click): nothing new is made
        db.session.rollback()
        flash(str(exc), "info")
        return redirect(url_for("care.patient", patient_id=patient_id), 303)
    audit_change(
        "enrollment.created",
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        after=snapshot(created, ENROLLMENT_FIELDS),
        detail={"enrollment_id": created.id, "messages": len(plan.sendable)},
    )
    db.session.commit()
    flash(
        f"Enrolled in {protocol.name} from {created.anchor_on.isoformat()}: "
        f"{len(plan.windows)} questionnaires and {len(plan.sendable)} messages planned.",
        "success",
    )
    return redirect(url_for("admin.enrollment", enrollment_id=created.id), 303)


def _reused(choice: str, reusable: list[Enrollment]) -> Enrollment | None:
    if not choice.startswith("reuse:"):
        return None
    wanted = choice.removeprefix("reuse:")
    return next((e for e in reusable if str(e.id) == wanted), None)


@bp.route("/enrollments/<id:enrollment_id>")
@requires(COORDINATION)
def enrollment(enrollment_id: int) -> ResponseReturnValue:
    return _course_page(_enrollment_for(enrollment_id))


def _course_page(
    found: Enrollment, forms: dict[int, SessionForm] | None = None, status: int = 200
) -> ResponseReturnValue:
    """The course: questionnaires, infusion days (forms), its messages, actions."""
    now = utcnow()
    messages = db.session.scalars(
        select(Notification)
        .join(Assessment, Notification.assessment_id == Assessment.id)
        .where(Assessment.enrollment_id == found.id)
        .options(contains_eager(Notification.assessment).joinedload(Assessment.timepoint))
        .order_by(Notification.send_after, Notification.id)
    ).all()
    days = courses.course_days(found)
    session_forms = {day.day_number: _session_form(day) for day in days}
    session_forms.update(forms or {})
    _audit_page("course", found.patient, enrollment_id=found.id)
    html = render_template(
        "admin/enrollments/enrollment.html",
        enrollment=found,
        patient=found.patient,
        now=now,
        messages=[describe_message(row, now) for row in messages],
        sendable_now={row.id for row in messages if send_now_refusal(row, now) is None},
        days=days,
        session_forms=session_forms,
        side_effects=courses.SIDE_EFFECTS,
    )
    db.session.commit()
    return html, status


def _audit_page(page: str, patient: Patient, **ids: int) -> None:
    """A page of the patient's course is shown: an audit event, committed with the page."""
    audit_patient_view("patient.view", patient, {"page": page, **ids})


def _shown(template: str, page: str, context: dict[str, Any]) -> ResponseReturnValue:
    """Render a page of the patient's course (`context["patient"]`) and record that it was seen."""
    ids = {"enrollment_id": context["enrollment"].id} if "enrollment" in context else {}
    if "assessment" in context:
        ids["assessment_id"] = context["assessment"].id
    _audit_page(page, context["patient"], **ids)
    html = render_template(template, **context)
    db.session.commit()
    return html


def _session_form(day: Any, formdata: Any = None) -> SessionForm:
    form = SessionForm(formdata=formdata, prefix=f"day{day.day_number}")
    if formdata is None and day.status.value != "planned":
        form.outcome.data = "given" if day.status.value == "done" else "missed"
        form.missed_reason.data = day.missed_reason or ""
        form.side_effects.data = list(day.side_effects)
        form.notes.data = day.notes
    return form


@bp.route("/enrollments/<id:enrollment_id>/days/<int:day>", methods=["POST"])
@requires(COORDINATION)
def record_day(enrollment_id: int, day: int) -> ResponseReturnValue:
    found = _enrollment_for(enrollment_id)
    enrollments.lock(db.session, found)  # two saves of one day: one after the other
    db.session.refresh(found, ["sessions"])
    days = {d.day_number: d for d in courses.course_days(found)}
    if day not in days:
        abort(404)
    form = _session_form(days[day], formdata=request.form)
    error = None
    if form.validate():
        before = snapshot(days[day], SESSION_FIELDS) if days[day].id else {}
        try:
            recorded = courses.record_session(
                found,
                day,
                given=form.outcome.data == "given",
                missed_reason=form.missed_reason.data or "",
                side_effects=form.side_effects.data or [],
                notes=form.notes.data or "",
                now=utcnow(),
                by=roles.user(),
            )
        except AdminError as exc:
            error = str(exc)
        else:
            db.session.flush()
            _audit_course(
                "treatment_session.recorded",
                found,
                before,
                snapshot(recorded, SESSION_FIELDS),
                day=day,
            )
            db.session.commit()
            flash(f"Day {day} recorded as {form.outcome.data}.", "success")
            return redirect(
                url_for("admin.enrollment", enrollment_id=found.id) + f"#day-{day}", 303
            )
    if error:
        form.form_errors.append(error)
    db.session.rollback()
    return _course_page(_enrollment_for(enrollment_id), {day: form}, 400)


@bp.route("/enrollments/<id:enrollment_id>/anchor", methods=["GET", "POST"])
@requires(COORDINATION)
def change_anchor(enrollment_id: int) -> ResponseReturnValue:
    found = _enrollment_for(enrollment_id)
    form = AnchorForm()
    context: dict[str, Any] = {"enrollment": found, "patient": found.patient, "form": form}
    if request.method == "GET":
        form.anchor_on.data = found.anchor_on
        return _shown("admin/enrollments/anchor.html", "anchor", context)
    if not form.validate():
        return render_template("admin/enrollments/anchor.html", **context), 400
    now = utcnow()
    try:
        changes = enrollments.anchor_change(found, form.anchor_on.data, now)
    except AdminError as exc:
        form.form_errors.append(str(exc))
        return render_template("admin/enrollments/anchor.html", **context), 400
    if not form.save.data:
        return render_template(
            "admin/enrollments/anchor.html", changes=changes, skip_labels=SKIP_LABELS, **context
        )
    before = snapshot(found, ENROLLMENT_FIELDS)
    changes = enrollments.change_anchor(db.session, found, form.anchor_on.data, now=now)
    moved = sum(1 for change in changes if change.action == "moved")
    _audit_course(
        "enrollment.anchor_changed", found, before, snapshot(found, ENROLLMENT_FIELDS), moved=moved
    )
    db.session.commit()
    flash(
        f"Course moved to {found.anchor_on.isoformat()}: {moved} questionnaires moved.", "success"
    )
    return redirect(url_for("admin.enrollment", enrollment_id=found.id), 303)


@bp.route("/enrollments/<id:enrollment_id>/withdraw", methods=["GET", "POST"])
@requires(COORDINATION)
def withdraw(enrollment_id: int) -> ResponseReturnValue:
    found = _enrollment_for(enrollment_id)
    form = WithdrawForm()
    now = utcnow()
    pending = [a for a in found.assessments if a.is_open(now) or a.state_at(now) == "upcoming"]
    context: dict[str, Any] = {
        "enrollment": found,
        "patient": found.patient,
        "form": form,
        "pending": pending,
        "now": now,
    }
    if request.method == "GET":
        return _shown("admin/enrollments/withdraw.html", "withdraw", context)
    if not form.validate():
        return render_template("admin/enrollments/withdraw.html", **context), 400
    before = snapshot(found, ENROLLMENT_FIELDS)
    try:
        cancelled, messages = enrollments.withdraw(
            db.session, found, now=now, reason=form.reason.data or "", by=roles.user()
        )
    except AdminError as exc:
        form.form_errors.append(str(exc))
        return render_template("admin/enrollments/withdraw.html", **context), 400
    _audit_course(
        "enrollment.withdrawn",
        found,
        before,
        snapshot(found, ENROLLMENT_FIELDS),
        assessments=cancelled,
        messages=messages,
    )
    db.session.commit()
    flash(f"Withdrawn: {cancelled} questionnaires and {messages} messages cancelled.", "success")
    return redirect(url_for("admin.enrollment", enrollment_id=found.id), 303)


@bp.route("/assessments/<id:assessment_id>/answers", methods=["GET", "POST"])
@requires(COORDINATION)
def paper_answers(assessment_id: int) -> ResponseReturnValue:
    assessment = db.session.get(Assessment, assessment_id)
    if assessment is None:
        abort(404)
    patient = assessment.enrollment.patient
    roles.check_clinic(patient.clinic_id)
    now = utcnow()
    course_page = url_for("admin.enrollment", enrollment_id=assessment.enrollment_id)
    try:
        questions = paper.questions(assessment, now)  # nothing is written until a valid POST
    except AdminError as exc:
        flash(str(exc), "error")
        return redirect(course_page, 303)
    form = paper_form_class(questions)()
    context: dict[str, Any] = {
        "assessment": assessment,
        "patient": patient,
        "questions": questions,
        "form": form,
    }
    if request.method == "GET":
        return _shown("admin/enrollments/paper.html", "paper_answers", context)
    if not form.validate():
        return render_template("admin/enrollments/paper.html", **context), 400
    answers = {q.number: _answer(form[f"q{q.number}"].data) for q in questions}
    try:
        result = paper.enter_answers(
            assessment, answers, source=form.source.data, now=now, by=roles.user()
        )
    except AdminError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(course_page, 303)
    audit_change(
        "responses.entered",
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        after={"assessment_id": assessment.id, "source": form.source.data},
        detail={"scores": len(result.scores), "alerts": len(result.alerts)},
    )
    db.session.commit()
    alerts = f", {len(result.alerts)} alerts" if result.alerts else ""
    flash(f"Answers saved and scored ({len(result.scores)} scores{alerts}).", "success")
    return redirect(course_page, 303)


def _answer(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None
