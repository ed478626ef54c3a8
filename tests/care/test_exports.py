"""The CSV exports (long, wide, items): their content, scope, filters and cell neutralisation.

The expected values are read from the database the export reads (scores, answers) and from the
instrument definitions, never typed in: the export must say what is stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from proms.admin.models import Enrollment, Patient
from proms.care import exports
from proms.care.deidentify import Identity
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Score
from proms.scheduling.models import Assessment
from proms.surveys.models import ResponseStatus, SurveyAnswer, SurveyResponse
from tests.care.exports_world import (
    ANCHOR_ON,
    BASELINE_AT,
    DDE_MRN,
    END_OF_COURSE_AT,
    FORMULAS,
    SKIPPED_ITEM,
    ExportWorld,
    build,
)
from tests.helpers import World


@pytest.fixture
def ew(world: World) -> ExportWorld:
    return build(world)


def run(app: Flask, fmt: exports.ExportFormat, clinic_ids: tuple[int, ...], **options: Any) -> str:
    spec = exports.ExportSpec(format=fmt, clinic_ids=clinic_ids, **options)
    ids = exports.identifiers_for(spec, app.config)
    running = exports.export(db.engine, deployment_registry(db.session), spec, ids, now=utcnow())
    return "".join(running.chunks)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def clinic_scores(clinic_id: int) -> list[Score]:
    return list(
        db.session.scalars(
            select(Score)
            .join(Patient, Score.patient_id == Patient.id)
            .where(Patient.clinic_id == clinic_id)
        )
    )


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


# csv-long --------------------------------------------------------------------------------------


def test_long_has_one_row_per_stored_score_with_its_values(app: Flask, ew: ExportWorld) -> None:
    a = ew.world.clinic_a
    text = run(app, exports.ExportFormat.CSV_LONG, (a.id,))
    found = rows(text)
    header = next(csv.reader(io.StringIO(text)))
    assert header == exports.long_header(Identity())
    assert header[:3] == ["patient", "mrn", "clinic"]  # identified: ids and MRNs
    stored = {s.id: s for s in clinic_scores(a.id)}
    assert len(found) == len(stored) > 0
    assert {r["clinic"] for r in found} == {a.slug}
    by_key = {(r["response"], r["scale"]): r for r in found}
    for score in stored.values():
        row = by_key[(str(score.response_id), score.scale)]
        assert row["patient"] == str(score.patient_id)
        assert row["course"] == str(score.enrollment_id)
        assert row["timepoint"] == score.timepoint_key
        assert (row["instrument"], row["instrument_version"]) == (
            score.instrument_code,
            score.instrument_version,
        )
        assert row["domain"] == score.domain
        for column, value in (
            ("raw_score", score.raw_score),
            ("t_score", score.t_score),
            ("standard_error", score.standard_error),
            ("improvement", score.improvement),
            ("percent_improvement", score.percent_improvement),
            ("reliable_change_index", score.reliable_change_index),
        ):
            assert number(row[column]) == (None if value is None else pytest.approx(value))
        assert row["method"] == score.method
        assert int(row["n_answered"]) == score.n_answered
        assert row["scoring_version"] == score.scoring_version
        assert row["change_by_threshold"] == (score.change_by_threshold or "")
        assert row["change_by_individual"] == (score.change_by_individual or "")
        assert dt.datetime.fromisoformat(row["observed_at"]) == score.observed_at
        mrn = db.session.get(Patient, score.patient_id).mrn
        assert row["mrn"] in (mrn, "'" + mrn)  # the quote: see the formula test
    # A fall in pain interference has a negative reliable change index, and the baseline a
    # negative day: both are written as plain numbers, not neutralised as text.
    negatives = [
        row[column]
        for row in found
        for column in ("reliable_change_index", "days_since_course_start")
        if row[column].startswith("-")
    ]
    assert negatives
    assert all(float(value) < 0 for value in negatives)


def test_long_days_and_thresholds_come_from_the_course_and_the_definition(
    app: Flask, ew: ExportWorld
) -> None:
    found = rows(run(app, exports.ExportFormat.CSV_LONG, (ew.world.clinic_a.id,)))
    zelda = [r for r in found if r["patient"] == str(ew.zelda.id)]
    baseline = [r for r in zelda if r["timepoint"] == "baseline"]
    follow_up = [r for r in zelda if r["timepoint"] == "end_of_course"]
    assert baseline
    assert follow_up
    # The patient's calendar (New York): 2026-02-25 and 2026-03-08 against day 0, 2026-03-02.
    assert {r["days_since_course_start"] for r in baseline} == {
        str((BASELINE_AT.date() - ANCHOR_ON).days)
    }
    assert {r["days_since_course_start"] for r in follow_up} == {
        str((END_OF_COURSE_AT.date() - ANCHOR_ON).days)
    }
    assert {r["course_start"] for r in zelda} == {ANCHOR_ON.isoformat()}
    assert {r["timepoint_day"] for r in follow_up} == {"4"}
    assert {r["age_band"] for r in zelda} == {"75-79"}  # born 1948-11-09, course 2026-03-02
    # A baseline is not classified: no change, no threshold.
    assert all(r["change_by_threshold"] == r["threshold"] == "" for r in baseline)
    registry = bundled_registry()
    classified = [r for r in follow_up if r["change_by_threshold"]]
    assert {r["instrument"] for r in classified} >= {"promis-pi-4a", "peg"}
    for row in classified:
        definition = registry.get(row["instrument"], row["instrument_version"])
        [threshold] = [t for t in definition.thresholds if t.primary and t.scale == row["scale"]]
        assert number(row["threshold"]) == pytest.approx(threshold.value)
        assert (row["threshold_unit"], row["threshold_source"]) == (
            threshold.unit,
            threshold.source,
        )
    # Best answers after the worst: pain interference improved by both criteria.
    [pi] = [r for r in follow_up if r["instrument"] == "promis-pi-4a"]
    assert (pi["change_by_threshold"], pi["change_by_individual"]) == ("improved", "improved")


def test_only_the_clinics_and_courses_asked_for_are_read(app: Flask, ew: ExportWorld) -> None:
    b = ew.world.clinic_b
    found = rows(run(app, exports.ExportFormat.CSV_LONG, (b.id,)))
    assert {r["patient"] for r in found} == {str(ew.other.id)}
    assert len(found) == len(clinic_scores(b.id))
    assert rows(run(app, exports.ExportFormat.CSV_LONG, ())) == []
    # Filters: the protocol (by slug) and the course's start.
    a = (ew.world.clinic_a.id,)
    long = exports.ExportFormat.CSV_LONG
    everything = rows(run(app, long, a))
    assert rows(run(app, long, a, protocol=ew.world.protocol_a.slug)) == everything
    assert rows(run(app, long, a, protocol="no-such-protocol")) == []
    assert rows(run(app, long, a, start_from=ANCHOR_ON, start_to=ANCHOR_ON)) == everything
    later = ANCHOR_ON + dt.timedelta(days=1)
    assert rows(run(app, long, a, start_from=later)) == []
    assert rows(run(app, long, a, start_to=ANCHOR_ON - dt.timedelta(days=1))) == []


# csv-wide --------------------------------------------------------------------------------------


def test_wide_has_one_row_per_course_and_a_column_per_time_point_and_scale(
    app: Flask, ew: ExportWorld
) -> None:
    a = ew.world.clinic_a
    text = run(app, exports.ExportFormat.CSV_WIDE, (a.id,))
    found = rows(text)
    courses = {(p.id, e.id) for p in (ew.zelda, ew.formula, ew.waiting) for e in p.enrollments}
    assert {(int(r["patient"]), int(r["course"])) for r in found} == courses
    header = next(csv.reader(io.StringIO(text)))
    assert header.index("baseline.promis-pi-4a.total") < header.index(
        "end_of_course.promis-pi-4a.total"
    )
    assert header.index("baseline.pass-20.total") < header.index("baseline.pass-20.cognitive")
    for score in clinic_scores(a.id):
        [row] = [r for r in found if r["course"] == str(score.enrollment_id)]
        cell = row[f"{score.timepoint_key}.{score.instrument_code}.{score.scale}"]
        expected = score.t_score if score.t_score is not None else score.raw_score
        assert number(cell) == pytest.approx(expected)
    [waiting] = [r for r in found if r["patient"] == str(ew.waiting.id)]
    assert all(waiting[name] == "" for name in header if name.startswith("baseline."))


# items -----------------------------------------------------------------------------------------


def test_items_have_one_row_per_stored_answer_with_who_entered_it(
    app: Flask, ew: ExportWorld
) -> None:
    a = ew.world.clinic_a
    spec = exports.ExportSpec(exports.ExportFormat.ITEMS, (a.id,))
    running = exports.export(
        db.engine, deployment_registry(db.session), spec, Identity(), now=utcnow()
    )
    found = rows("".join(running.chunks))
    assert running.counter.rows == len(found)
    stored = db.session.execute(
        select(SurveyAnswer, SurveyResponse)
        .join(SurveyResponse, SurveyAnswer.response_id == SurveyResponse.id)
        .join(Assessment, SurveyResponse.assessment_id == Assessment.id)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Patient.clinic_id == a.id, SurveyResponse.status == ResponseStatus.SUBMITTED)
    ).all()
    assert len(found) == len(stored) > 0
    by_key = {(r["response"], r["item"]): r for r in found}
    for answer, response in stored:
        row = by_key[(str(response.id), answer.item_id)]
        assert row["value"] == ("" if answer.value is None else str(answer.value))
        assert row["instrument"] == response.instrument.code
        assert dt.datetime.fromisoformat(row["submitted_at"]) == response.submitted_at
    sources = {(r["patient"], r["entered_by"], r["entry_source"]) for r in found}
    assert sources == {(str(ew.zelda.id), "patient", ""), (str(ew.formula.id), "staff", "paper")}
    skipped = [
        r["value"]
        for r in found
        if (r["instrument"], r["item"]) == SKIPPED_ITEM and r["patient"] == str(ew.zelda.id)
    ]
    assert sorted(skipped) == ["", "0"]  # skipped at baseline, answered at the end of course


# Formula injection -----------------------------------------------------------------------------


def test_formula_cells_are_neutralised_and_names_never_exported(
    app: Flask, ew: ExportWorld
) -> None:
    for fmt in ("csv-long", "csv-wide", "items"):
        check_cells(run(app, exports.ExportFormat(fmt), (ew.world.clinic_a.id,)), fmt)


def check_cells(text: str, fmt: str) -> None:
    found = list(csv.reader(io.StringIO(text, newline="")))
    for row in found:
        for value in row:
            if value[:1] in ("=", "+", "@", "\t", "\r"):
                pytest.fail(f"a cell a spreadsheet would run: {value!r}")
            if value.startswith("-"):
                float(value)  # only numbers start with a minus
    mrns = {r[1] for r in found[1:]}
    assert "'" + FORMULAS["mrn"] in mrns
    if fmt == "csv-wide":  # the waiting patient has a course, no answers
        assert "'" + DDE_MRN in mrns
    for name in (FORMULAS["given_name"], FORMULAS["family_name"], "Zelda", "Quixote"):
        assert name not in text


def test_cell_neutralises_text_only() -> None:
    assert exports.cell("=1+2") == "'=1+2"
    assert exports.cell("-1") == "'-1"  # text that looks like a number is still text
    assert exports.cell("\tx") == "'\tx"
    assert exports.cell(-5.4) == "-5.4"
    assert exports.cell(-5) == "-5"
    assert exports.cell(61.0) == "61"
    assert exports.cell(None) == ""
    assert exports.cell("a=b") == "a=b"
