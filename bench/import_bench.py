"""Benchmark the enrollment import against bare inserts of the rows it writes.

Builds a CSV of N new patients on the bundled ketamine protocol (every window still to come) and
times, on a fresh SQLite file each and in the same run:
  baseline  the rows the import ends with (patients, enrollments, assessments, outbox rows),
            written with plain executemany INSERTs, nothing checked or planned
  import    `check_file` (every cell checked) then `apply` (patients, courses, windows and
            messages planned in the patient's time zone), in one transaction
and prints rows per second and the ratio import/baseline. Target: a 5,000-row file imports in
one request well inside gunicorn's 30 s timeout, at most 10x the bare inserts.

    .venv/bin/python bench/import_bench.py [--rows 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from proms import create_app
from proms.admin import importer
from proms.admin.models import Enrollment, Patient, Protocol
from proms.admin.services import create_clinic
from proms.db import db, utcnow
from proms.scheduling.models import Assessment, Notification
from proms.schema import upgrade


def app_for(path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{path}"
    upgrade(url)
    return create_app(
        {"ENV": "development", "TESTING": True, "SECRET_KEY": "b" * 40, "DATABASE_URL": url}
    )


def csv_file(rows: int, anchor: dt.date) -> bytes:
    lines = [
        "mrn,given_name,family_name,birth_date,email,phone,timezone,language,protocol,anchor_date"
    ]
    for n in range(rows):
        lines.append(
            f"B{n:06d},Ana,Lee{n},1960-01-01,ana{n}@example.org,,America/New_York,en,"
            f"ketamine-infusion-course,{anchor.isoformat()}"
        )
    return ("\n".join(lines) + "\n").encode()


def run_import(folder: Path, data: bytes) -> tuple[float, dict[str, int]]:
    app = app_for(folder / "import.sqlite3")
    with app.app_context():
        clinic = create_clinic(db.session, slug="b", name="B", time_zone="America/New_York")
        db.session.commit()
        start = time.perf_counter()
        plan = importer.check_file(db.session, clinic, data, today=utcnow().date())
        assert plan.is_clean
        importer.apply(db.session, plan, now=utcnow(), user=None)
        db.session.commit()
        elapsed = time.perf_counter() - start
        counts = {
            model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Patient, Enrollment, Assessment, Notification)
        }
    return elapsed, counts


def run_baseline(folder: Path, counts: dict[str, int]) -> float:
    """The same numbers of rows, with fixed values, by executemany."""
    app = app_for(folder / "baseline.sqlite3")
    now = utcnow()
    with app.app_context():
        clinic = create_clinic(db.session, slug="b", name="B", time_zone="America/New_York")
        protocol = db.session.scalars(sa.select(Protocol)).one()
        timepoints = [tp.id for tp in protocol.timepoints]
        db.session.commit()
        start = time.perf_counter()
        patients = counts["patient"]
        db.session.execute(
            sa.insert(Patient),
            [
                {
                    "clinic_id": clinic.id,
                    "mrn": f"B{n}",
                    "given_name": "Ana",
                    "family_name": "Lee",
                    "time_zone": "America/New_York",
                    "created_at": now,
                }
                for n in range(patients)
            ],
        )
        db.session.execute(
            sa.insert(Enrollment),
            [
                {
                    "patient_id": n + 1,
                    "protocol_id": protocol.id,
                    "anchor_on": now.date(),
                    "created_at": now,
                }
                for n in range(counts["enrollment"])
            ],
        )
        db.session.execute(
            sa.insert(Assessment),
            [
                {
                    "enrollment_id": n // len(timepoints) + 1,
                    "timepoint_id": timepoints[n % len(timepoints)],
                    "opens_at": now,
                    "due_at": now,
                    "closes_at": now + dt.timedelta(days=1),
                    "created_at": now,
                }
                for n in range(counts["assessment"])
            ],
        )
        db.session.execute(
            sa.insert(Notification),
            [
                {
                    "idempotency_key": f"k{n}",
                    "patient_id": n % patients + 1,
                    "assessment_id": None,
                    "kind": "invite",
                    "channel": "email",
                    "send_after": now,
                }
                for n in range(counts["notification"])
            ],
        )
        db.session.commit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    anchor = utcnow().date() + dt.timedelta(days=30)
    data = csv_file(args.rows, anchor)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        imported, counts = run_import(folder, data)
        baseline = run_baseline(folder, counts)
    rows = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    print(f"import of {args.rows:,} rows ({rows})")
    print(f"  baseline (bare inserts)  {baseline:6.2f} s")
    print(f"  import (check + apply)   {imported:6.2f} s  {args.rows / imported:,.0f} rows/s")
    print(
        f"  ratio                    {imported / baseline:6.2f}x  (target: at most 10x, under 30 s)"
    )


if __name__ == "__main__":
    main()
