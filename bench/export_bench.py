"""Benchmark the exports' memory: peak Python memory exporting N courses vs 10N.

Builds a database of N patients, each with one course of the bundled ketamine protocol whose
baseline and end of course were answered (PROMIS pain interference 4a and PEG: four responses,
fourteen answers and four scores per patient), then exports every format (csv-long, csv-wide,
items, fhir; identified and de-identified csv-long) through `proms.care.exports`, as the web
page and `proms export` do, and records the peak of Python's allocations (tracemalloc) while the
chunks are consumed and dropped (a second run: the first, untraced, gives the seconds and rows
per second, since tracing slows Python several times). Then it adds 9N patients and does it
again. It prints rows, seconds, rows per second and each peak, and the ratio of the peaks, 10N
against N.

Target: memory flat in the number of rows (a ratio of about 1; it exits non-zero above 1.5).
A baseline from the same run: the peak of reading the same score rows with a plain streamed
`SELECT` (what any export must at least hold), printed beside.

    .venv/bin/python bench/export_bench.py [--patients 1000] [--postgres]

SQLite by default (a throwaway file); with --postgres a throwaway database on the server in
PROMS_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/), where the
rows come through a server-side cursor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from proms import create_app
from proms.admin.models import Enrollment, Patient, ProtocolTimepoint
from proms.admin.services import bundled_protocol, create_clinic, install_protocol
from proms.care import exports
from proms.care.deidentify import Identity, Pseudonyms
from proms.catalog.services import deployment_registry, snapshot
from proms.db import db
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Score
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.schema import upgrade
from proms.scoring import SCORING_VERSION, score
from proms.scoring.types import Method
from proms.surveys.models import ResponseStatus, SurveyAnswer, SurveyResponse

SERVER = os.environ.get("PROMS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
ANCHOR_ON = dt.date(2026, 3, 2)
TIMES = {
    "baseline": dt.datetime(2026, 2, 25, 15, 0, tzinfo=dt.UTC),
    "end_of_course": dt.datetime(2026, 3, 8, 15, 0, tzinfo=dt.UTC),
}
CODES = ("promis-pi-4a", "peg")
RATIO_LIMIT = 1.5


@contextmanager
def database(postgres: bool) -> Iterator[str]:
    """A new, empty database (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    if not postgres:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'export.sqlite3'}"
        return
    name = f"proms_export_bench_{secrets.token_hex(4)}"
    server = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


class Generator:
    """Inserts patients with two answered time points, in bulk (plain INSERTs)."""

    def __init__(self) -> None:
        registry = bundled_registry()
        self.definitions = [registry.get(code) for code in CODES]
        clinic = create_clinic(db.session, slug="bench", name="Bench", time_zone="UTC")
        protocol = install_protocol(
            db.session, clinic, bundled_protocol("ketamine-infusion-course")
        )
        self.clinic_id, self.protocol_id = clinic.id, protocol.id
        self.instrument_ids = {d.code: snapshot(db.session, d).id for d in self.definitions}
        timepoints = db.session.scalars(
            sa.select(ProtocolTimepoint).where(ProtocolTimepoint.protocol_id == protocol.id)
        )
        self.timepoint_ids = {tp.key: tp.id for tp in timepoints if tp.key in TIMES}
        db.session.commit()
        # A few answer patterns per instrument, scored once by the real engine.
        self.patterns: dict[str, list[tuple[dict[str, int], Any]]] = {}
        for definition in self.definitions:
            found = []
            for shift in range(4):
                answers = {
                    item.id: item.values[(n + shift) % len(item.values)]
                    for n, item in enumerate(definition.items)
                }
                [result] = [
                    r for r in score(definition.form(), answers) if r.method is not Method.NONE
                ]
                found.append((answers, result))
            self.patterns[definition.code] = found
        self.made = 0

    def _next_ids(self, model: Any) -> int:
        return int(db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(model.id), 0)))) + 1

    def add(self, patients: int) -> None:
        session = db.session
        first = {m: self._next_ids(m) for m in (Patient, Enrollment, Assessment, SurveyResponse)}
        patient_rows, course_rows, assessment_rows = [], [], []
        response_rows: list[dict[str, Any]] = []
        answer_rows: list[dict[str, Any]] = []
        score_rows: list[dict[str, Any]] = []
        assessment_id, response_id = first[Assessment], first[SurveyResponse]
        for n in range(patients):
            number = self.made + n
            patient_id, course_id = first[Patient] + n, first[Enrollment] + n
            patient_rows.append(
                {
                    "id": patient_id,
                    "clinic_id": self.clinic_id,
                    "mrn": f"M{number:07d}",
                    "given_name": "Ana",
                    "family_name": f"Lee{number}",
                    "birth_on": dt.date(1950 + number % 40, 1 + number % 12, 1 + number % 28),
                    "email": f"p{number}@example.org",
                    "time_zone": "America/New_York",
                }
            )
            course_rows.append(
                {
                    "id": course_id,
                    "patient_id": patient_id,
                    "protocol_id": self.protocol_id,
                    "anchor_on": ANCHOR_ON,
                }
            )
            for key, at in TIMES.items():
                assessment_rows.append(
                    {
                        "id": assessment_id,
                        "enrollment_id": course_id,
                        "timepoint_id": self.timepoint_ids[key],
                        "opens_at": at - dt.timedelta(days=3),
                        "due_at": at,
                        "closes_at": at + dt.timedelta(days=3),
                        "status": AssessmentStatus.COMPLETED,
                        "completed_at": at,
                    }
                )
                for definition in self.definitions:
                    answers, result = self.patterns[definition.code][number % 4]
                    response_rows.append(
                        {
                            "id": response_id,
                            "assessment_id": assessment_id,
                            "instrument_id": self.instrument_ids[definition.code],
                            "status": ResponseStatus.SUBMITTED,
                            "submitted_at": at,
                        }
                    )
                    answer_rows.extend(
                        {"response_id": response_id, "item_id": item, "value": value}
                        for item, value in answers.items()
                    )
                    follow_up = key != "baseline"
                    score_rows.append(
                        {
                            "response_id": response_id,
                            "scale": result.scale,
                            "patient_id": patient_id,
                            "enrollment_id": course_id,
                            "assessment_id": assessment_id,
                            "timepoint_key": key,
                            "instrument_code": definition.code,
                            "instrument_version": definition.version,
                            "domain": definition.domain,
                            "observed_at": at,
                            "raw_score": result.raw_score,
                            "t_score": result.t_score,
                            "standard_error": result.standard_error,
                            "n_answered": result.n_answered,
                            "method": result.method.value,
                            "scoring_version": SCORING_VERSION,
                            "improvement": -1.5 if follow_up else None,
                            "percent_improvement": -12.5 if follow_up else None,
                            "reliable_change_index": 0.4 if follow_up else None,
                            "change_by_threshold": "no meaningful change" if follow_up else None,
                            "change_by_individual": "no meaningful change" if follow_up else None,
                        }
                    )
                    response_id += 1
                assessment_id += 1
        for model, rows in (
            (Patient, patient_rows),
            (Enrollment, course_rows),
            (Assessment, assessment_rows),
            (SurveyResponse, response_rows),
            (SurveyAnswer, answer_rows),
            (Score, score_rows),
        ):
            session.execute(sa.insert(model), rows)
        session.commit()
        self.made += patients


Measure = tuple[int, float, int]  # rows, seconds (untraced), peak bytes (traced)


def export_once(engine: sa.Engine, registry: Any, spec: exports.ExportSpec, ids: Any) -> int:
    running = exports.export(engine, registry, spec, ids, now=dt.datetime.now(dt.UTC))
    for _chunk in running.chunks:
        pass  # sent and forgotten, as a streamed response does
    return running.counter.rows


def select_once(engine: sa.Engine, *_: Any) -> int:
    """The baseline: the same score rows read with a plain streamed SELECT and dropped."""
    rows = 0
    with engine.connect() as connection:
        result = connection.execute(sa.select(Score).execution_options(yield_per=1000))
        for _row in result:
            rows += 1
    return rows


def measure(run: Any, *args: Any) -> Measure:
    """Seconds without tracing (tracemalloc slows Python several times), then the peak of
    Python's allocations in a second, traced run."""
    start = time.perf_counter()
    rows = run(*args)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        run(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rows, elapsed, peak


def cases(clinic_id: int) -> list[tuple[str, exports.ExportSpec, Any]]:
    pseudonyms = Pseudonyms(b"bench-" + b"k" * 32)
    found = []
    for fmt in exports.ExportFormat:
        found.append((fmt.value, exports.ExportSpec(fmt, (clinic_id,)), Identity()))
    long = exports.ExportSpec(exports.ExportFormat.CSV_LONG, (clinic_id,), deidentified=True)
    found.append(("csv-long de-identified", long, pseudonyms))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000, help="N (then 10N)")
    parser.add_argument("--postgres", action="store_true", help="on PROMS_BENCH_POSTGRES_URL")
    args = parser.parse_args()
    with database(args.postgres) as url:
        upgrade(url)
        app = create_app(
            {"ENV": "development", "TESTING": True, "SECRET_KEY": "b" * 40, "DATABASE_URL": url}
        )
        with app.app_context():
            generator = Generator()
            registry = deployment_registry(db.session)
            engine = db.engine
            generator.add(50)
            for _, spec, ids in cases(generator.clinic_id):  # warm: compiled SQL, caches
                measure(export_once, engine, registry, spec, ids)
            results: dict[str, list[Measure]] = {}
            sizes = []
            for target in (args.patients, 10 * args.patients):
                print(f"generating {target - generator.made:,} patients ...", flush=True)
                generator.add(target - generator.made)
                db.session.remove()
                sizes.append(target)
                results.setdefault("plain SELECT of the scores (baseline)", []).append(
                    measure(select_once, engine)
                )
                for name, spec, ids in cases(generator.clinic_id):
                    results.setdefault(name, []).append(
                        measure(export_once, engine, registry, spec, ids)
                    )
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\nexport memory, {kind}: {sizes[0]:,} vs {sizes[1]:,} patients")
    print(
        f"{'export':<40} {'rows':>9} {'s':>6} {'rows/s':>8} {'peak KiB':>9} | "
        f"{'rows':>9} {'s':>6} {'rows/s':>8} {'peak KiB':>9} | ratio"
    )
    worst = 0.0
    for name, ((rows1, s1, p1), (rows2, s2, p2)) in results.items():
        ratio = p2 / p1
        if not name.startswith("plain"):
            worst = max(worst, ratio)
        print(
            f"{name:<40} {rows1:>9,} {s1:>6.2f} {rows1 / s1:>8,.0f} {p1 / 1024:>9,.0f} | "
            f"{rows2:>9,} {s2:>6.2f} {rows2 / s2:>8,.0f} {p2 / 1024:>9,.0f} | {ratio:.2f}x"
        )
    verdict = "flat" if worst <= RATIO_LIMIT else "GROWS"
    limit = f"target about 1x, at most {RATIO_LIMIT}x"
    print(f"largest peak ratio 10N/N: {worst:.2f}x ({limit}): {verdict}")
    return 0 if worst <= RATIO_LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
