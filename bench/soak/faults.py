"""Faults against real processes, each with what must hold; one row per gate, non-zero on a FAIL.

    .venv/bin/python bench/soak/faults.py [--short] [--only pg,smtp,kill,disk]

1. pg    PostgreSQL (a cluster of our own on port 5499) stopped and started while patients answer
         through gunicorn: only 503s with Retry-After and the "try again in a moment" page (no
         500, no stack trace); proms recovers without a restart (same gunicorn workers, no 503
         once the database is back; the scheduler process lives through it and sends the
         messages due before and after, each once); no half-saved response (every
         questionnaire either sent with all its answers and its scores, or not sent; every
         answer the server confirmed is stored).
2. smtp  The SMTP server (aiosmtpd on loopback) down for a minute (15 s with --short) while
         messages fall due: they are retried, then delivered once it is back; none twice (by
         recipient and by Message-ID at the server); none lost (every one sent or failed).
3. kill  `proms scheduler` killed with SIGKILL every few seconds, restarted each time, while
         messages are due (half the kills while it is sending): every message went exactly
         once or is `unknown` (docs/messages.md: a send cut off mid-handover is never resent;
         the figures show how many of those arrived all the same); none twice, none lost.
4. disk  SQLite on a tmpfs nearly full, gunicorn with one worker, patients answering until the
         disk is full: a 507 page saying their answers are kept (no 500), `PRAGMA
         integrity_check` ok, every answer confirmed before it is still there; once space is
         freed the same patients carry on and send.

The faults run in three lanes side by side (most of their time is waiting on purpose): the
PostgreSQL restart on a cluster of its own (port 5499), the two message faults on another (5498),
SQLite's full disk. Both clusters are made with pg_createcluster and dropped at the end.

Needs root (pg_createcluster, mount), PostgreSQL's server packages and aiosmtpd; without them
it fails (exit 2), it never skips. --short (for CI) builds the schemas with create_all stamped at
head instead of `proms db upgrade`, and uses smaller loads and a 15 s mail outage. --keep DIR
keeps the servers' logs.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faults_world as world
from faults_procs import (
    Cluster,
    FaultError,
    Patient,
    PatientWalk,
    Sink,
    base_environment,
    fill,
    free_bytes,
    free_port,
    gunicorn,
    scheduler,
    tmpfs,
)

# What the error pages must say (proms/errors.py): the patient's wording.
TRY_AGAIN = "Please try again in a moment"
TRY_LATER = "Please try again later"
KEPT = "The answers you saved before are kept"
INTERNALS = ("Traceback", "OperationalError", "psycopg", "sqlite3", "Internal Server Error")


@dataclass(frozen=True, slots=True)
class Gate:
    fault: str
    holds: str
    passed: bool
    figures: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes and times of one run (--short or full)."""

    pg_patients: int
    pg_clients: int
    pg_down: float  # seconds it stays down
    smtp_messages: int  # due before the outage, and as many again during it
    smtp_outage: float
    kill_messages: int
    kills: int
    kill_sink_delay: float  # seconds the SMTP server takes per message
    disk_patients: int
    schema: str  # "migrate" (proms db upgrade) or "create" (create_all, stamped at head)
    instruments: tuple[str, ...]  # the surveys' questionnaires; () for the whole baseline (35)


# PROMIS pain interference 4a and the PEG: 7 questions (the bundled baseline asks 35).
SHORT_SURVEY = ("promis-pi-4a", "peg")
SHORT = Plan(8, 4, 1.0, 20, 15.0, 300, 6, 0.02, 3, "create", SHORT_SURVEY)
FULL = Plan(16, 8, 10.0, 50, 60.0, 1500, 20, 0.02, 6, "migrate", ())


def log(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def wait_until(
    condition: Callable[[], bool], timeout: float, every: float = 0.25
) -> tuple[bool, float]:
    """Poll until `condition()`; whether it came, and after how many seconds."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return True, time.monotonic() - began
        time.sleep(every)
    return condition(), time.monotonic() - began


# 1. PostgreSQL restarted mid-load -----------------------------------------------------------------


def friendly(reply_text: str, wording: str) -> bool:
    return (
        wording in reply_text and KEPT in reply_text and not any(i in reply_text for i in INTERNALS)
    )


def pg_restart(cluster: Cluster, plan: Plan, workdir: Path) -> list[Gate]:
    url = cluster.create_database("faults_pg", TEMPLATE)
    env = base_environment(url)
    patients = world.seed(url, plan.pg_patients, instruments=plan.instruments)
    # The scheduler lives through the restart too: messages due before and after it.
    messaged = world.seed(url, 2 * PG_MESSAGES, prefix="M")
    sink = Sink()
    sink.start()
    # The lease as shipped (5 minutes): what was sent while the database was away is recorded
    # when it is back (proms.scheduling.dispatch._record_patiently), not left to become unknown.
    sweeps = scheduler(scheduler_env(url, sink), workdir / "pg-scheduler.log")
    port = free_port()
    server = gunicorn(env, port, 2, workdir / "pg-gunicorn.log")
    workers_before = server.children()
    clients = [Patient(port, p.token, patience=90, answer_pick=n) for n, p in enumerate(patients)]
    walks: list[PatientWalk] = []
    lock = threading.Lock()

    def walk(n: int) -> None:
        try:
            result = clients[n].answer_all()
        finally:
            clients[n].close()
        with lock:
            walks.append(result)

    try:
        with ThreadPoolExecutor(plan.pg_clients) as pool:
            futures = [pool.submit(walk, n) for n in range(len(patients))]
            # Stop it when the patients are about a third of the way through.
            expected = 2 * sum(p.questions for p in patients)
            wait_until(lambda: sum(len(c.walk.replies) for c in clients) > expected / 3, 300)
            so_far = sum(len(c.walk.replies) for c in clients)
            message_ids = world.queue_new_links(url, messaged[:PG_MESSAGES])
            log(f"pg: stopping PostgreSQL ({so_far} replies so far)")
            down_at = time.monotonic()
            cluster.stop()
            time.sleep(plan.pg_down)
            cluster.start()
            up_at = time.monotonic()
            log(f"pg: PostgreSQL back after {up_at - down_at:.1f} s")
            after_ids = world.queue_new_links(url, messaged[PG_MESSAGES:])
            for future in futures:
                future.result()
        workers_after = server.children()
        still_running = server.alive()

        def settled() -> bool:
            rows = world.outbox(url, message_ids + after_ids)
            return all(r.status in ("sent", "failed", "unknown") for r in rows)

        messages_settled, _ = wait_until(settled, 60, every=0.5)
        scheduler_alive = sweeps.alive()
    finally:
        server.terminate()
        sweeps.terminate()
        sink.stop()
    outbox = world.outbox(url, message_ids + after_ids)
    duplicates, missing, stray, delivery = delivery_figures(outbox, sink)
    counts = world.statuses(outbox)
    after_sent = sum(r.status == "sent" for r in outbox if r.id in set(after_ids))
    replies = [r for w in walks for r in w.replies]
    by_status = Counter(r.status for r in replies)
    unavailable = [r for r in replies if r.status == 503]
    bad_pages = [r for r in unavailable if r.retry_after is None or not friendly(r.text, TRY_AGAIN)]
    others = sum(n for status, n in by_status.items() if status >= 500 and status != 503)
    other_kinds = Counter(
        f"{r.status} {r.method} {r.path.split('/')[2] if r.path.count('/') > 1 else r.path}"
        for r in replies
        if r.status >= 500 and r.status != 503
    )
    late = [r for r in unavailable if r.at > up_at + 5.0]
    first_ok = min((r.at for r in replies if r.at > up_at and r.status < 400), default=None)
    finished = sum(w.finished for w in walks)
    errors = [w.error for w in walks if w.error]

    rows = world.stored(url, [p.assessment_id for p in patients])
    half = incomplete = lost = waiting = 0
    by_token = {w.token: w for w in walks}
    for p in patients:
        row = rows[p.assessment_id]
        done = row.assessment_status == "completed"
        if done:
            incomplete += (
                len(row.answers) != p.questions
                or row.submitted != row.responses
                or row.scores < row.responses
                or None in row.answers
            )
            waiting += row.pending_messages
        else:
            half += row.scores > 0 or row.submitted > 0
        confirmed = Counter(by_token[p.token].confirmed.values())
        lost += sum((confirmed - Counter(v for v in row.answers if v is not None)).values())
    completed = sum(r.assessment_status == "completed" for r in rows.values())

    return [
        Gate(
            "pg restart",
            "brief 503s only: Retry-After and the try-again page; no 500, no stack trace",
            bool(unavailable) and not bad_pages and others == 0 and by_status.get(0, 0) == 0,
            f"replies={len(replies)} 503={len(unavailable)} other_5xx={others} "
            + (f"({', '.join(f'{k} x{n}' for k, n in other_kinds.items())}) " if others else "")
            + f"refused={by_status.get(0, 0)} unfriendly_503={len(bad_pages)} "
            f"down={up_at - down_at:.1f}s",
        ),
        Gate(
            "pg restart",
            "recovers without restarting proms (same workers, no 503 5 s after it is back)",
            still_running
            and workers_after == workers_before
            and not late
            and first_ok is not None
            and finished == len(patients),
            f"workers_same={workers_after == workers_before} 503_after_back+5s={len(late)} "
            f"first_ok_after_back={(first_ok - up_at) if first_ok else float('nan'):.2f}s "
            f"finished={finished}/{len(patients)}" + (f" errors={errors[:2]}" if errors else ""),
        ),
        Gate(
            "pg restart",
            "the scheduler lives through it: messages once each (or unknown), none lost",
            scheduler_alive
            and messages_settled
            and duplicates == 0
            and missing == 0
            and stray == 0
            and after_sent == len(after_ids),
            f"scheduler_alive={scheduler_alive} due={len(outbox)} sent={counts.get('sent', 0)} "
            f"unknown={counts.get('unknown', 0)} sent_of_due_after_back={after_sent}/"
            f"{len(after_ids)} {delivery}",
        ),
        Gate(
            "pg restart",
            "no half-saved response: sent = all answers + scores; confirmed answers stored",
            half == 0 and incomplete == 0 and lost == 0 and waiting == 0,
            f"completed={completed} incomplete={incomplete} scored_unsent={half} "
            f"confirmed_answers_lost={lost} reminders_left={waiting}",
        ),
    ]


# 2 and 3. Messages --------------------------------------------------------------------------------


def scheduler_env(url: str, sink: Sink, **extra: str) -> dict[str, str]:
    return base_environment(
        url,
        PROMS_MESSAGE_TRANSPORT="live",
        PROMS_MAIL_FROM="Fault Clinic <no-reply@clinic.example.org>",
        PROMS_SMTP_HOST="127.0.0.1",
        PROMS_SMTP_PORT=str(sink.port),
        PROMS_SMTP_SECURITY="none",
        PROMS_SMTP_TIMEOUT_SECONDS="5",
        PROMS_SWEEP_DISPATCH_SECONDS="1",
        **extra,
    )


def delivery_figures(rows: list[world.OutboxRow], sink: Sink) -> tuple[int, int, int, str]:
    """(duplicates, sent rows missing at the server, mail without a sent/unknown row, figures)."""
    received = sink.received()
    per_recipient = Counter(r.recipient for r in received)
    per_id = Counter(r.message_id for r in received)
    duplicates = sum(n - 1 for n in per_recipient.values() if n > 1) + sum(
        n - 1 for n in per_id.values() if n > 1
    )
    sent = [r for r in rows if r.status == "sent"]
    missing = sum(per_id[r.provider_message_id or ""] != 1 for r in sent)
    accounted = {r.email for r in rows if r.status in ("sent", "unknown")}
    stray = sum(1 for r in received if r.recipient not in accounted)
    figures = f"at_server={len(received)} duplicates={duplicates} sent_not_at_server={missing}"
    return duplicates, missing, stray, figures


def smtp_outage(cluster: Cluster, plan: Plan, workdir: Path) -> list[Gate]:
    url = cluster.create_database("faults_smtp", TEMPLATE)
    patients = world.seed(url, 2 * plan.smtp_messages)
    before, during = patients[: plan.smtp_messages], patients[plan.smtp_messages :]
    sink = Sink()
    sink.start()
    # Tries enough to outlast the outage: 1, 2, 4, ... s (+-50%) add up past 60 s by the 8th.
    env = scheduler_env(url, sink, PROMS_RETRY_BASE_SECONDS="1", PROMS_RETRY_MAX_ATTEMPTS="10")
    process = scheduler(env, workdir / "smtp-scheduler.log")
    try:
        first = world.queue_new_links(url, before)
        ok, _ = wait_until(lambda: sink.count() >= len(first), 60)
        if not ok:
            raise FaultError(f"messages before the outage not delivered:\n{process.tail()}")
        sink.stop()
        down_at = time.monotonic()
        log(f"smtp: SMTP server down for {plan.smtp_outage:.0f} s")
        second = world.queue_new_links(url, during)
        time.sleep(plan.smtp_outage)
        during_outage = world.outbox(url, second)
        retried = sum(r.attempts > 1 for r in during_outage)
        sink.start()
        up_at = time.monotonic()
        log("smtp: SMTP server back")
        ids = first + second

        def settled() -> bool:
            return all(r.status in ("sent", "failed", "unknown") for r in world.outbox(url, ids))

        # The longest wait after it is back: the last retry's delay, 1.5 x 2^(n-1) s.
        ok, took = wait_until(settled, 4 * plan.smtp_outage + 30, every=0.5)
    finally:
        process.terminate()
        sink.stop()
    rows = world.outbox(url, ids)
    late_rows = [r for r in rows if r.id in set(second)]
    counts = world.statuses(late_rows)
    delivered_after = sum(1 for r in sink.received() if r.at >= up_at)
    duplicates, missing, stray, figures = delivery_figures(rows, sink)
    lost = sum(r.status not in ("sent", "failed", "unknown") for r in rows)
    return [
        Gate(
            "smtp down",
            "messages due during the outage are retried, then delivered once it is back",
            counts.get("sent", 0) == len(second) and retried > 0 and ok,
            f"due_during={len(second)} retried_during={retried} sent={counts.get('sent', 0)} "
            f"failed={counts.get('failed', 0)} delivered_after_back={delivered_after} "
            f"all_settled_after={took:.1f}s outage={up_at - down_at:.1f}s",
        ),
        Gate(
            "smtp down",
            "nothing delivered twice, nothing lost (each sent or visibly failed)",
            duplicates == 0 and missing == 0 and stray == 0 and lost == 0,
            f"due={len(rows)} {figures} unaccounted_mail={stray} not_settled={lost}",
        ),
    ]


def scheduler_kills(cluster: Cluster, plan: Plan, workdir: Path, rng: random.Random) -> list[Gate]:
    url = cluster.create_database("faults_kill", TEMPLATE)
    patients = world.seed(url, plan.kill_messages)
    ids = world.queue_new_links(url, patients)
    sink = Sink(delay=plan.kill_sink_delay)
    sink.start()
    # Small batches and a short claim, so that a restarted scheduler takes back a dead one's
    # claims within seconds (a live one records every second: RECORD_EVERY_SECONDS).
    env = scheduler_env(url, sink, PROMS_DISPATCH_BATCH_SIZE="20", PROMS_DISPATCH_LEASE_SECONDS="3")
    log_path = workdir / "kill-scheduler.log"
    kills = mid_send = 0

    def pending() -> bool:
        return any(r.status == "pending" for r in world.outbox(url, ids))

    try:
        while kills < plan.kills and pending():
            process = scheduler(env, log_path)
            at_start = sink.count()
            if kills % 2 == 0:  # while it is sending: after its first message of this life
                sending, _ = wait_until(
                    lambda at_start=at_start: sink.count() > at_start, 60, every=0.02
                )
                time.sleep(rng.uniform(0.0, 0.3))
                mid_send += sending
            else:  # at any moment of its life, start-up included
                time.sleep(rng.uniform(0.5, 4.0))
            process.kill()
            kills += 1
        log(f"kill: {kills} kills ({mid_send} while sending); a last scheduler finishes")
        process = scheduler(env, log_path)

        def settled() -> bool:
            rows = world.outbox(url, ids)
            return all(r.status in ("sent", "failed", "unknown") for r in rows)

        ok, took = wait_until(settled, 120, every=0.5)
        process.terminate()
    finally:
        sink.stop()
    rows = world.outbox(url, ids)
    counts = world.statuses(rows)
    duplicates, missing, stray, figures = delivery_figures(rows, sink)
    arrived = {r.recipient for r in sink.received()}
    unknown_arrived = sum(1 for r in rows if r.status == "unknown" and r.email in arrived)
    lost = len(rows) - counts.get("sent", 0) - counts.get("unknown", 0)
    return [
        Gate(
            "scheduler kill",
            "every due message sent exactly once, or unknown (never resent); none lost",
            ok
            and kills >= 2  # the fault really happened: killed repeatedly while messages were due
            and mid_send >= 1  # and at least once in the middle of sending
            and duplicates == 0
            and missing == 0
            and stray == 0
            and lost == 0
            and len(sink.received()) == counts.get("sent", 0) + unknown_arrived,
            f"kills={kills} mid_send={mid_send} due={len(rows)} sent={counts.get('sent', 0)} "
            f"unknown={counts.get('unknown', 0)} (arrived anyway={unknown_arrived}) "
            f"lost={lost} {figures} settled_after_last_start={took:.1f}s",
        )
    ]


# 4. SQLite disk full ------------------------------------------------------------------------------


def integrity(path: Path) -> str:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def migrated_sqlite(workdir: Path, schema: str) -> Path:
    staging = workdir / "disk-staging"
    staging.mkdir()
    staged = staging / "proms.sqlite3"
    url = f"sqlite:///{staged}"
    world.make_schema(url, base_environment(url), schema)
    return staged


def sqlite_disk_full(staged: Path, plan: Plan, workdir: Path) -> list[Gate]:
    url = f"sqlite:///{staged}"
    patients = world.seed(url, plan.disk_patients, instruments=plan.instruments)
    connection = sqlite3.connect(staged)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    size = staged.stat().st_size
    mount = workdir / "small-disk"
    # Room for the WAL to grow to its checkpoint size (1,000 pages) once space is freed.
    with tmpfs(mount, size + 8 * 1024 * 1024) as disk:
        database = disk / "proms.sqlite3"
        database.write_bytes(staged.read_bytes())
        url = f"sqlite:///{database}"
        port = free_port()
        server = gunicorn(base_environment(url), port, 1, workdir / "disk-gunicorn.log")
        clients = [
            Patient(port, p.token, patience=5, retry=frozenset(), stop_on=frozenset({507}))
            for p in patients
        ]
        try:
            # Room for a few answers (each commit adds a few pages to the WAL), then none.
            filler = fill(disk, leave_bytes=160 * 1024)
            log(f"disk: filled: {free_bytes(disk)} bytes left; patients answer until it is full")
            walks = [c.answer_all() for c in clients]
            stopped = [w for w in walks if w.stopped_at is not None]
            pages = [w.stopped_at for w in stopped if w.stopped_at is not None]
            unfriendly = [r for r in pages if not friendly(r.text, TRY_LATER)]
            five_hundreds = sum(
                1 for w in walks for r in w.replies if r.status >= 500 and r.status != 507
            )
            check_full = integrity(database)
            rows_full = world.stored(url, [p.assessment_id for p in patients])
            kept_lost = 0
            for p, w in zip(patients, walks, strict=True):
                have = Counter(v for v in rows_full[p.assessment_id].answers if v is not None)
                kept_lost += sum((Counter(w.confirmed.values()) - have).values())
            confirmed_before = sum(len(w.confirmed) for w in walks)
            filler.unlink()
            log(f"disk: space freed ({free_bytes(disk)} bytes); the same patients carry on")
            walks = [c.resume() for c in clients]
            finished = sum(w.finished for w in walks)
            errors = [w.error for w in walks if w.error]
            still_running = server.alive()
        finally:
            for client in clients:
                client.close()
            server.terminate()
        check_after = integrity(database)
        rows = world.stored(url, [p.assessment_id for p in patients])
        complete = sum(
            r.assessment_status == "completed"
            and len(r.answers) == p.questions
            and r.scores >= r.responses > 0
            for p, r in zip(patients, rows.values(), strict=True)
        )
    return [
        Gate(
            "sqlite disk full",
            "a clear 507 page (answers kept, try later), no 500 or stack trace",
            len(stopped) == len(patients) and not unfriendly and five_hundreds == 0,
            f"patients_stopped_by_507={len(stopped)}/{len(patients)} unfriendly={len(unfriendly)} "
            f"other_5xx={five_hundreds}",
        ),
        Gate(
            "sqlite disk full",
            "nothing saved is corrupted; answers saved before stay",
            check_full == "ok" and check_after == "ok" and kept_lost == 0,
            f"integrity_when_full={check_full} after={check_after} "
            f"confirmed_before_full={confirmed_before} lost={kept_lost}",
        ),
        Gate(
            "sqlite disk full",
            "after space is freed the same patient carries on and sends",
            still_running and finished == len(patients) and complete == len(patients),
            f"finished={finished}/{len(patients)} complete_and_scored={complete}"
            + (f" errors={errors[:2]}" if errors else ""),
        ),
    ]


# The run ------------------------------------------------------------------------------------------


# Messages the scheduler sends during the PostgreSQL fault: due before the stop, as many after.
PG_MESSAGES = 20

# The migrated database every PostgreSQL fault copies.
TEMPLATE = "faults_template"


@contextlib.contextmanager
def own_cluster(name: str, port: int, schema: str) -> Iterator[Cluster]:
    """A cluster of our own, with the migrated template; dropped afterwards."""
    cluster = Cluster(name, port)
    try:
        cluster.create()
        url = cluster.create_database(TEMPLATE)
        world.make_schema(url, base_environment(url), schema)
        yield cluster
    finally:
        cluster.drop()


def lane_pg(plan: Plan, workdir: Path) -> list[Gate]:
    # Its own cluster: the restart must not reach the message faults running beside it.
    with own_cluster("soakfaults", 5499, plan.schema) as cluster:
        log("pg: cluster ready")
        return pg_restart(cluster, plan, workdir)


def lane_messages(plan: Plan, workdir: Path, only: set[str], rng: random.Random) -> list[Gate]:
    with own_cluster("soakfaultsmsg", 5498, plan.schema) as cluster, ThreadPoolExecutor(2) as pool:
        log("smtp, kill: cluster ready")
        smtp = pool.submit(smtp_outage, cluster, plan, workdir) if "smtp" in only else None
        kill = pool.submit(scheduler_kills, cluster, plan, workdir, rng) if "kill" in only else None
        return [*(smtp.result() if smtp else []), *(kill.result() if kill else [])]


def lane_disk(plan: Plan, workdir: Path) -> list[Gate]:
    staged = migrated_sqlite(workdir, plan.schema)
    log("disk: schema ready")
    return sqlite_disk_full(staged, plan, workdir)


def report(gates: list[Gate], seconds: dict[str, float]) -> None:
    width = max(len(g.holds) for g in gates)
    print()
    print(f"{'fault':<17} {'what must hold':<{width}}  {'gate':<4}  figures")
    for g in gates:
        verdict = "PASS" if g.passed else "FAIL"
        print(f"{g.fault:<17} {g.holds:<{width}}  {verdict:<4}  {g.figures}")
    print()
    print("seconds: " + " ".join(f"{k}={v:.1f}" for k, v in seconds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI size (about 90 s)")
    parser.add_argument("--only", default="pg,smtp,kill,disk", help="faults to run, by name")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", type=Path, help="keep the servers' logs in this folder")
    args = parser.parse_args()
    plan = SHORT if args.short else FULL
    only = set(args.only.split(","))
    rng = random.Random(args.seed)
    gates: list[Gate] = []
    seconds: dict[str, float] = {}
    began = time.monotonic()
    print(f"faults ({'short' if args.short else 'full'}): {', '.join(sorted(only))}", flush=True)
    unknown = only - {"pg", "smtp", "kill", "disk"}
    if unknown:
        parser.error(f"no such fault: {', '.join(sorted(unknown))}")
    lanes: dict[str, Callable[[], list[Gate]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="proms-faults-") as tmp:
            workdir = Path(tmp)
            if args.keep:
                workdir = args.keep.resolve()
                workdir.mkdir(parents=True, exist_ok=False)
            # Three lanes side by side (most of a fault's time is waiting on purpose): the
            # PostgreSQL restart on a cluster of its own, the two message faults on another,
            # SQLite's full disk.
            if "pg" in only:
                lanes["pg"] = lambda: lane_pg(plan, workdir)
            if only & {"smtp", "kill"}:
                lanes["smtp+kill"] = lambda: lane_messages(plan, workdir, only, rng)
            if "disk" in only:
                lanes["disk"] = lambda: lane_disk(plan, workdir)

            def timed(name: str, lane: Callable[[], list[Gate]]) -> list[Gate]:
                step = time.monotonic()
                try:
                    return lane()
                finally:
                    seconds[name] = time.monotonic() - step

            with ThreadPoolExecutor(len(lanes) or 1) as pool:
                futures = [pool.submit(timed, name, lane) for name, lane in lanes.items()]
                problems = []
                for future in futures:
                    try:
                        gates += future.result()
                    except FaultError as error:
                        problems.append(str(error))
            if problems:
                raise FaultError("\n".join(problems))
    except FaultError as error:
        if gates:
            report(gates, seconds)
        print(f"\nFAIL: the set-up failed: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    seconds["total"] = time.monotonic() - began
    report(gates, seconds)
    failed = [g for g in gates if not g.passed]
    print(f"{len(gates) - len(failed)} of {len(gates)} gates passed", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
