"""The alerts inbox (`/alerts`) and the alert actions, from the inbox or the patient page.

The inbox's filters are GET parameters (they name no one); acknowledging and resolving are
POSTs with a CSRF token, each audited with the fields it changed, and go back where they came
from. Nothing about the patient goes into a URL or a flash message.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from proms.auth import roles
from proms.auth.audit import audit_change, request_info, snapshot
from proms.auth.roles import CARE_TEAM, requires
from proms.auth.services import record_event
from proms.care import alerts as services
from proms.care.views import bp
from proms.db import db, utcnow
from proms.forms import strip
from proms.outcomes.models import TIER_LABELS, Alert, AlertTier

FILTER_NAMES = ("tier", "status", "kind")


def _choices(options: dict[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in options.items()]


class InboxFilterForm(FlaskForm):
    """`?tier=...&status=...&kind=...&page=N`: filters name no one, so a GET is fine."""

    class Meta:
        csrf = False

    tier = SelectField("Tier", choices=_choices({"": "All", **services.TIER_FILTERS}), default="")
    status = SelectField("Status", choices=_choices(services.STATUS_FILTERS), default="")
    kind = SelectField("Kind", choices=_choices({"": "All", **services.KIND_FILTERS}), default="")
    page = IntegerField(
        "Page",
        validators=[Optional(), NumberRange(1, 100_000, "There is no such page.")],
    )

    def filters(self) -> dict[str, str]:
        """The filters in force, without the empty ones (for links and the way back)."""
        return {name: getattr(self, name).data for name in FILTER_NAMES if getattr(self, name).data}


class AlertActionForm(FlaskForm):
    """Acknowledge or resolve, with an optional note; where to go back to."""

    note = TextAreaField(
        "Note (optional)",
        validators=[
            Optional(),
            Length(
                max=services.NOTE_MAX_LENGTH,
                message=f"A note holds at most {services.NOTE_MAX_LENGTH:,} characters.",
            ),
        ],
        filters=[strip],
    )
    back = HiddenField()  # "patient": the patient page; else the inbox as it was filtered


@bp.route("/alerts")
@requires(CARE_TEAM)
def alerts() -> ResponseReturnValue:
    form = InboxFilterForm(request.args)
    if not form.validate():
        return render_template("care/alerts/inbox.html", form=form, page=None), 400
    page_number = form.page.data or 1
    filters = form.filters()
    page = db.paginate(
        services.inbox(roles.clinic_ids(), **filters),
        page=page_number,
        per_page=current_app.config["ALERTS_PER_PAGE"],
        error_out=False,
    )
    if page_number > max(page.pages, 1):
        abort(404)  # past the last page: not an empty list that looks like "no alerts"
    shown: list[Alert] = list(page.items)
    record_event(
        db.session,
        "alert.list",
        actor=current_user._get_current_object(),
        origin=request_info(),
        detail={
            "page": page.page,
            **filters,
            "alert_ids": [alert.id for alert in shown],
            "patient_ids": sorted({alert.patient_id for alert in shown}),
        },
    )
    html = render_template(
        "care/alerts/inbox.html",
        form=form,
        page=page,
        alerts=shown,
        filters=filters,
        filter_links=_filter_links(filters),
    )
    db.session.commit()
    return html


@bp.route("/alerts/<id:alert_id>/acknowledge", methods=["POST"])
@requires(CARE_TEAM)
def acknowledge_alert(alert_id: int) -> ResponseReturnValue:
    """Someone has seen it and is on it (who, when and the note are kept)."""
    return _act(alert_id, "acknowledged")


@bp.route("/alerts/<id:alert_id>/resolve", methods=["POST"])
@requires(CARE_TEAM)
def resolve_alert(alert_id: int) -> ResponseReturnValue:
    """It is dealt with: it leaves the list of open alerts."""
    return _act(alert_id, "resolved")


def _filter_links(filters: dict[str, str]) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """Per filter: its label and (text, URL, chosen) of each value, the other filters kept."""
    groups = (
        ("tier", "Tier", [("", "All tiers"), *services.TIER_FILTERS.items()]),
        ("status", "Status", list(services.STATUS_FILTERS.items())),
        ("kind", "Kind", [("", "All kinds"), *services.KIND_FILTERS.items()]),
    )
    links = []
    for name, label, options in groups:
        choices = []
        for value, text in options:
            chosen = {**filters, name: value}
            url = url_for("care.alerts", **{key: v for key, v in chosen.items() if v})
            choices.append((text, url, filters.get(name, "") == value))
        links.append((label, choices))
    return links


def _alert_for(alert_id: int) -> Alert:
    """The alert, if the current user holds the view's role in its clinic (else 404 or 403)."""
    found = db.session.get(Alert, alert_id)
    if found is None:
        abort(404)
    roles.check_clinic(found.clinic_id)
    return found


def _act(alert_id: int, done: str) -> ResponseReturnValue:
    alert = _alert_for(alert_id)
    form = AlertActionForm()
    back = _way_back(form, alert)
    if not form.validate():
        page = render_template(
            "care/alerts/action.html", alert=alert, form=form, done=done, back=back
        )
        return page, 400
    before = snapshot(alert, services.AUDIT_FIELDS)
    action = services.acknowledge if done == "acknowledged" else services.resolve
    try:
        action(db.session, alert, roles.user(), form.note.data, now=utcnow())
    except services.AlertActionRefused as exc:
        db.session.rollback()
        flash(str(exc), "info")
        return redirect(back, 303)
    audit_change(
        f"alert.{done}",
        clinic_id=alert.clinic_id,
        patient_id=alert.patient_id,
        before=before,
        after=snapshot(alert, services.AUDIT_FIELDS),
        detail={"alert_id": alert.id, "rule": alert.rule, "timepoint": alert.timepoint_key},
    )
    db.session.commit()
    flash(f"Alert {done}.", "success")
    return redirect(back, 303)


def _way_back(form: AlertActionForm, alert: Alert) -> str:
    """The patient page's alerts, or the inbox with the filters it had (known values only)."""
    if form.back.data == "patient":
        return url_for("care.patient", patient_id=alert.patient_id, _anchor="alerts")
    state = InboxFilterForm(request.form)
    kept: dict[str, Any] = {}
    if state.validate():
        kept = state.filters()
        if state.page.data and state.page.data > 1:
            kept["page"] = state.page.data
    return url_for("care.alerts", **kept)


@bp.app_template_filter("alert_words")
def alert_words(alert: Alert) -> services.AlertWords:
    """An alert's kind and rule in words, for the inbox and the patient page."""
    return services.words(alert)


@bp.app_template_global("alert_tier_label")
def alert_tier_label(tier: AlertTier) -> str:
    return TIER_LABELS[tier]
