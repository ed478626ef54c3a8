"""Message decisions: mark a failed or uncertain message as sent, send it again, or send a
pending invitation now. Each a POST from the worklist or the course page, back there after."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from proms.admin import messages
from proms.admin.errors import AdminError
from proms.admin.views import bp
from proms.auth import roles
from proms.auth.audit import audit_change, snapshot
from proms.auth.roles import COORDINATION, requires
from proms.db import db, utcnow
from proms.scheduling.history import message_label
from proms.scheduling.models import Notification


def _message_for(notification_id: int) -> Notification:
    """The message, if the current user holds the view's role in its patient's clinic."""
    found = db.session.get(Notification, notification_id)
    if found is None:
        abort(404)
    roles.check_clinic(found.patient.clinic_id)
    return found


def _audit(action: str, row: Notification, before: dict[str, object], **detail: object) -> None:
    audit_change(
        action,
        clinic_id=row.patient.clinic_id,
        patient_id=row.patient_id,
        before=before,
        after=snapshot(row, messages.AUDIT_FIELDS),
        detail={"notification_id": row.id, "assessment_id": row.assessment_id, **detail},
    )


def _worklist() -> ResponseReturnValue:
    return redirect(url_for("admin.worklist") + "#messages", 303)


def _refused(message: str) -> ResponseReturnValue:
    db.session.rollback()
    flash(message, "error")
    return _worklist()


@bp.route("/messages/<id:notification_id>/mark-sent", methods=["POST"])
@requires(COORDINATION)
def mark_message_sent(notification_id: int) -> ResponseReturnValue:
    """The patient says the message arrived."""
    row = _message_for(notification_id)
    before = snapshot(row, messages.AUDIT_FIELDS)
    try:
        messages.mark_sent(db.session, row, now=utcnow())
    except AdminError as exc:
        return _refused(str(exc))
    _audit("notification.marked_sent", row, before)
    db.session.commit()
    flash(f"{message_label(row)} marked as sent.", "success")
    return _worklist()


@bp.route("/messages/<id:notification_id>/resend", methods=["POST"])
@requires(COORDINATION)
def resend_message(notification_id: int) -> ResponseReturnValue:
    """The patient says the message did not arrive: a new link goes in its place."""
    row = _message_for(notification_id)
    before = snapshot(row, messages.AUDIT_FIELDS)
    try:
        fresh = messages.send_again(db.session, row, now=utcnow())
        _audit("notification.resent", row, before, new_notification_id=fresh.id)
        db.session.commit()
    except AdminError as exc:
        return _refused(str(exc))
    except IntegrityError:  # the other click's row committed first (the key is unique)
        return _refused("This message was already sent again.")
    channel = "text message" if fresh.channel.value == "sms" else "email"
    flash(f"A new link goes by {channel} within a minute.", "success")
    return _worklist()


@bp.route("/messages/<id:notification_id>/send-now", methods=["POST"])
@requires(COORDINATION)
def send_message_now(notification_id: int) -> ResponseReturnValue:
    """A pending invitation of an open questionnaire goes now, not at its planned time."""
    row = _message_for(notification_id)
    assessment = row.assessment
    course_page = (
        url_for("admin.enrollment", enrollment_id=assessment.enrollment_id) + "#messages"
        if assessment is not None
        else url_for("care.patient", patient_id=row.patient_id)
    )
    before = snapshot(row, messages.AUDIT_FIELDS)
    now = utcnow()
    try:
        messages.send_now(db.session, row, now=now)
    except AdminError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(course_page, 303)
    _audit("notification.sent_now", row, before)
    db.session.commit()
    quiet_until = messages.quiet_until(row, now)
    if quiet_until is not None:
        flash(
            f"The invitation goes when quiet hours end, at {quiet_until:%H:%M} on the patient's "
            "clock.",
            "success",
        )
    else:
        flash(
            "The invitation goes within a minute, if the patient's daily limit of messages allows.",
            "success",
        )
    return redirect(course_page, 303)
