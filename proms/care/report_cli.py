"""`proms report cohort`: the cohort report on the command line, as a text table or CSV."""

from __future__ import annotations

import datetime as dt
import sys

import click
from sqlalchemy import select

from proms.admin.models import Clinic
from proms.auth.services import cli_actor, record_event
from proms.care.cohort import (
    FUNNEL_STEPS,
    CohortReport,
    UnknownProtocol,
    cohort_report,
    protocol_choices,
    write_csv,
)
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.scoring.cohort import MeanInterval, Proportion

FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


class IsoDate(click.ParamType):
    """A calendar date as YYYY-MM-DD, in the years a course can have."""

    name = "DATE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            day = dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-03-02", param, ctx
            )
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail(
                f"{value} is outside {FIRST_DAY.year}-{LAST_DAY.year}: check the year", param, ctx
            )
        return day


@click.group("report", help="Reports for a clinic's own patients.")
def report() -> None:
    pass


@report.command("cohort")
@click.option("--protocol", "protocol_slug", required=True, metavar="SLUG", help="The protocol.")
@click.option("--from", "start_on", type=IsoDate(), help="First infusion day on or after DATE.")
@click.option("--to", "end_on", type=IsoDate(), help="First infusion day on or before DATE.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv"]),
    default="table",
    show_default=True,
    help="A text table to read, or tidy CSV (the page's download).",
)
@click.option("--clinic", "clinic_slug", metavar="SLUG", help="One clinic (default: every one).")
def cohort_command(
    protocol_slug: str,
    start_on: dt.date | None,
    end_on: dt.date | None,
    output_format: str,
    clinic_slug: str | None,
) -> None:
    """The study's table for one protocol: outcomes per domain and time point, course
    completion, returns, side effects and messages (docs/reports.md)."""
    if start_on and end_on and end_on < start_on:
        raise click.BadParameter("the end date is before the start date", param_hint="'--to'")
    query = select(Clinic).order_by(Clinic.slug)
    if clinic_slug is not None:
        query = query.where(Clinic.slug == clinic_slug)
    clinics = list(db.session.scalars(query))
    if not clinics:
        known = ", ".join(db.session.scalars(select(Clinic.slug).order_by(Clinic.slug))) or "none"
        raise click.BadParameter(
            f"no clinic {clinic_slug!r} (clinics: {known})", param_hint="'--clinic'"
        )
    clinic_ids = [c.id for c in clinics]
    try:
        found = cohort_report(
            db.session,
            deployment_registry(db.session),
            clinic_ids=clinic_ids,
            protocol_slug=protocol_slug,
            start_on=start_on,
            end_on=end_on,
            now=utcnow(),
        )
    except UnknownProtocol:
        known = ", ".join(c.slug for c in protocol_choices(db.session, clinic_ids)) or "none"
        raise click.BadParameter(
            f"no protocol {protocol_slug!r} here (protocols: {known})", param_hint="'--protocol'"
        ) from None
    record_event(
        db.session,
        "report.cohort.export",
        actor_email=cli_actor(),
        detail={
            "protocol": protocol_slug,
            "clinic_ids": clinic_ids,
            "start_on": start_on.isoformat() if start_on else None,
            "end_on": end_on.isoformat() if end_on else None,
            "format": output_format,
            "courses": found.courses,
        },
    )
    db.session.commit()
    if output_format == "csv":
        write_csv(found, sys.stdout)
    else:
        click.echo(text_report(found), nl=False)


# The text table --------------------------------------------------------------------------------


def _pct(p: Proportion) -> str:
    if p.share is None or p.lower is None or p.upper is None:
        return "-"
    return f"{p.share:.0%} ({p.lower:.0%}-{p.upper:.0%})"


def _mean(m: MeanInterval | None) -> str:
    if m is None:
        return "-"
    if m.lower is None or m.upper is None:
        return f"{m.mean:+.1f}"
    return f"{m.mean:+.1f} ({m.lower:+.1f} to {m.upper:+.1f})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def text_report(found: CohortReport) -> str:
    """The report as plain text tables, for a terminal."""
    if found.start_on or found.end_on:
        since = found.start_on.isoformat() if found.start_on else "any date"
        until = found.end_on.isoformat() if found.end_on else "any date"
        span = f"courses starting {since} to {until}"
    else:
        span = "courses starting at any date"
    versions = ", ".join(map(str, found.versions))
    lines = [
        f"{found.protocol_name} ({found.protocol_slug}, version {versions}): "
        f"{', '.join(found.clinics)}",
        f"{span}: {found.courses} courses of {found.patients} patients, "
        f"as of {found.generated_at:%Y-%m-%d %H:%M} UTC",
        "Shares with 95% intervals; 'threshold' and 'individual' are the two criteria of "
        "meaningful change; mean change positive = better.",
    ]
    for measure in found.measures:
        threshold = measure.threshold
        limit = f"{threshold.value:g} {threshold.unit}" if threshold else "none"
        lines += [
            "",
            f"{measure.label.capitalize()}: {measure.title} ({measure.instrument_code} "
            f"{measure.instrument_version}), threshold {limit}",
        ]
        header = ["time point", "responded", "criterion", "improved", "worsened", "mean change"]
        rows = []
        for row in measure.rows:
            responded = f"{row.responded.count}/{row.responded.n}"
            if row.responded.share is not None:
                responded += f" {row.responded.share:.0%}"
            if not row.criteria:
                rows.append([row.timepoint_label, responded, "baseline", "", "", ""])
            for index, c in enumerate(row.criteria):
                first = [row.timepoint_label, responded] if index == 0 else ["", ""]
                if not c.compared:
                    # The individual criterion needs a standard error for both scores.
                    rows.append([*first, c.name, "not comparable", "", ""])
                    continue
                rows.append(
                    [
                        *first,
                        f"{c.name} (n {c.compared})",
                        _pct(c.improved),
                        _pct(c.worsened),
                        _mean(c.mean_change),
                    ]
                )
        lines += _table(header, rows)
    completion = found.completion
    lines += [
        "",
        "Courses",
        f"  completed all {found.course_days} infusion days: {_pct(completion.completed)}, "
        f"{completion.completed.count} of {completion.completed.n} "
        f"(not counted: {completion.not_over} under way, {completion.none_recorded} with no "
        "day recorded)",
        f"  came back for another course: {_pct(found.returned)}, "
        f"{found.returned.count} of {found.returned.n} patients",
        "",
        f"Side effects noted by staff (courses, of {completion.treated} treated)",
    ]
    lines += [
        f"  {e.label}: {e.courses.count} ({_pct(e.courses)})" for e in found.staff_side_effects
    ]
    for checklist in found.checklists:
        lines += [
            "",
            f"{checklist.title}, {checklist.timepoint_label} ({checklist.responses} responses)",
        ]
        header = ["item", *(label for _value, label in checklist.columns)]
        rows = [
            [
                item.item_id,
                *(f"{s.share.count} ({s.share.share or 0:.0%})" for s in item.severities),
            ]
            for item in checklist.items
        ]
        lines += ["  " + line for line in _table(header, rows)]
    lines += ["", "Messages (time points messaged)"]
    if found.funnel:
        header = ["channel", "language", *FUNNEL_STEPS]
        rows = [
            [
                f.channel,
                f.language,
                *("-" if f.step(s) is None else str(f.step(s)) for s in FUNNEL_STEPS),
            ]
            for f in found.funnel
        ]
        lines += ["  " + line for line in _table(header, rows)]
    else:
        lines.append("  none sent")
    return "\n".join(lines) + "\n"
