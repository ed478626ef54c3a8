"""Cohort report pages: the study's table for a protocol, with charts, and as CSV.

GET parameters (protocol slug, clinic slug, dates) name no patient, so the form is a GET and a
report has an address. Every role may read it: it shows counts, never a name.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional, ValidationError

from proms.admin.models import Clinic
from proms.auth import roles
from proms.auth.audit import request_info
from proms.auth.roles import ANY_STAFF, requires
from proms.auth.services import record_event
from proms.care.cohort import (
    CohortReport,
    Measure,
    ProtocolChoice,
    UnknownProtocol,
    protocol_choices,
    write_csv,
)
from proms.care.snapshots import recent_cohort_report
from proms.care.views import bp
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.scoring.cohort import Proportion

DATE_MESSAGE = "Enter the date as a calendar date, for example 2026-03-02."
# Course dates a report may ask for: the years a first infusion day may have
# (proms.admin.courses), so that nothing past a date's range reaches the database.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


class ReportDateField(DateField):
    """A date as YYYY-MM-DD (what a date input sends), with our message when it is not one."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(DATE_MESSAGE) from exc


def _plausible(form: FlaskForm, field: DateField) -> None:
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise ValidationError(
            f"Choose a date between {FIRST_DAY.year} and {LAST_DAY.year}: check the year."
        )


class CohortForm(FlaskForm):
    """Which courses the report covers. A GET: nothing in it names a patient."""

    class Meta:
        csrf = False

    protocol = SelectField("Protocol")
    clinic = SelectField("Clinic", default="")
    start = ReportDateField(
        "Courses starting on or after", validators=[Optional(), _plausible], format="%Y-%m-%d"
    )
    end = ReportDateField(
        "Courses starting on or before", validators=[Optional(), _plausible], format="%Y-%m-%d"
    )

    def validate_end(self, field: DateField) -> None:
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


def _form(clinics: list[Clinic], protocols: list[ProtocolChoice]) -> CohortForm:
    form = CohortForm(request.args)
    form.protocol.choices = [(p.slug, p.name) for p in protocols]
    form.clinic.choices = [("", "All my clinics")] + [(c.slug, c.name) for c in clinics]
    if not request.args.get("protocol") and protocols:
        form.protocol.data = protocols[0].slug  # the first visit shows a report straight away
    return form


def _load() -> tuple[CohortForm, CohortReport | None, int]:
    """The form and the report it asks for, or the form with its errors and 400."""
    clinics = roles.clinics(db.session)
    protocols = protocol_choices(db.session, [c.id for c in clinics])
    form = _form(clinics, protocols)
    if not protocols:
        return form, None, 200
    if not form.validate():
        return form, None, 400
    chosen = [c for c in clinics if not form.clinic.data or c.slug == form.clinic.data]
    try:
        report = recent_cohort_report(
            db.session,
            deployment_registry(db.session),
            clinic_ids=[c.id for c in chosen],
            protocol_slug=form.protocol.data,
            start_on=form.start.data,
            end_on=form.end.data,
            now=utcnow(),
            max_age=dt.timedelta(seconds=current_app.config["COHORT_REPORT_MAX_AGE"]),
        )
    except UnknownProtocol:
        form.protocol.errors = [*form.protocol.errors, "That clinic has no such protocol."]
        return form, None, 400
    _audit(report, [c.id for c in chosen], "html" if request.endpoint == "care.cohort" else "csv")
    return form, report, 200


def _audit(report: CohortReport, clinic_ids: list[int], kind: str) -> None:
    record_event(
        db.session,
        "report.cohort" if kind == "html" else "report.cohort.export",
        actor=current_user._get_current_object(),
        origin=request_info(),
        detail={
            "protocol": report.protocol_slug,
            "clinic_ids": clinic_ids,
            "start_on": report.start_on.isoformat() if report.start_on else None,
            "end_on": report.end_on.isoformat() if report.end_on else None,
            "format": kind,
            "courses": report.courses,
        },
    )


@bp.route("/reports/cohort")
@requires(ANY_STAFF)
def cohort() -> ResponseReturnValue:
    """The study's table for one protocol: outcomes per domain and time point, with charts."""
    form, report, status = _load()
    html = render_template(
        "care/report/cohort.html",
        form=form,
        report=report,
        charts=[(m, change_chart(m)) for m in report.measures if m.has_changes] if report else [],
        csv_query=_query(form) if report else None,
    )
    db.session.commit()
    return html, status


@bp.route("/reports/cohort.csv")
@requires(ANY_STAFF)
def cohort_csv() -> ResponseReturnValue:
    """The same figures as tidy CSV (docs/reports.md describes the columns)."""
    form, report, status = _load()
    if report is None:
        html = render_template("care/report/cohort.html", form=form, report=None, charts=[])
        return html, status if status != 200 else 404
    buffer = io.StringIO()
    write_csv(report, buffer)
    db.session.commit()
    name = f"cohort-{report.protocol_slug}-{report.generated_at:%Y%m%d}.csv"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _query(form: CohortForm) -> dict[str, Any]:
    """The report's own parameters, for its CSV link."""
    values = {
        "protocol": form.protocol.data,
        "clinic": form.clinic.data or None,
        "start": form.start.data.isoformat() if form.start.data else None,
        "end": form.end.data.isoformat() if form.end.data else None,
    }
    return {k: v for k, v in values.items() if v}


# Charts: inline SVG drawn by the template (templates/care/report/_chart.html) from these
# coordinates, so nothing runs in the browser and every text is escaped like any other.

CHART_WIDTH = 340
CHART_HEIGHT = 214
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 38, 332, 30, 168
TICKS = (0, 25, 50, 75, 100)


@dataclass(frozen=True, slots=True)
class Mark:
    """One share with its interval: the marker at y, the whisker from low to high."""

    kind: str  # "improved" or "worsened"
    x: float
    y: float
    low: float
    high: float
    text: str  # e.g. "31%"
    text_x: float
    text_y: float
    anchor: str  # SVG text-anchor: the improved value left of its marker, the worsened right


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    label_lines: tuple[str, ...]
    n_text: str
    marks: tuple[Mark, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """Share improved and worsened (threshold criterion) per follow-up, with 95% intervals."""

    id: str
    title: str
    width: int
    height: int
    ticks: tuple[tuple[float, str], ...]  # (y, label)
    plot: tuple[int, int, int, int]  # left, right, top, bottom
    columns: tuple[Column, ...]


def _y(share: float) -> float:
    return round(PLOT_BOTTOM - share * (PLOT_BOTTOM - PLOT_TOP), 1)


def _label_lines(label: str, width: int = 11) -> tuple[str, ...]:
    """A time point's label on at most two lines of about `width` characters."""
    words, lines = label.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width and len(lines) < 2:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return tuple(lines)


def change_chart(measure: Measure, criterion: str = "threshold") -> Chart:
    """The chart of one measure: a column per follow-up time point."""
    follow_ups = measure.follow_ups
    step = (PLOT_RIGHT - PLOT_LEFT) / max(len(follow_ups), 1)
    columns = []
    for index, row in enumerate(follow_ups):
        x = PLOT_LEFT + step * (index + 0.5)
        result = row.criterion(criterion)
        marks = []
        if result is not None and result.compared:
            for kind, offset, share in (
                ("improved", -9, result.improved),
                ("worsened", 9, result.worsened),
            ):
                marks.append(_mark(kind, x + offset, share))
        columns.append(
            Column(
                x=round(x, 1),
                label_lines=_label_lines(row.timepoint_label),
                n_text=f"n={result.compared}" if result else "n=0",
                marks=tuple(marks),
            )
        )
    return Chart(
        id=f"chart-{measure.instrument_code}-{measure.instrument_version}-{measure.scale}".replace(
            ".", "-"
        ),
        title=f"Share meaningfully improved and worsened, {measure.label}",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        ticks=tuple((_y(t / 100), f"{t}%") for t in TICKS),
        plot=(PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM),
        columns=tuple(columns),
    )


def _mark(kind: str, x: float, share: Proportion) -> Mark:
    """The marker, its whisker, and its value written beside it, away from the other marker."""
    assert share.share is not None
    assert share.lower is not None
    assert share.upper is not None
    y = _y(share.share)
    return Mark(
        kind=kind,
        x=round(x, 1),
        y=y,
        low=_y(share.lower),
        high=_y(share.upper),
        text=f"{share.share * 100:.0f}%",
        text_x=round(x - 6 if kind == "improved" else x + 6, 1),
        text_y=round(y + 3.5, 1),
        anchor="end" if kind == "improved" else "start",
    )
