"""Benchmark the audit log's hash chain against the same audit inserts without it.

A "page view" transaction as the care pages make one: read a row, record an audit event the way
`audit_patient_view` does (inserted at the commit), commit. Measured in the same run, on the same
database, alternating the two sides:
  chain     proms as it is: the before_flush listener takes the chain's lock (PostgreSQL: an
            advisory lock held until the commit; SQLite: the write lock every transaction holds
            already), reads the newest link, draws the id and computes the HMAC
  baseline  the same ORM insert with the listener removed (random links, no lock, no read)
with 1 writer and with --threads writers at once, each side --seconds long; prints events per
second and ratio = baseline / chain (the chain's cost: 1.0 is free). The database is a throwaway
one: PostgreSQL on PROMS_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/;
a URL that names a database gets a schema in it), or SQLite in a temporary directory
(--database sqlite). Target: at most 1.3x with one writer; report the concurrent figure.

    .venv/bin/python bench/audit_chain_bench.py [--database postgresql|sqlite] [--threads 4]
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _pg import DEFAULT_SERVER, scratch_database

import proms.models  # noqa: F401 - registers every table on the metadata
from proms import audit_chain
from proms.admin.models import Clinic
from proms.auth.services import record_event
from proms.db import Base


def page_view(session: Session, clinic_id: int, *, chained: bool) -> None:
    session.get(Clinic, clinic_id, populate_existing=True)
    event_ = record_event(
        session, "patient.view", clinic_id=clinic_id, detail={"page": "bench"}, at_commit=True
    )
    if not chained:
        event_.prev_hash = secrets.token_hex(32)
        event_.chain_hash = secrets.token_hex(32)
    session.commit()


def run(
    factory: sessionmaker[Session], clinic_id: int, *, chained: bool, threads: int, seconds: float
) -> float:
    """Events per second of `threads` writers for `seconds`."""
    done = [0] * threads
    stop = time.perf_counter() + seconds
    start = threading.Barrier(threads)

    def work(slot: int) -> None:
        with factory() as session:
            start.wait()
            while time.perf_counter() < stop:
                page_view(session, clinic_id, chained=chained)
                done[slot] += 1

    began = time.perf_counter()
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / (time.perf_counter() - began)


def without_chain(measure: Callable[[], float]) -> float:
    event.remove(Session, "before_flush", audit_chain._chain_new_events)
    try:
        return measure()
    finally:
        event.listen(Session, "before_flush", audit_chain._chain_new_events)


def bench(url: str, threads: int, seconds: float) -> None:
    engine = sa.create_engine(url, pool_size=threads + 2)
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        clinic = Clinic(slug="bench", name="Bench clinic", time_zone="UTC")
        session.add(clinic)
        session.commit()
        clinic_id = clinic.id
    print(f"database: {engine.dialect.name}; {seconds:.0f} s per side, alternating")
    for writers in (1, threads):
        chain = base = 0.0
        for _ in range(2):  # alternate, so drift in the machine's load hits both sides
            base += without_chain(
                functools.partial(
                    run, factory, clinic_id, chained=False, threads=writers, seconds=seconds
                )
            )
            chain += run(factory, clinic_id, chained=True, threads=writers, seconds=seconds)
        print(
            f"{writers} writer(s): chain {chain / 2:8.1f} events/s, baseline {base / 2:8.1f} "
            f"events/s, ratio {base / chain:.2f}x"
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            bench(f"sqlite:///{tmp}/bench.sqlite3", args.threads, args.seconds)
        return
    server = os.environ.get("PROMS_BENCH_POSTGRES_URL", DEFAULT_SERVER)
    with scratch_database(server, "audit_bench") as url:
        bench(url, args.threads, args.seconds)


if __name__ == "__main__":
    main()
