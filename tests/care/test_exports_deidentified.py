"""De-identified exports: keyed pseudonyms, one date shift per patient, nothing naming anyone."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from proms.admin.models import Patient
from proms.care import exports
from proms.care.deidentify import (
    DEFAULT_PSEUDONYM_KEY,
    MAX_SHIFT_DAYS,
    ExportRefused,
    age_band,
    pseudonym_key_problem,
)
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from tests.care.exports_world import DDE_MRN, FORMULAS, ZELDA, ExportWorld, build
from tests.helpers import World

FORMATS = [f.value for f in exports.ExportFormat]


@pytest.fixture
def ew(world: World) -> ExportWorld:
    return build(world)


def run(app: Flask, fmt: str, clinic_ids: tuple[int, ...], deidentified: bool = True) -> str:
    spec = exports.ExportSpec(exports.ExportFormat(fmt), clinic_ids, deidentified=deidentified)
    ids = exports.identifiers_for(spec, app.config)
    running = exports.export(db.engine, deployment_registry(db.session), spec, ids, now=utcnow())
    return "".join(running.chunks)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def identifying() -> set[str]:
    """Everything about the patients that must not be in a de-identified export."""
    found: set[str] = set()
    for patient in db.session.scalars(select(Patient)):
        found |= {patient.mrn, patient.given_name, patient.family_name, patient.display_name}
        found |= {v for v in (patient.email, patient.phone) if v}
        if patient.birth_on:
            found.add(patient.birth_on.isoformat())
    return found


def strings(value: Any) -> Iterator[str]:
    """Every string in parsed JSON, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_nothing_that_names_a_patient_is_exported(app: Flask, ew: ExportWorld) -> None:
    for fmt in FORMATS:
        check_nothing_names(run(app, fmt, (ew.world.clinic_a.id, ew.world.clinic_b.id)), fmt)


def check_nothing_names(text: str, fmt: str) -> None:
    if fmt == "fhir":
        data = json.loads(text)
        values = set(strings(data))
    else:
        values = {cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row}
    secret = identifying()
    assert {ZELDA["given_name"], FORMULAS["mrn"], DDE_MRN} <= secret
    assert values.isdisjoint(secret | {"'" + v for v in secret})
    assert [v for v in secret if len(v) >= 6 and v in text] == []  # nor inside a longer text
    if fmt == "fhir":
        assert data["meta"]["security"][0]["code"] == "PSEUDED"
        patients = [
            e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient"
        ]
        assert len(patients) == 4
        for patient in patients:
            assert set(patient) == {"resourceType", "id", "identifier"}
            assert re.fullmatch(r"P[0-9a-f]{20}", patient["id"])
        return
    found = rows(text)
    assert found
    assert "mrn" not in found[0]
    for row in found:
        assert re.fullmatch(r"P[0-9a-f]{20}", row["patient"])
        assert re.fullmatch(r"C[0-9a-f]{20}", row["course"])
        if "response" in row:
            assert re.fullmatch(r"R[0-9a-f]{20}", row["response"])


def test_pseudonyms_are_stable_and_keyed(app: Flask, ew: ExportWorld) -> None:
    a = (ew.world.clinic_a.id,)
    first = run(app, "csv-long", a)
    assert run(app, "csv-long", a) == first  # the same key: the same pseudonyms and dates
    key = str(app.config["EXPORT_PSEUDONYM_KEY"]).encode()
    expected = "P" + hmac.new(key, f"patient:{ew.zelda.id}".encode(), hashlib.sha256).hexdigest()
    assert expected[:21] in first
    unkeyed = hashlib.sha256(f"patient:{ew.zelda.id}".encode()).hexdigest()[:20]
    assert unkeyed not in first

    app.config["EXPORT_PSEUDONYM_KEY"] = "another-key-" + "x" * 32
    other = run(app, "csv-long", a)
    assert {r["patient"] for r in rows(other)}.isdisjoint({r["patient"] for r in rows(first)})
    assert len(rows(other)) == len(rows(first))


def shifts(identified: list[dict[str, str]], deidentified: list[dict[str, str]], column: str):  # type: ignore[no-untyped-def]
    """Per patient (by identified id): the set of differences between the two exports' dates."""
    assert len(identified) == len(deidentified)
    found: dict[str, set[dt.timedelta]] = defaultdict(set)
    for real, moved in zip(identified, deidentified, strict=True):
        found[real["patient"]].add(
            dt.datetime.fromisoformat(moved[column]) - dt.datetime.fromisoformat(real[column])
        )
        found[real["patient"]].add(
            dt.datetime.fromisoformat(moved["course_start"])
            - dt.datetime.fromisoformat(real["course_start"])
        )
        assert moved["days_since_course_start"] == real["days_since_course_start"]
    return found


@pytest.mark.parametrize(
    ("fmt", "column"), [("csv-long", "observed_at"), ("items", "submitted_at")]
)
def test_dates_move_by_one_offset_per_patient(
    app: Flask, ew: ExportWorld, fmt: str, column: str
) -> None:
    a = (ew.world.clinic_a.id,)
    identified = rows(run(app, fmt, a, deidentified=False))
    deidentified = rows(run(app, fmt, a))
    per_patient = shifts(identified, deidentified, column)
    assert len(per_patient) == 2  # Zelda and the patient entered on paper
    offsets = []
    for moved in per_patient.values():
        [offset] = moved  # every date of the patient by the same amount: intervals kept
        assert offset != dt.timedelta(0)
        assert abs(offset) <= dt.timedelta(days=MAX_SHIFT_DAYS)
        assert offset == dt.timedelta(days=offset.days)  # whole days: times of day kept
        offsets.append(offset)
    # Zelda's baseline and end of course stay as far apart as they were.
    zelda = [r for r in identified if r["patient"] == str(ew.zelda.id)]
    moved_zelda = [m for r, m in zip(identified, deidentified, strict=True) if r in zelda]
    real_days = {dt.datetime.fromisoformat(r[column]).date() for r in zelda}
    moved_days = {dt.datetime.fromisoformat(m[column]).date() for m in moved_zelda}
    assert max(real_days) - min(real_days) == max(moved_days) - min(moved_days) > dt.timedelta(0)


def test_production_needs_a_real_key(app: Flask) -> None:
    for key in ("", DEFAULT_PSEUDONYM_KEY, "short"):
        problem = pseudonym_key_problem({"ENV": "production", "EXPORT_PSEUDONYM_KEY": key})
        assert problem is not None
        assert "PROMS_EXPORT_PSEUDONYM_KEY" in problem
    assert pseudonym_key_problem({"ENV": "production", "EXPORT_PSEUDONYM_KEY": "k" * 32}) is None
    assert pseudonym_key_problem({"ENV": "development", "EXPORT_PSEUDONYM_KEY": "dev"}) is None

    app.config["ENV"] = "production"
    spec = exports.ExportSpec(exports.ExportFormat.CSV_LONG, (1,), deidentified=True)
    with pytest.raises(ExportRefused):
        exports.identifiers_for(spec, app.config)
    identified = exports.ExportSpec(exports.ExportFormat.CSV_LONG, (1,))
    assert not exports.identifiers_for(identified, app.config).deidentified


def test_age_bands() -> None:
    on = dt.date(2026, 3, 2)
    assert age_band(dt.date(1960, 3, 2), on) == "65-69"
    assert age_band(dt.date(1961, 3, 3), on) == "60-64"  # 65 tomorrow
    assert age_band(dt.date(1930, 1, 1), on) == "90+"
    assert age_band(None, on) is None
