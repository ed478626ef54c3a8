"""Benchmark the dispatcher against claiming and marking the same rows with no work between.

Creates two throwaway PostgreSQL databases (`proms db upgrade`, dropped at the end), with N/10
and N patients of one clinic on the bundled protocol, each patient with exactly one invitation
due at DUE (10:00 in New York; their courses' other messages come later), made by
`enroll_many` as an import makes them. Then, each time from the same state (the due rows back to
pending, their links deleted, the tables vacuumed), in the same run:
  ceiling    the dispatcher's own claim (`SELECT id ... FOR UPDATE SKIP LOCKED LIMIT n`, batches
             of DISPATCH_BATCH_SIZE) and one UPDATE marking the batch sent, committed per batch,
             nothing else; one connection, or two at once; the median of three passes
  dispatch   the scheduler's dispatch sweep (`Runner.run`, as `proms scheduler` runs it) in one
             process, or two at once, with the null channel; timed from the sweep's start to its
             end inside the process (start-up excluded)
and prints messages per second and the ratio to the ceiling (target: at least 0.25x), and the
scheduler's peak memory at N/10 and N rows (target: flat in the number of rows). Last, the whole
`proms scheduler --once --now DUE` on the N/10 database, each sweep timed from its log line: the
windows and reconcile sweeps run before dispatch and take their own time.

Gates, checked after every run: every due row sent (lost = 0), and sent once (duplicates = 0:
a row tried more than once, or with more than one link minted; the null channel cannot see a
message go twice). The targets are reported, not asserted; the script exits non-zero when a gate
fails or the setup does.

    .venv/bin/python bench/dispatch_bench.py [--rows 100000] [--quick]

PROMS_BENCH_POSTGRES_URL is the server to create the databases on (default
postgresql+psycopg://postgres@127.0.0.1:5432/).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from proms import create_app
from proms.admin import enrollment as enrollments
from proms.admin.models import Patient, Protocol
from proms.admin.services import create_clinic
from proms.db import db
from proms.scheduling.models import Notification, NotificationStatus

ROOT = Path(__file__).resolve().parent.parent
PROMS = str(Path(sys.executable).with_name("proms"))
SERVER = os.environ.get("PROMS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
# As in tests/scheduling/test_scheduler_processes.py: enrolled on the 1st, the baseline window
# opens (and its invitation is due) on the 4th at 10:00 in New York; the reminders come later.
ENROLLED = dt.datetime(2027, 1, 1, 15, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2027, 1, 4, 15, 0, tzinfo=dt.UTC)
ANCHOR = dt.date(2027, 1, 18)
BATCH_SIZE = 200  # proms.config DISPATCH_BATCH_SIZE
CHUNK = 5000  # patients enrolled per enroll_many call while setting up
TARGET = 0.25

# Runs a command and writes its peak memory (KiB) to a file. A child's ru_maxrss counts what
# the process that forked it had resident (Linux keeps the high-water mark across exec), so
# each measured process is started from this small one, not from the benchmark's own.
LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as peak:
    peak.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""

# The dispatch sweep alone, in a process of its own made as `proms scheduler` makes its app.
DISPATCH_SWEEP = """
import datetime as dt, sys, time
from proms import create_app
from proms.notify.null import NullSender
from proms.scheduling.runner import SWEEPS, Runner
runner = Runner(create_app(serving=False))
if not all(isinstance(sender, NullSender) for sender in runner.senders.values()):
    sys.exit("PROMS_MESSAGE_TRANSPORT did not select the null channel")
sweep = next(sweep for sweep in SWEEPS if sweep.id == "dispatch")
started = time.time()
print(runner.run(sweep, dt.datetime.fromisoformat(sys.argv[1])))
print(f"timed {started} {time.time()}")
"""


# `proms scheduler --once ...` (the proms command's own entry point) with a logging configuration
# of its own, which the command keeps: each sweep's line carries the time it ended.
WHOLE_COMMAND = """
import logging, sys
logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("proms.scheduler").setLevel(logging.INFO)
from proms.cli import main
sys.argv[0] = "proms"
main()
"""


# The databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards, whatever happened."""
    name = f"bench_dispatch_{secrets.token_hex(4)}"
    server = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def environment(url: str, outbox: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROMS_ENV": "development",
        "PROMS_DATABASE_URL": url,
        "PROMS_PUBLIC_BASE_URL": "https://proms.example.org",
        # The null channel (the child checks it got it; the outbox folder must stay empty).
        "PROMS_MESSAGE_TRANSPORT": "null",
        "PROMS_OUTBOX_DIR": str(outbox),
        "PROMS_DISPATCH_BATCH_SIZE": str(BATCH_SIZE),
    }


def populate(url: str, rows: int, outbox: Path) -> list[int]:
    """`proms db upgrade`, one clinic, `rows` patients each with one invitation due at DUE.

    Returns the ids of the due rows.
    """
    subprocess.run(
        [PROMS, "db", "upgrade"],
        env=environment(url, outbox),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    app = create_app({"ENV": "development", "SECRET_KEY": "b" * 40, "DATABASE_URL": url})
    with app.app_context():
        clinic = create_clinic(db.session, slug="b", name="B", time_zone="America/New_York")
        clinic_id = clinic.id
        db.session.commit()
        for start in range(0, rows, CHUNK):
            ids = db.session.scalars(
                sa.insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
                [
                    {
                        "clinic_id": clinic_id,
                        "mrn": f"P{n:07d}",
                        "given_name": "Pat",
                        "family_name": f"Many{n}",
                        "email": f"p{n}@example.org",
                        "time_zone": "America/New_York",
                    }
                    for n in range(start, min(start + CHUNK, rows))
                ],
            ).all()
            patients = db.session.scalars(sa.select(Patient).where(Patient.id.in_(ids))).all()
            protocol = db.session.scalars(sa.select(Protocol)).one()
            enrollments.enroll_many(
                db.session, protocol, [(p, ANCHOR) for p in patients], now=ENROLLED
            )
            db.session.commit()
            db.session.expunge_all()  # each chunk's objects go: the set-up stays small
        due = db.session.scalars(
            sa.select(Notification.id).where(
                Notification.send_after <= DUE, Notification.status == NotificationStatus.PENDING
            )
        ).all()
        db.session.remove()
        db.engine.dispose()
    if len(due) != rows:
        raise SystemExit(f"the set-up made {len(due)} due messages, not {rows}")
    return list(due)


def reset(engine: sa.Engine, due: Sequence[int]) -> None:
    """The due rows pending as planned again, no links; vacuumed, so every run starts alike."""
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM access_token"))
        connection.execute(
            sa.text(
                "UPDATE notification SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
                "claimed_at = NULL, claimed_by = NULL, handed_over_at = NULL, sent_at = NULL, "
                "provider_message_id = NULL, unsubscribe_hash = NULL, last_error = NULL, "
                "cancel_reason = NULL WHERE id = ANY(:ids)"
            ),
            {"ids": list(due)},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE notification"))
        connection.execute(sa.text("VACUUM ANALYZE access_token"))


@dataclass(frozen=True, slots=True)
class Gates:
    lost: int  # due rows not sent
    duplicates: int  # rows tried more than once, or with more than one link

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def gates(engine: sa.Engine, due: Sequence[int]) -> Gates:
    ids = {"ids": list(due)}
    with engine.connect() as connection:
        sent = connection.scalar(
            sa.text("SELECT count(*) FROM notification WHERE id = ANY(:ids) AND status = 'sent'"),
            ids,
        )
        retried = connection.scalar(
            sa.text("SELECT count(*) FROM notification WHERE id = ANY(:ids) AND attempts > 1"),
            ids,
        )
        relinked = connection.scalar(
            sa.text(
                "SELECT count(*) FROM (SELECT notification_id FROM access_token "
                "WHERE notification_id = ANY(:ids) GROUP BY notification_id "
                "HAVING count(*) > 1) AS twice"
            ),
            ids,
        )
    return Gates(lost=len(due) - sent, duplicates=retried + relinked)


# The ceiling: claim and mark, nothing between ---------------------------------------------------


def claim_and_mark(url: str, worker: str) -> None:
    """The dispatcher's claim query and one UPDATE per batch, committed per batch, until none."""
    table = Notification.__table__
    claim = (
        sa.select(table.c.id)
        .where(
            table.c.status == NotificationStatus.PENDING,
            table.c.send_after <= DUE,
            table.c.next_attempt_at.is_(None) | (table.c.next_attempt_at <= DUE),
        )
        .order_by(table.c.send_after, table.c.id)
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True)
    )
    mark = (
        table.update()
        .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
        .values(
            status=NotificationStatus.SENT,
            sent_at=DUE,
            attempts=table.c.attempts + 1,
            claimed_at=DUE,
            claimed_by=worker,
        )
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        while True:
            with connection.begin():
                ids = connection.scalars(claim).all()
                if not ids:
                    break
                connection.execute(mark, {"ids": list(ids)})
    engine.dispose()


def ceiling(url: str, workers: int) -> float:
    """Seconds for `workers` connections at once to claim and mark every due row."""
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        running = [pool.submit(claim_and_mark, url, f"ceiling:{n}") for n in range(workers)]
        for future in running:
            future.result()
        return time.perf_counter() - start


# The schedulers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finished:
    """One child process, run to its end."""

    stdout: str
    stderr: str
    seconds: float  # wall time, start-up included
    peak_kib: int  # peak resident memory


def run_at_once(
    commands: Sequence[list[str]], env: dict[str, str], workdir: Path
) -> list[Finished]:
    """Start the commands together, wait for all; each one's output and peak memory."""
    running = []
    for n, command in enumerate(commands):
        out = (workdir / f"out-{n}").open("w+", encoding="utf-8")
        err = (workdir / f"err-{n}").open("w+", encoding="utf-8")
        peak = workdir / f"peak-{n}"
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(peak), *command],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        running.append((process, out, err, peak, time.perf_counter()))
    finished = []
    for process, out, err, peak, start in running:
        status = process.wait()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
        if status != 0 or "failed\n" in stdout:
            raise SystemExit(f"{' '.join(commands[0])} failed:\n{stdout}\n{stderr[-3000:]}")
        finished.append(Finished(stdout, stderr, seconds, int(peak.read_text())))
    return finished


def claimed(stdout: str) -> int:
    found = re.search(r"^dispatch: claimed=(\d+) ", stdout, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no dispatch line in:\n{stdout}")
    return int(found[1])


def check_outbox(outbox: Path) -> None:
    if outbox.exists() and any(outbox.iterdir()):
        raise SystemExit(f"messages were written to {outbox}: the null channel was not used")


@dataclass(frozen=True, slots=True)
class Row:
    rows: int
    processes: int
    seconds: float
    ceiling_seconds: float
    peak_mib: float  # the largest of the processes'
    claimed: list[int]  # by each process
    gates: Gates

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def ceiling_rate(self) -> float:
        return self.rows / self.ceiling_seconds


def measure(url: str, due: list[int], processes: int, workdir: Path) -> Row:
    """The ceiling with `processes` connections, then the dispatch sweep in as many processes."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    ceilings = []
    for _ in range(3):  # the median of three: one pass over 100,000 rows takes a few seconds
        reset(engine, due)
        ceilings.append(ceiling(url, processes))
        baseline = gates(engine, due)
        if not baseline.passed:
            raise SystemExit(f"the ceiling loop itself lost or repeated rows: {baseline}")
    ceiling_seconds = sorted(ceilings)[1]
    reset(engine, due)
    outbox = workdir / "outbox"
    command = [sys.executable, "-c", DISPATCH_SWEEP, DUE.isoformat()]
    runs = run_at_once([command] * processes, environment(url, outbox), workdir)
    check_outbox(outbox)
    timed = [re.search(r"^timed (\S+) (\S+)$", run.stdout, re.MULTILINE) for run in runs]
    if not all(timed):
        raise SystemExit(f"no timing line in: {[run.stdout for run in runs]}")
    starts = [float(found[1]) for found in timed if found]
    ends = [float(found[2]) for found in timed if found]
    result = gates(engine, due)
    engine.dispose()
    return Row(
        rows=len(due),
        processes=processes,
        seconds=max(ends) - min(starts),
        ceiling_seconds=ceiling_seconds,
        peak_mib=max(run.peak_kib for run in runs) / 1024,
        claimed=[claimed(run.stdout) for run in runs],
        gates=result,
    )


LOG_LINE = re.compile(r"^(\S+ \S+) INFO proms\.scheduler: (\w+): ")


def whole_command(
    url: str, due: list[int], workdir: Path
) -> tuple[Finished, list[tuple[str, float]], Gates]:
    """`proms scheduler --once --now DUE`, each sweep timed from the log line it ends with."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    reset(engine, due)
    outbox = workdir / "outbox"
    started = time.time()
    [run] = run_at_once(
        [[sys.executable, "-c", WHOLE_COMMAND, "scheduler", "--once", "--now", DUE.isoformat()]],
        environment(url, outbox),
        workdir,
    )
    check_outbox(outbox)
    result = gates(engine, due)
    engine.dispose()
    if "dispatch: claimed=" not in run.stdout:
        raise SystemExit(f"no dispatch line in:\n{run.stdout}")
    sweeps = []
    previous = started
    for line in run.stderr.splitlines():
        found = LOG_LINE.match(line)
        if found:
            # logging's asctime is local time, as is fromtimestamp's default.
            ended = dt.datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007
            sweeps.append((found[2], ended - previous))
            previous = ended
    if "dispatch" not in [name for name, _seconds in sweeps]:
        raise SystemExit(f"cannot time the sweeps from the log:\n{run.stderr[-3000:]}")
    return run, sweeps, result


# The run ---------------------------------------------------------------------------------------


def report(results: Sequence[Row]) -> None:
    print(
        f"  {'rows':>8} {'procs':>5} {'seconds':>8} {'msg/s':>7} {'ceiling msg/s':>13} "
        f"{'ratio':>6} {'peak MiB':>8} {'lost':>4} {'dups':>4}  claimed by each"
    )
    for row in results:
        print(
            f"  {row.rows:>8,} {row.processes:>5} {row.seconds:>8.2f} {row.rate:>7,.0f} "
            f"{row.ceiling_rate:>13,.0f} {row.rate / row.ceiling_rate:>5.2f}x "
            f"{row.peak_mib:>8.1f} {row.gates.lost:>4} {row.gates.duplicates:>4}  "
            + " + ".join(f"{n:,}" for n in row.claimed)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run of 5,000 rows")
    args = parser.parse_args()
    rows = 5000 if args.quick else args.rows
    small = rows // 10
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database() as small_url,
        scratch_database() as large_url,
    ):
        workdir = Path(tmp)
        start = time.perf_counter()
        small_due = populate(small_url, small, workdir / "outbox")
        large_due = populate(large_url, rows, workdir / "outbox")
        setup = time.perf_counter() - start
        results = [
            measure(small_url, small_due, 1, workdir),
            measure(large_url, large_due, 1, workdir),
            measure(large_url, large_due, 2, workdir),
        ]
        command, sweeps, command_gates = whole_command(small_url, small_due, workdir)
    print(
        f"dispatch bench: due invitations through the null channel on PostgreSQL, batches of "
        f"{BATCH_SIZE} (set-up of {small + rows:,} courses: {setup:.0f} s)"
    )
    report(results)
    one, two = results[1], results[2]
    print(
        f"  ratio to the ceiling: {one.rate / one.ceiling_rate:.2f}x with one process, "
        f"{two.rate / two.ceiling_rate:.2f}x with two (target: at least {TARGET}x)"
    )
    print(
        f"  peak memory: {results[0].peak_mib:.1f} MiB at {small:,} rows, {one.peak_mib:.1f} MiB "
        f"at {rows:,} (ratio {one.peak_mib / results[0].peak_mib:.2f}; flat means about 1)"
    )
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sweeps)
    print(
        f"  proms scheduler --once at {small:,} rows: {command.seconds:.1f} s in all "
        f"(start-up in the first: {timings}); peak {command.peak_kib / 1024:.1f} MiB; "
        f"lost {command_gates.lost}, duplicates {command_gates.duplicates}"
    )
    failed = [row for row in results if not row.gates.passed]
    if failed or not command_gates.passed:
        raise SystemExit(
            f"gates failed: {[(row.rows, row.processes, row.gates) for row in failed]} "
            f"{command_gates}"
        )


if __name__ == "__main__":
    main()
