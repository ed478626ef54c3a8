"""Cohort report snapshots: a computed report kept for a few minutes (COHORT_REPORT_MAX_AGE).

Counting a cohort of 100,000 patients reads millions of scores and messages: more than a second
of database work, too long for a page to wait each time, and the figures of a cohort move slowly.
So the report pages keep what they computed, in the database (every web worker sees the same
one), per clinic set, protocol and date range. Within its age a snapshot answers the page and
its CSV download alike, so the two always agree; the page says when the figures were counted.
`proms report cohort` always counts afresh.

A snapshot holds counts, shares and intervals only, never a patient, and is keyed by the clinic
ids it covers, so nobody is ever served another clinic's figures. Flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from proms.care.cohort import (
    Checklist,
    ChecklistItem,
    CohortReport,
    Completion,
    CriterionResult,
    FunnelRow,
    Measure,
    OutcomeRow,
    SeverityCount,
    StaffSideEffect,
    cohort_report,
)
from proms.db import db
from proms.instruments.registry import Registry
from proms.scoring.change import Threshold
from proms.scoring.cohort import MeanInterval, Proportion
from proms.scoring.types import Direction

# Bump when the report's shape changes: older snapshots are then recounted, not misread.
SNAPSHOT_FORMAT = 1


class CohortSnapshot(db.Model):
    """One computed cohort report (counts and shares only), by what it covers."""

    __tablename__ = "cohort_snapshot"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the clinic ids, protocol, dates and confidence (`snapshot_key`).
    key: Mapped[str] = mapped_column(String(64), unique=True)
    computed_at: Mapped[dt.datetime]
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


def snapshot_key(
    clinic_ids: Sequence[int],
    protocol_slug: str,
    start_on: dt.date | None,
    end_on: dt.date | None,
    confidence: float,
) -> str:
    what = [
        SNAPSHOT_FORMAT,
        sorted(set(clinic_ids)),
        protocol_slug,
        start_on.isoformat() if start_on else None,
        end_on.isoformat() if end_on else None,
        confidence,
    ]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def recent_cohort_report(
    session: Session,
    registry: Registry,
    *,
    clinic_ids: Sequence[int],
    protocol_slug: str,
    start_on: dt.date | None,
    end_on: dt.date | None,
    now: dt.datetime,
    max_age: dt.timedelta,
    confidence: float = 0.95,
) -> CohortReport:
    """The snapshot counted less than `max_age` ago, else the report counted now (and kept).

    Raises proms.care.cohort.UnknownProtocol like `cohort_report`.
    """
    key = snapshot_key(clinic_ids, protocol_slug, start_on, end_on, confidence)
    if max_age > dt.timedelta(0):
        found = session.scalar(select(CohortSnapshot).where(CohortSnapshot.key == key))
        if found is not None and now - max_age < found.computed_at <= now:
            return report_from_json(found.report)
    report = cohort_report(
        session,
        registry,
        clinic_ids=clinic_ids,
        protocol_slug=protocol_slug,
        start_on=start_on,
        end_on=end_on,
        now=now,
        confidence=confidence,
    )
    if max_age > dt.timedelta(0):
        values = {"key": key, "computed_at": now, "report": report_to_json(report)}
        insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
        statement = insert(CohortSnapshot).values(**values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[CohortSnapshot.key],
                set_={"computed_at": now, "report": statement.excluded.report},
            )
        )
    return report


# A report as JSON and back ---------------------------------------------------------------------


def report_to_json(report: CohortReport) -> dict[str, Any]:
    """The report as JSON values: dates as ISO text, everything else as numbers and lists."""
    return {
        "protocol_slug": report.protocol_slug,
        "protocol_name": report.protocol_name,
        "versions": list(report.versions),
        "clinics": list(report.clinics),
        "start_on": report.start_on.isoformat() if report.start_on else None,
        "end_on": report.end_on.isoformat() if report.end_on else None,
        "generated_at": report.generated_at.isoformat(),
        "confidence": report.confidence,
        "courses": report.courses,
        "patients": report.patients,
        "course_days": report.course_days,
        "measures": [_measure_json(m) for m in report.measures],
        "completion": {
            "completed": _proportion_json(report.completion.completed),
            "not_over": report.completion.not_over,
            "none_recorded": report.completion.none_recorded,
            "treated": report.completion.treated,
        },
        "returned": _proportion_json(report.returned),
        "staff_side_effects": [
            [e.key, e.label, _proportion_json(e.courses)] for e in report.staff_side_effects
        ],
        "checklists": [_checklist_json(c) for c in report.checklists],
        "funnel": [
            [f.channel, f.language, f.sent, f.delivered, f.opened, f.started, f.completed]
            for f in report.funnel
        ],
    }


def report_from_json(data: dict[str, Any]) -> CohortReport:
    completion = data["completion"]
    return CohortReport(
        protocol_slug=data["protocol_slug"],
        protocol_name=data["protocol_name"],
        versions=tuple(data["versions"]),
        clinics=tuple(data["clinics"]),
        start_on=_date(data["start_on"]),
        end_on=_date(data["end_on"]),
        generated_at=dt.datetime.fromisoformat(data["generated_at"]),
        confidence=data["confidence"],
        courses=data["courses"],
        patients=data["patients"],
        course_days=data["course_days"],
        measures=tuple(_measure(m) for m in data["measures"]),
        completion=Completion(
            completed=_proportion(completion["completed"]),
            not_over=completion["not_over"],
            none_recorded=completion["none_recorded"],
            treated=completion["treated"],
        ),
        returned=_proportion(data["returned"]),
        staff_side_effects=tuple(
            StaffSideEffect(key, label, _proportion(share))
            for key, label, share in data["staff_side_effects"]
        ),
        checklists=tuple(_checklist(c) for c in data["checklists"]),
        funnel=tuple(FunnelRow(*row) for row in data["funnel"]),
    )


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _proportion_json(p: Proportion) -> list[Any]:
    return [p.count, p.n, p.share, p.lower, p.upper]


def _proportion(values: list[Any]) -> Proportion:
    return Proportion(*values)


def _measure_json(m: Measure) -> dict[str, Any]:
    t = m.threshold
    return {
        "domain": m.domain,
        "instrument_code": m.instrument_code,
        "instrument_version": m.instrument_version,
        "scale": m.scale,
        "title": m.title,
        "direction": m.direction.value if m.direction else None,
        "threshold": [t.value, t.unit, t.source, t.evidence, t.substantial] if t else None,
        "rows": [
            {
                "timepoint_key": r.timepoint_key,
                "timepoint_label": r.timepoint_label,
                "offset_days": r.offset_days,
                "is_baseline": r.is_baseline,
                "eligible": r.eligible,
                "responded": _proportion_json(r.responded),
                "criteria": [
                    {
                        "name": c.name,
                        "compared": c.compared,
                        "improved": _proportion_json(c.improved),
                        "worsened": _proportion_json(c.worsened),
                        "no_change": c.no_change,
                        "not_comparable": c.not_comparable,
                        "mean_change": (
                            [
                                c.mean_change.mean,
                                c.mean_change.lower,
                                c.mean_change.upper,
                                c.mean_change.n,
                            ]
                            if c.mean_change
                            else None
                        ),
                    }
                    for c in r.criteria
                ],
            }
            for r in m.rows
        ],
    }


def _measure(data: dict[str, Any]) -> Measure:
    return Measure(
        domain=data["domain"],
        instrument_code=data["instrument_code"],
        instrument_version=data["instrument_version"],
        scale=data["scale"],
        title=data["title"],
        direction=Direction(data["direction"]) if data["direction"] else None,
        threshold=Threshold(*data["threshold"]) if data["threshold"] else None,
        rows=tuple(
            OutcomeRow(
                timepoint_key=r["timepoint_key"],
                timepoint_label=r["timepoint_label"],
                offset_days=r["offset_days"],
                is_baseline=r["is_baseline"],
                eligible=r["eligible"],
                responded=_proportion(r["responded"]),
                criteria=tuple(
                    CriterionResult(
                        name=c["name"],
                        compared=c["compared"],
                        improved=_proportion(c["improved"]),
                        worsened=_proportion(c["worsened"]),
                        no_change=c["no_change"],
                        not_comparable=c["not_comparable"],
                        mean_change=MeanInterval(*c["mean_change"]) if c["mean_change"] else None,
                    )
                    for c in r["criteria"]
                ),
            )
            for r in data["rows"]
        ),
    )


def _checklist_json(c: Checklist) -> dict[str, Any]:
    return {
        "instrument_code": c.instrument_code,
        "instrument_version": c.instrument_version,
        "title": c.title,
        "timepoint_key": c.timepoint_key,
        "timepoint_label": c.timepoint_label,
        "responses": c.responses,
        "items": [
            [
                item.item_id,
                item.text,
                [[s.value, s.label, _proportion_json(s.share)] for s in item.severities],
                item.not_answered,
            ]
            for item in c.items
        ],
    }


def _checklist(data: dict[str, Any]) -> Checklist:
    return Checklist(
        instrument_code=data["instrument_code"],
        instrument_version=data["instrument_version"],
        title=data["title"],
        timepoint_key=data["timepoint_key"],
        timepoint_label=data["timepoint_label"],
        responses=data["responses"],
        items=tuple(
            ChecklistItem(
                item_id,
                text,
                tuple(SeverityCount(v, label, _proportion(p)) for v, label, p in severities),
                not_answered,
            )
            for item_id, text, severities, not_answered in data["items"]
        ),
    )
