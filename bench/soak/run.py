"""The soak: proms under a clinic's load, with its gates (`make soak`, `make soak-ci`).

Three parts; the first two share one PostgreSQL database made for the run, the third a SQLite
file; both are dropped after.

  load       gunicorn (proms/gunicorn_conf.py, 4 workers) on PostgreSQL with the scheduler
             dispatching email to an SMTP sink on loopback; locust, headless: patients answer
             whole questionnaires from their links, staff sign in and browse the care pages.
  two hosts  that server and a second one (2 workers) on another port, sharing PostgreSQL and
             Redis (rate-limit counters); every simulated person alternates between them
             request by request, so surveys start on one and are sent from the other and staff
             sessions cross too; then one address opens links on both until refused: the link
             rate limit must refuse at its limit, not at twice it.
  sqlite     the same load on SQLite under one gunicorn worker, stepped up until it saturates
             (p95 past --p95-limit, errors, or throughput that stops growing); the last healthy
             step is the figure docs/soak.md quotes for moving to PostgreSQL. Its errors are
             reported, not gated (finding them is the point); its stored-answer gates hold.

Gates (a failed one makes the exit status 1): no 5xx and no unexpected status; every survey a
client sent is completed in the database with all its responses submitted and scored; no
reminder of a completed questionnaire still waits; the scheduler sent during the load, each
message reached the sink exactly once, none left failed or uncertain; with two hosts, surveys
crossed hosts and the shared rate limit refused at its limit. Exit status 2: the harness could
not run (a server that did not start).

    .venv/bin/python bench/soak/run.py             # the full soak (about a quarter of an hour)
    .venv/bin/python bench/soak/run.py --short     # CI's: 45 s of load, 25 s of two hosts,
                                                   # 7-question surveys, no SQLite steps

PostgreSQL: --postgres-url (default PROMS_SOAK_POSTGRES_URL, else the local server as user
postgres): a server URL gets a new database; a URL naming a database (CI's, whose role may not
create databases) gets a new schema in it. Redis: --redis-db (default 13) on 127.0.0.1:6379,
emptied before and after; no other Redis database is touched. Tokens are never printed: URLs are
grouped by route and any text from a failure is redacted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import world
from harness import Load, Process, SoakError

RATE_CHECK_EXTRA = 10  # requests past the limit in the shared rate-limit check


@dataclass
class Gate:
    name: str
    ok: bool
    detail: str


@dataclass
class Phase:
    title: str
    result: dict[str, Any]
    gates: list[Gate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# Reading locust's result ---------------------------------------------------------------------


def five_xx(result: dict[str, Any]) -> int:
    return sum(
        n
        for counts in result["statuses"].values()
        for status, n in counts.items()
        if int(status) >= 500
    )


def unexpected(result: dict[str, Any]) -> int:
    return sum(result["unexpected"].values())


def rate(result: dict[str, Any]) -> float:
    return result["requests"] / max(result["seconds"], 1e-9)


def surveys_per_minute(result: dict[str, Any]) -> float:
    return len(result["finished"]) / max(result["seconds"], 1e-9) * 60


def survey_pace(result: dict[str, Any], questions: int) -> float:
    """Surveys a minute at the rate patients' pages were served: a survey is the link, Start,
    a page and a POST per question, the review (half look at one part), Send and thank you."""
    per_survey = 2 * questions + 5.5
    pages = sum(row["requests"] for row in result["endpoints"] if " /s/" in row["name"])
    return pages / max(result["seconds"], 1e-9) * 60 / per_survey


def client_gates(result: dict[str, Any]) -> list[Gate]:
    shown = ", ".join(f"{k} x{v}" for k, v in sorted(result["unexpected"].items())) or "none"
    return [
        Gate("zero 5xx", five_xx(result) == 0, f"{five_xx(result)} responses 5xx"),
        Gate("no unexpected status", unexpected(result) == 0, shown),
        Gate("surveys finished", len(result["finished"]) > 0, f"{len(result['finished'])}"),
    ]


def database_gates(counts: world.Counts) -> list[Gate]:
    return [
        Gate(
            "sent == stored (completed)",
            counts.finished_not_completed == 0 and counts.completed_not_finished == 0,
            f"clients sent {counts.finished}, completed in the database {counts.completed} "
            f"({counts.in_flight} Send in flight at the stop; {counts.finished_not_completed} "
            f"sent but not completed, {counts.completed_not_finished} completed unseen)",
        ),
        Gate(
            "responses submitted",
            counts.responses_submitted == counts.responses_expected,
            f"{counts.responses_submitted} of {counts.responses_expected}",
        ),
        Gate(
            "each response scored",
            counts.responses_unscored == 0,
            f"{counts.responses_unscored} submitted without a score",
        ),
        Gate(
            "reminders cancelled",
            counts.reminders_waiting == 0,
            f"{counts.reminders_waiting} pending for a completed questionnaire",
        ),
    ]


def message_gates(counts: world.Counts, sink: harness.Sink, emails: frozenset[str]) -> list[Gate]:
    received = sink.to(emails)
    return [
        Gate("scheduler sent during the load", counts.sent_email > 0, f"{counts.sent_email}"),
        Gate(
            "each sent email received once",
            received == counts.sent_email and sink.duplicates() == 0,
            f"outbox sent {counts.sent_email}, sink received {received}, "
            f"{sink.duplicates()} duplicates",
        ),
        Gate(
            "no failed or uncertain message",
            counts.unknown_or_failed == 0,
            f"{counts.unknown_or_failed}",
        ),
    ]


# Printing ------------------------------------------------------------------------------------


def print_phase(phase: Phase) -> None:
    result = phase.result
    print(f"\n== {phase.title}")
    for note in phase.notes:
        print(f"   {note}")
    if result:
        print_requests(result)
    if phase.gates:
        print(f"   {'gate':<34} {'':<4} detail")
        for gate in phase.gates:
            print(f"   {gate.name:<34} {'PASS' if gate.ok else 'FAIL':<4} {gate.detail}")


def print_requests(result: dict[str, Any]) -> None:
    header = (
        f"   {'endpoint':<28} {'requests':>8} {'req/s':>7} {'fail':>5} {'5xx':>4} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    print(header)
    seconds = max(result["seconds"], 1e-9)
    for row in result["endpoints"]:
        errors = sum(n for s, n in result["statuses"].get(row["name"], {}).items() if int(s) >= 500)
        print(
            f"   {row['name']:<28} {row['requests']:>8,} {row['requests'] / seconds:>7.1f} "
            f"{row['failures']:>5} {errors:>4} {row['p50']:>7.0f} {row['p95']:>7.0f} "
            f"{row['p99']:>7.0f} {row['max']:>7.0f}"
        )
    print(
        f"   {'all':<28} {result['requests']:>8,} {rate(result):>7.1f} {result['failures']:>5} "
        f"{five_xx(result):>4} {result['p50']:>7.0f} {result['p95']:>7.0f} {result['p99']:>7.0f}"
    )
    print(
        f"   {result['seconds']:.0f} s; surveys started {result['started']}, sent "
        f"{len(result['finished'])} ({surveys_per_minute(result):.1f}/min); staff sign-ins "
        f"{result['logins']}"
    )
    for name, n in sorted(result["errors"].items()):
        print(f"   client error x{n}: {name[:200]}")


# Set-up --------------------------------------------------------------------------------------


# Questions per questionnaire of the bundled protocol's baseline, for sizing the links.
ITEMS = {"promis-pi-4a": 4, "promis-pf-4a": 4, "promis-sd-4a": 4, "pass-20": 20, "peg": 3}


def questions_of(instruments: Sequence[str]) -> int:
    return sum(ITEMS.get(code, 10) for code in instruments) if instruments else sum(ITEMS.values())


def links_needed(patients: int, seconds: int, think: str, questions: int = 35) -> int:
    """Enough links that no patient runs out: each survey takes at least its pauses."""
    low, high = (float(x) for x in think.split(","))
    # The pauses, and two requests a question at 100 ms each at the very least.
    per_survey = questions * ((low + high) / 2 + 0.2) + 1
    return patients * (math.ceil(seconds / per_survey) + 1) + 10


def seed(
    url: str, workdir: Path, secret: str, links: int, staff: int, instruments: Sequence[str] = ()
) -> world.Seeded:
    follow = links // 5
    started = time.perf_counter()
    seeded = world.seed(
        url,
        workdir,
        secret_key=secret,
        baselines=links - follow,
        follow_ups=follow,
        clinicians=max(1, staff // 2),
        coordinators=max(1, staff - staff // 2),
        instruments=instruments,
    )
    print(
        f"   seeded {links} open questionnaires ({seeded.questions}) and {staff} staff in "
        f"{time.perf_counter() - started:.0f} s; patients' zone {seeded.zone}",
        flush=True,
    )
    return seeded


def check_servers(servers: Sequence[Process], phase: Phase) -> None:
    for server in servers:
        lines = harness.server_errors(server)
        if lines:
            phase.notes.append(f"{server.name} log: {len(lines)} error lines, first: {lines[0]}")


# Parts ---------------------------------------------------------------------------------------


def drawn(seeded: world.Seeded, first: int, result: dict[str, Any]) -> dict[int, int]:
    """The questionnaires of the links one locust run drew (token number -> assessment id)."""
    return {n: seeded.assessment_of[n] for n in range(first, first + result["taken"])}


def postgres_parts(args: argparse.Namespace, workdir: Path, parts: Sequence[str]) -> list[Phase]:
    """The load, then two hosts, on one PostgreSQL database (one set-up for both).

    The servers boot while the data are made (they need the schema, not the rows). The load's
    server, 4 workers, is the first host of the two; the second has 2.
    """
    secret = harness.new_secret()
    phases: list[Phase] = []
    print(f"\n-- PostgreSQL ({', '.join(p for p in parts if p != 'sqlite')})", flush=True)
    from proms import config

    limit = int(str(config.LINK_RATE_LIMIT).split()[0])
    questions = questions_of(args.instruments)
    links = 0
    if "load" in parts:
        links += links_needed(args.patients, args.seconds, args.think, questions)
    if "two-hosts" in parts:
        links += links_needed(args.two_patients, args.two_seconds, args.two_think, questions)
    with harness.scratch_database(args.postgres_url, "proms_soak") as url:
        redis = harness.RedisDb(args.redis_db)
        redis.flush()
        sink = harness.Sink().start()
        env = harness.base_env(database_url=url, secret_key=secret, rate_limits=redis.url)
        servers: list[Process] = []
        try:
            world.prepare_schema(url, args.schema, env, harness.BIN)
            web = harness.start_gunicorn("web", env, 4, workdir)
            servers.append(web)
            if "two-hosts" in parts:
                servers.append(harness.start_gunicorn("host-b", env, 2, workdir))
            seeded = seed(url, workdir / "pg", secret, links, args.staff, args.instruments)
            for server in servers:
                harness.wait_healthy(server)
            scheduler = harness.start_scheduler(
                harness.scheduler_env(
                    {**env, "PROMS_PUBLIC_BASE_URL": web.url}, sink, dispatch_seconds=5
                ),
                workdir,
            )
            servers.append(scheduler)
            first = 0
            if "load" in parts:
                title = (
                    f"load: PostgreSQL, gunicorn 4 workers, scheduler sending, "
                    f"{args.patients} patients + {args.staff} staff for {args.seconds} s"
                )
                print(f"-- {title}", flush=True)
                load = Load(
                    [web.url],
                    args.patients,
                    args.staff,
                    args.seconds,
                    args.think,
                    args.staff_think,
                    args.drain,
                )
                result = harness.run_locust(
                    load, seeded.tokens_file, seeded.staff_file, workdir, "load", first
                )
                phase = Phase(title, result)
                check_servers([web], phase)
                counts = world.count_gates(
                    url, secret, drawn(seeded, first, result), result["finished"], result["sending"]
                )
                phase.gates = client_gates(result) + database_gates(counts)
                if result["ran_out"]:
                    phase.notes.append(f"{result['ran_out']} patients ran out of links")
                phases.append(phase)
                first += result["taken"]
            if "two-hosts" in parts:
                hosts = servers[:2]
                title = (
                    f"two hosts: two gunicorn servers (4 and 2 workers) sharing PostgreSQL and "
                    f"Redis db {args.redis_db}, {args.two_patients} patients + "
                    f"{args.two_staff} staff alternating request by request for "
                    f"{args.two_seconds} s"
                )
                print(f"-- {title}", flush=True)
                urls = [h.url for h in hosts]
                load = Load(
                    urls,
                    args.two_patients,
                    args.two_staff,
                    args.two_seconds,
                    args.two_think,
                    "0.5,2",
                    args.drain,
                )
                result = harness.run_locust(
                    load, seeded.tokens_file, seeded.staff_file, workdir, "two", first
                )
                allowed, refused, other = rate_limit_check(urls, limit)
                phase = Phase(title, result)
                check_servers(hosts[1:], phase)
                counts = world.count_gates(
                    url, secret, drawn(seeded, first, result), result["finished"], result["sending"]
                )
                crossed = Gate(
                    "surveys crossed hosts",
                    result["crossed"] > 0,
                    f"{result['crossed']} of {len(result['finished'])} sent from the other host "
                    "than Start",
                )
                shared = Gate(
                    "link rate limit shared",
                    allowed == limit and refused == RATE_CHECK_EXTRA and other == 0,
                    f"{limit + RATE_CHECK_EXTRA} link openings from one address over both hosts: "
                    f"{allowed} served, {refused} refused (429), {other} other; limit {limit} a "
                    "minute",
                )
                phase.gates = [*client_gates(result), crossed, *database_gates(counts), shared]
                phases.append(phase)
            scheduler.stop()  # finishes the message in hand
            messages = Phase("messages: the scheduler during the load", {})
            check_servers([scheduler], messages)
            totals = world.count_gates(url, secret, {}, [])
            messages.gates = message_gates(totals, sink, seeded.patient_emails)
            phases.append(messages)
        finally:
            for server in reversed(servers):
                server.stop()
            sink.stop()
            redis.close()
    return phases


def rate_limit_check(hosts: Sequence[str], limit: int) -> tuple[int, int, int]:
    """One new address opens unknown links, alternating hosts: (allowed, refused, other)."""
    import http.client
    import secrets
    from urllib.parse import urlsplit

    allowed = refused = other = 0
    address = f"192.0.2.{secrets.randbelow(250) + 1}"
    for n in range(limit + RATE_CHECK_EXTRA):
        parts = urlsplit(hosts[n % len(hosts)])
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request(
                "GET", f"/s/{secrets.token_urlsafe(32)}", headers={"X-Forwarded-For": address}
            )
            status = connection.getresponse().status
        finally:
            connection.close()
        if status == 429:
            refused += 1
        elif status == 404:
            allowed += 1
        else:
            other += 1
    return allowed, refused, other


@dataclass
class Step:
    patients: int
    staff: int
    result: dict[str, Any]
    questions: int

    @property
    def pace(self) -> float:
        return survey_pace(self.result, self.questions)

    @property
    def errors(self) -> int:
        return five_xx(self.result) + unexpected(self.result)


def sqlite_phase(args: argparse.Namespace, workdir: Path) -> tuple[Phase, list[Step], Step | None]:
    secret = harness.new_secret()
    steps = [int(n) for n in args.sqlite_steps.split(",")]
    title = (
        f"sqlite: one gunicorn worker, scheduler, patients stepped {steps} ({args.sqlite_think} s "
        f"a page), {args.sqlite_seconds} s a step"
    )
    print(f"\n-- {title}", flush=True)
    url = f"sqlite:///{workdir / 'soak.sqlite3'}"
    links = sum(
        links_needed(n, args.sqlite_seconds, args.sqlite_think, questions_of(args.instruments))
        for n in steps
    )
    env = harness.base_env(database_url=url, secret_key=secret, rate_limits="memory://")
    world.prepare_schema(url, args.schema, env, harness.BIN)
    seeded = seed(url, workdir / "sqlite", secret, links, 10, args.instruments)
    sink = harness.Sink().start()
    done: list[Step] = []
    healthy: Step | None = None
    finished: list[int] = []
    sending: list[int] = []
    try:
        env = harness.base_env(database_url=url, secret_key=secret, rate_limits="memory://")
        web = harness.start_gunicorn("sqlite-web", env, 1, workdir)
        with harness.running([web]) as processes:
            harness.wait_healthy(web)
            scheduler = harness.start_scheduler(
                harness.scheduler_env(
                    {**env, "PROMS_PUBLIC_BASE_URL": web.url}, sink, dispatch_seconds=5
                ),
                workdir,
            )
            processes.append(scheduler)
            start = 0
            for patients in steps:
                staff = max(1, patients // 10)
                load = Load(
                    [web.url], patients, staff, args.sqlite_seconds, args.sqlite_think, "2,5"
                )
                result = harness.run_locust(
                    load,
                    seeded.tokens_file,
                    seeded.staff_file,
                    workdir,
                    f"sqlite-{patients}",
                    start,
                )
                start += result["taken"]
                finished += result["finished"]
                sending += result["sending"]
                step = Step(patients, staff, result, seeded.questions["baseline"])
                done.append(step)
                print(
                    f"   {patients:>4} patients + {staff:>3} staff: {rate(result):6.1f} req/s, "
                    f"p95 {result['p95']:>6.0f} ms, {step.pace:5.1f} surveys/min, "
                    f"errors {step.errors}",
                    flush=True,
                )
                saturated = (
                    result["p95"] > args.p95_limit
                    or step.errors > 0
                    or (healthy is not None and rate(result) < rate(healthy.result) * 1.1)
                )
                if saturated:
                    break
                healthy = step
            scheduler.stop()
            phase = Phase(title, done[-1].result)
            check_servers(processes, phase)
        counts = world.count_gates(url, secret, seeded.assessment_of, finished, sending)
    finally:
        sink.stop()
    phase.gates = database_gates(counts)
    return phase, done, healthy


def print_saturation(steps: list[Step], healthy: Step | None, limit: float) -> None:
    print(
        f"\n== SQLite saturation (one gunicorn worker; saturated: p95 > {limit:.0f} ms, errors, "
        "or under 10% more throughput than the step before)"
    )
    print(
        "   surveys/min: at the pace patients' pages were served (a survey is "
        f"{2 * steps[0].questions + 5.5:g} requests); sent: surveys sent within the step"
    )
    print(
        f"   {'patients':>8} {'staff':>5} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'surveys/min':>11} {'sent':>5} {'5xx':>4} {'other':>5}"
    )
    for step in steps:
        r = step.result
        print(
            f"   {step.patients:>8} {step.staff:>5} {rate(r):>7.1f} {r['p50']:>7.0f} "
            f"{r['p95']:>7.0f} {r['p99']:>7.0f} {step.pace:>11.1f} {len(r['finished']):>5} "
            f"{five_xx(r):>4} {unexpected(r):>5}"
        )
    if healthy is None:
        print("   saturated at the first step: lower --sqlite-steps")
        return
    last = steps[-1]
    if last is healthy:
        print(
            f"   not saturated up to {healthy.patients} patients: at least "
            f"{rate(healthy.result):.0f} requests/s ({healthy.pace:.0f} surveys/min); add a step"
        )
        return
    print(
        f"   SQLite saturates past {rate(healthy.result):.0f} requests/s, about "
        f"{healthy.pace:.0f} surveys a minute ({healthy.patients} patients answering at once); "
        f"{last.patients} patients gave {rate(last.result):.0f} requests/s at p95 "
        f"{last.result['p95']:.0f} ms with {last.errors} errors"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--short", action="store_true", help="CI's: a minute of load, two hosts; no SQLite steps"
    )
    parser.add_argument("--parts", default=None, help="comma-separated: load,two-hosts,sqlite")
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--staff", type=int, default=20)
    parser.add_argument("--think", default="4,10", help="a patient's pause per page, min,max s")
    parser.add_argument("--staff-think", default="3,8")
    parser.add_argument("--two-seconds", type=int, default=90)
    parser.add_argument("--two-patients", type=int, default=40)
    parser.add_argument(
        "--drain",
        type=int,
        default=0,
        help="seconds patients may take to finish the survey in hand when the load stops",
    )
    parser.add_argument("--two-staff", type=int, default=4)
    parser.add_argument("--two-think", default="0.1,0.4")
    parser.add_argument("--sqlite-steps", default="10,20,40,80,160")
    parser.add_argument("--sqlite-seconds", type=int, default=60)
    parser.add_argument("--sqlite-think", default="0.5,1.5")
    parser.add_argument("--p95-limit", type=float, default=1000.0, help="ms")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PROMS_SOAK_POSTGRES_URL") or harness.DEFAULT_SERVER,
    )
    parser.add_argument(
        "--instruments",
        type=lambda text: [code for code in text.split(",") if code],
        default=[],
        help="keep only these questionnaires of the bundled protocol, e.g. promis-pi-4a,peg",
    )
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--logs", type=Path, help="keep the servers' and locust's logs here")
    parser.add_argument(
        "--schema",
        choices=("migrate", "create-all"),
        default="migrate",
        help="migrate: `proms db upgrade` (as deployed); create-all: the models (as the tests)",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.seconds = min(args.seconds, 45)
        args.patients = min(args.patients, 24)
        args.staff = min(args.staff, 4)
        args.think = "0.2,0.6"
        args.staff_think = "1,3"
        args.two_seconds = min(args.two_seconds, 25)
        args.two_patients = min(args.two_patients, 12)
        args.two_staff = min(args.two_staff, 2)
        args.instruments = args.instruments or ["promis-pi-4a", "peg"]
        args.drain = args.drain or 20
    parts = (args.parts or ("load,two-hosts" if args.short else "load,two-hosts,sqlite")).split(",")
    started = time.perf_counter()
    phases: list[Phase] = []
    saturation: tuple[list[Step], Step | None] | None = None
    with tempfile.TemporaryDirectory(prefix="proms-soak-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if "load" in parts or "two-hosts" in parts:
                phases += postgres_parts(args, workdir, parts)
            if "sqlite" in parts:
                phase, steps, healthy = sqlite_phase(args, workdir)
                phases.append(phase)
                saturation = (steps, healthy)
        except SoakError as exc:
            for phase in phases:
                print_phase(phase)
            print(f"\nsoak: could not run: {harness.redact(str(exc))}", file=sys.stderr)
            return 2
    for phase in phases:
        print_phase(phase)
    if saturation is not None:
        print_saturation(*saturation, args.p95_limit)
    failed = [f"{p.title.split(':')[0]}: {g.name}" for p in phases for g in p.gates if not g.ok]
    elapsed = time.perf_counter() - started
    print(
        f"\nsoak: {len(failed)} gate(s) failed in {elapsed:.0f} s"
        + (": " + "; ".join(failed) if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
