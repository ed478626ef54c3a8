"""Benchmark the patient survey: page weight per page type, and the time of a question POST.

Sets up a throwaway database (SQLite in a temp dir, or PROMS_BENCH_DATABASE_URL: an empty
PostgreSQL database the script may fill), migrates it, loads the demo data and seeds patients
whose baseline questionnaire is open (and one Spanish-speaking patient at the end of the course,
the longest questionnaire), then starts, in the same run and each under `gunicorn -w 1`:
  proms     `proms:create_app()` (PROMS_ENV=development; link rate limit raised, see below)
  baseline  a bare Flask + Flask-SQLAlchemy app whose one POST inserts one row and commits
            (same database kind and SQLite pragmas, same worker count)
and measures, with a plain HTTP client that keeps cookies and parses CSRF tokens from pages:
  page weight  every patient page type (welcome, question, review, thank you, completed,
               expired, unknown link, session ended; the largest question and the review of the
               longest questionnaire in Spanish too): HTML bytes, HTML + stylesheets + scripts
               + images uncompressed and gzipped (bytes on the wire with Accept-Encoding: gzip),
               requests, stylesheets, third-party URLs; targets: at most 15 KB (15,000 bytes)
               uncompressed, exactly one stylesheet, zero third-party requests
  latency      N question POSTs (each saves a real answer; a new link when a survey runs out of
               questions) against N one-row-insert POSTs, interleaved, one client, one request
               at a time; p50 and p99 of client wall time; target: at most 2x the baseline

The targets are reported, not asserted: the script exits 0 unless the setup fails.
LINK_RATE_LIMIT (30 a minute per address) would refuse the benchmark's link openings, so the
proms server runs with PROMS_LINK_RATE_LIMIT="100000 per minute" (the limiter still runs).

    .venv/bin/python bench/survey_bench.py [--posts 500] [--warmup 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.client
import importlib.metadata
import math
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PAGE_LIMIT = 15_000  # bytes, uncompressed, HTML and everything it loads
LATENCY_LIMIT = 2.0  # proms / bare
BENCH_CLINIC = "demo-pain"

BARE_APP = '''
"""The baseline: one POST that inserts one row and commits, nothing else."""
import datetime as dt
import os
import sqlite3

from flask import Flask, redirect, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BARE_DATABASE_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
db = SQLAlchemy(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    # The same pragmas as proms (proms/db.py), so both commit the same way.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


class Row(db.Model):
    __tablename__ = "bench_bare_row"
    id = db.Column(db.Integer, primary_key=True)
    value = db.Column(db.String(64), nullable=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False)


with app.app_context():
    Row.__table__.drop(db.engine, checkfirst=True)
    Row.__table__.create(db.engine)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/answer")
def answer():
    db.session.add(Row(value=request.form.get("answer", ""), created_at=dt.datetime.now(dt.UTC)))
    db.session.commit()
    return redirect("/next", 303)
'''


class BenchError(RuntimeError):
    pass


# --- a small HTTP client: one connection per request (gunicorn's sync worker closes it) -------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes  # as received on the wire (compressed when Content-Encoding says so)
    seconds: float

    @property
    def location(self) -> str:
        target = urlsplit(self.headers.get("Location", ""))
        return target.path + (f"?{target.query}" if target.query else "")

    @property
    def text(self) -> str:
        raw = gzip.decompress(self.body) if self.gzipped else self.body
        return raw.decode("utf-8")

    @property
    def gzipped(self) -> bool:
        return self.headers.get("Content-Encoding", "") == "gzip"


@dataclass
class Client:
    """A browser in miniature: cookies kept and sent back, Origin on POSTs, no redirects."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        *,
        gzip_ok: bool = True,
    ) -> Reply:
        headers = {"Accept-Encoding": "gzip" if gzip_ok else "identity", "Accept": "text/html"}
        body = None
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        seconds = time.perf_counter() - start
        reply = Reply(response.status, response.headers, data, seconds)
        self._keep_cookies(reply)
        return reply

    def get(self, path: str, *, gzip_ok: bool = True) -> Reply:
        return self.request("GET", path, gzip_ok=gzip_ok)

    def post(self, path: str, form: dict[str, str]) -> Reply:
        return self.request("POST", path, form)

    def _keep_cookies(self, reply: Reply) -> None:
        for header in reply.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                gone = morsel["max-age"] == "0" or "1970" in morsel["expires"]
                if gone or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


# --- pages ------------------------------------------------------------------------------------


class PageParser(HTMLParser):
    """What a browser would load for a page, and the form values the benchmark needs."""

    FETCHED_LINKS = frozenset(
        {"stylesheet", "icon", "apple-touch-icon", "manifest", "preload", "modulepreload"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.subresources: list[tuple[str, str]] = []  # (kind, url)
        self.inline: list[str] = []  # <style> and <script> without src
        self.csrf: str | None = None
        self.answers: list[str] = []
        self.language: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.language = a.get("lang")
        elif tag == "link":
            rel = set(a.get("rel", "").lower().split())
            if "stylesheet" in rel:
                self._add("stylesheet", a.get("href"))
            elif rel & self.FETCHED_LINKS:
                self._add("link", a.get("href"))
        elif tag == "script":
            if a.get("src"):
                self._add("script", a["src"])
            else:
                self.inline.append("script")
        elif tag == "style":
            self.inline.append("style")
        elif tag in ("img", "source", "video", "audio", "iframe", "embed", "track"):
            self._add(tag, a.get("src"))
            for candidate in a.get("srcset", "").split(","):
                self._add(tag, candidate.strip().split(" ")[0])
        elif tag == "object":
            self._add(tag, a.get("data"))
        elif tag == "input":
            if a.get("type") == "image":
                self._add("img", a.get("src"))
            if a.get("name") == "csrf_token":
                self.csrf = a.get("value")
            if a.get("name") == "answer" and a.get("type") == "radio":
                self.answers.append(a.get("value", ""))

    def _add(self, kind: str, url: str | None) -> None:
        if url and not url.startswith("data:") and (kind, url) not in self.subresources:
            self.subresources.append((kind, url))


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


def parse(reply: Reply) -> PageParser:
    parser = PageParser()
    parser.feed(reply.text)
    parser.close()
    return parser


@dataclass
class Weight:
    page: str
    status: int
    html: int = 0
    html_gzip: int = 0
    html_gzipped: bool = False
    total: int = 0
    total_gzip: int = 0
    requests: int = 0
    stylesheets: int = 0
    third_party: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    not_gzipped: list[str] = field(default_factory=list)  # resources sent uncompressed anyway

    @property
    def verdict(self) -> str:
        failed = []
        if self.total > PAGE_LIMIT:
            failed.append("size")
        if self.stylesheets != 1:
            failed.append("stylesheets")
        if self.third_party:
            failed.append("third-party")
        return "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"


def weigh(client: Client, page: str, path: str, expect: int) -> tuple[Weight, PageParser]:
    """Fetch a page and what it loads, plain and gzipped; returns the weight and the gzip copy."""
    plain = client.get(path, gzip_ok=False)
    packed = client.get(path, gzip_ok=True)
    for reply in (plain, packed):
        if reply.status != expect:
            raise BenchError(f"{page}: GET {path} gave {reply.status}, expected {expect}")
    weight = Weight(page, plain.status, html=len(plain.body), html_gzip=len(packed.body))
    weight.html_gzipped = packed.gzipped
    if not packed.gzipped:
        weight.not_gzipped.append("html")
    weight.total, weight.total_gzip, weight.requests = weight.html, weight.html_gzip, 1
    page_url = client.origin + path
    parser = parse(plain)
    weight.inline = parser.inline
    queue = [(kind, urljoin(page_url, url)) for kind, url in parser.subresources]
    seen: set[str] = set()
    while queue:
        kind, url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        weight.requests += 1
        weight.stylesheets += kind == "stylesheet"
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != client.origin:
            weight.third_party.append(url)  # counted, not fetched
            continue
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sub_plain = client.get(target, gzip_ok=False)
        sub_packed = client.get(target, gzip_ok=True)
        if sub_plain.status != 200:
            raise BenchError(f"{page}: {kind} {target} gave {sub_plain.status}")
        weight.total += len(sub_plain.body)
        weight.total_gzip += len(sub_packed.body)
        if not sub_packed.gzipped:
            weight.not_gzipped.append(Path(parts.path).name)
        if kind == "stylesheet":  # fonts, images and imports a stylesheet pulls in
            css = sub_plain.body.decode("utf-8", "replace")
            for found in CSS_URL.finditer(css):
                ref = found.group(1) or found.group(2)
                if not ref.startswith("data:"):
                    nested = "stylesheet" if found.group(2) else "css-url"
                    queue.append((nested, urljoin(url, ref)))
    return weight, parse(packed)


def walk(port: int, token: str, language: str) -> dict[str, Weight]:
    """Answer one whole survey as a patient would, weighing each page type on the way."""

    def name(page: str, *details: str) -> str:
        details = (*details, language) if language != "en" else details
        return f"{page} ({', '.join(details)})" if details else page

    client = Client(port)
    weights = {}
    weights["welcome"], page = weigh(client, name("welcome"), f"/s/{token}", 200)
    if page.language != language:
        raise BenchError(f"the welcome page is in {page.language!r}, expected {language!r}")
    started = client.post(f"/s/{token}", {"csrf_token": _csrf(page, "welcome")})
    if started.status != 303:
        raise BenchError(f"Start gave {started.status}, expected 303")
    location = started.location
    numbers = []
    while location.startswith("/s/q/"):
        weight, page = weigh(client, "question", location, 200)
        numbers.append(location.rsplit("/", 1)[-1])
        weights.setdefault("first question", weight)
        if "largest question" not in weights or weight.total > weights["largest question"].total:
            weights["largest question"] = weight
            largest = numbers[-1]
        saved = client.post(
            location,
            {"csrf_token": _csrf(page, location), "answer": page.answers[0], "next": "Next"},
        )
        if saved.status != 303:
            raise BenchError(f"POST {location} gave {saved.status}, expected 303")
        location = saved.location
    if not numbers or location != "/s/review":
        raise BenchError(f"the survey ended at {location!r} after {len(numbers)} questions")
    weights["first question"].page = name(f"question {numbers[0]}")
    weights["largest question"].page = name(f"question {largest}", f"largest of {len(numbers)}")
    if weights["first question"] is weights["largest question"]:
        del weights["first question"]
    review = name("review", f"{len(numbers)} answers")
    weights["review"], page = weigh(client, review, "/s/review", 200)
    sent = client.post("/s/submit", {"csrf_token": _csrf(page, "review")})
    if sent.status != 303 or sent.location != "/s/done":
        raise BenchError(f"submit gave {sent.status} to {sent.location!r}")
    weights["thank you"] = weigh(client, name("thank you"), "/s/done", 200)[0]
    weights["completed"] = weigh(client, name("completed link"), f"/s/{token}", 200)[0]
    return weights


def page_weights(port: int, links: BenchLinks) -> list[Weight]:
    """Every page type of an English baseline; the two heaviest of the largest survey."""
    weights = list(walk(port, links.walk, "en").values())
    worst = walk(port, links.worst, "es")
    weights += [worst["largest question"], worst["review"]]
    weights.append(weigh(Client(port), "expired link", f"/s/{links.expired}", 410)[0])
    unknown = secrets.token_urlsafe(32)
    weights.append(weigh(Client(port), "unknown link", f"/s/{unknown}", 404)[0])
    weights.append(weigh(Client(port), "session ended", "/s/q/1", 403)[0])
    return weights


def _csrf(page: PageParser, where: str) -> str:
    if not page.csrf:
        raise BenchError(f"no csrf_token input on {where}")
    return page.csrf


# --- latency ----------------------------------------------------------------------------------


def question_posts(
    port: int, tokens: list[str], rng: random.Random
) -> Generator[tuple[Client, str, dict[str, str]], Reply, None]:
    """Yield ready-to-send question POSTs, one link after another; receives each reply.

    Between POSTs it does what the browser does after the 303, untimed: GET the next question
    (for its CSRF token and options). A new client (cookies) per link, as a new patient.
    """
    for token in tokens:
        client = Client(port)
        welcome = client.get(f"/s/{token}")
        if welcome.status != 200:
            raise BenchError(f"link opening gave {welcome.status}")
        started = client.post(f"/s/{token}", {"csrf_token": _csrf(parse(welcome), "welcome")})
        if started.status != 303:
            raise BenchError(f"Start gave {started.status}, expected 303")
        location = started.location
        while location.startswith("/s/q/"):
            shown = client.get(location)
            if shown.status != 200:
                raise BenchError(f"GET {location} gave {shown.status}")
            page = parse(shown)
            form = {"csrf_token": _csrf(page, location), "answer": rng.choice(page.answers)}
            form["next"] = "Next"
            reply = yield client, location, form
            if reply.status != 303:
                raise BenchError(f"POST {location} gave {reply.status}, expected 303")
            location = reply.location
    raise BenchError("ran out of links: seed_links mints too few for --posts and --warmup")


def latency(
    proms_port: int, bare_port: int, tokens: list[str], posts: int, warmup: int, seed: int
) -> tuple[list[float], list[float]]:
    """Interleaved: a proms question POST, then a bare POST; the first `warmup` are not kept."""
    rng = random.Random(seed)
    bare = Client(bare_port)
    proms_times: list[float] = []
    bare_times: list[float] = []
    walker = question_posts(proms_port, tokens, rng)
    job = next(walker)
    for n in range(warmup + posts):
        client, path, form = job
        reply = client.post(path, form)
        baseline = bare.post("/answer", {"answer": form["answer"]})
        if baseline.status != 303:
            raise BenchError(f"bare POST gave {baseline.status}")
        if n >= warmup:
            proms_times.append(reply.seconds)
            bare_times.append(baseline.seconds)
        if n + 1 < warmup + posts:
            job = walker.send(reply)
    walker.close()
    return proms_times, bare_times


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


# --- setup ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def setup_database(env: dict[str, str]) -> None:
    for command in (["alembic", "upgrade", "head"], ["proms", "demo"]):
        done = subprocess.run(
            [str(BIN / command[0]), *command[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")


@dataclass
class BenchLinks:
    walk: str  # an English baseline, walked for the page weights
    worst: str  # a Spanish end-of-course questionnaire: the most questions (41)
    expired: str  # a link that ran out while its questionnaire is still open
    latency: list[str]  # English baselines for the timed POSTs
    per_link: int  # questions of a baseline
    worst_questions: int  # questions of the end-of-course questionnaire


def seed_links(database_url: str, answers: int) -> tuple[Flask, BenchLinks]:
    """New patients in the demo clinic (email on file) and links to their open questionnaires.

    Baselines: the first infusion a week from now, so the baseline window is open today.
    End of course: the first infusion five days ago (the window is day 4 to day 7).
    """
    os.environ["PROMS_DATABASE_URL"] = database_url
    os.environ["PROMS_ENV"] = "development"
    from sqlalchemy import select

    from proms import create_app
    from proms.admin.instruments import deployment_registry
    from proms.admin.models import Channel, Clinic, Patient, Protocol
    from proms.admin.services import enroll_patient
    from proms.db import db, utcnow
    from proms.surveys import links
    from proms.surveys.services import planned_question_count

    app = create_app()
    with app.app_context():
        session = db.session
        now = utcnow()
        clinic = session.scalar(select(Clinic).where(Clinic.slug == BENCH_CLINIC))
        assert clinic is not None
        protocol = session.scalar(select(Protocol).where(Protocol.clinic_id == clinic.id))
        assert protocol is not None
        max_age = dt.timedelta(days=app.config["SURVEY_LINK_MAX_AGE_DAYS"])
        serial = iter(range(1_000_000))

        def open_assessment(key: str, anchor_days: int, language: str = "en"):  # type: ignore[no-untyped-def]
            n = next(serial)
            patient = Patient(
                clinic=clinic,
                mrn=f"BENCH{n:05d}",
                given_name="Bench",
                family_name=f"Patient {n}",
                birth_on=dt.date(1960, 1, 1),
                email=f"bench.{n}@example.org",
                preferred_channel=Channel.EMAIL,
                time_zone=clinic.time_zone,
                language=language,
            )
            session.add(patient)
            session.flush()
            anchor = now.date() + dt.timedelta(days=anchor_days)
            enrollment = enroll_patient(session, patient, protocol, anchor)
            assessment = next(a for a in enrollment.assessments if a.timepoint.key == key)
            if not assessment.is_open(now):
                raise BenchError(f"the seeded {key} is not open: check the protocol windows")
            return assessment

        def mint(assessment, age: dt.timedelta = max_age) -> str:  # type: ignore[no-untyped-def]
            return links.mint_token(session, assessment, now=now, max_age=age)

        registry = deployment_registry(session)
        walk_baseline = open_assessment("baseline", 7)
        per_link = planned_question_count(registry, walk_baseline)
        worst = open_assessment("end_of_course", -5, "es")
        bench = BenchLinks(
            walk=mint(walk_baseline),
            worst=mint(worst),
            expired=mint(open_assessment("baseline", 7), dt.timedelta(0)),
            latency=[
                mint(open_assessment("baseline", 7))
                for _ in range(math.ceil(answers / per_link) + 1)  # one spare
            ],
            per_link=per_link,
            worst_questions=planned_question_count(registry, worst),
        )
        session.commit()
        db.engine.dispose()
    return app, bench


def count_answers(app: Flask) -> int:
    from proms.db import db
    from proms.surveys.models import SurveyResponse

    with app.app_context():
        total = sum(len(r.answers) for r in db.session.scalars(db.select(SurveyResponse)))
        db.engine.dispose()
    return total


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


def gunicorn_options() -> list[str]:
    """gunicorn 27 opens a control socket at one fixed path; two servers would share it."""
    major = int(importlib.metadata.version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


def start_server(
    name: str, app: str, port: int, env: dict[str, str], cwd: Path, log: Path
) -> Server:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", *gunicorn_options(), app],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return Server(name, process, port, log)


def wait_healthy(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} exited ({server.process.returncode}):\n{server.tail()}"
            )
        try:
            if Client(server.port).get("/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not answer /healthz in {timeout:.0f} s:\n{server.tail()}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --- report -----------------------------------------------------------------------------------


def report_pages(weights: list[Weight]) -> None:
    print(
        f"Page weight (response bodies, cold cache; target <= {PAGE_LIMIT:,} B uncompressed, "
        "1 stylesheet, 0 third-party)"
    )
    print(
        f"  {'page':<31} {'status':>6} {'html B':>7} {'html gz':>7} {'total B':>8} "
        f"{'total gz':>8} {'reqs':>4} {'css':>3} {'3rd':>3}  verdict"
    )
    for w in weights:
        print(
            f"  {w.page:<31} {w.status:>6} {w.html:>7,} {w.html_gzip:>7,} {w.total:>8,} "
            f"{w.total_gzip:>8,} {w.requests:>4} {w.stylesheets:>3} {len(w.third_party):>3}  "
            f"{w.verdict}"
        )
    plain = sorted({name for w in weights for name in w.not_gzipped})
    uncompressed = ", ".join(w.page for w in weights if not w.html_gzipped)
    if uncompressed:
        print(f"  note: HTML sent uncompressed despite Accept-Encoding: gzip: {uncompressed}")
    if plain and plain != ["html"]:
        names = ", ".join(n for n in plain if n != "html")
        print(f"  note: subresources sent uncompressed with Accept-Encoding: gzip: {names}")
    inline = sorted({kind for w in weights for kind in w.inline})
    if inline:
        print(f"  note: inline {', '.join(inline)} blocks found")
    third = sorted({url for w in weights for url in w.third_party})
    for url in third:
        print(f"  third-party: {url}")


def report_latency(
    proms_times: list[float], bare_times: list[float], warmup: int, saved: int, expected: int
) -> None:
    ms = 1000.0
    rows = {
        "bare (insert one row)": bare_times,
        "proms question POST": proms_times,
    }
    print(
        f"Question POST latency ({len(proms_times)} per side after {warmup} warm-up, interleaved, "
        "client wall time, one connection per request)"
    )
    print(f"  {'':<24} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for name, samples in rows.items():
        p50, p99 = percentile(samples, 50) * ms, percentile(samples, 99) * ms
        mean, worst = statistics.fmean(samples) * ms, max(samples) * ms
        print(f"  {name:<24} {p50:>8.2f} {p99:>8.2f} {mean:>8.2f} {worst:>8.2f}")
    p50 = percentile(proms_times, 50) / percentile(bare_times, 50)
    p99 = percentile(proms_times, 99) / percentile(bare_times, 99)
    verdict = "PASS" if max(p50, p99) <= LATENCY_LIMIT else "FAIL"
    print(
        f"  ratio proms/bare: p50 {p50:.2f}x, p99 {p99:.2f}x  (target <= {LATENCY_LIMIT:g}x)  "
        f"{verdict}"
    )
    check = "as expected" if saved == expected else f"EXPECTED {expected:,}"
    print(f"  answers stored in the proms database after the run: {saved:,} ({check})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500, help="timed POSTs per side")
    parser.add_argument("--warmup", type=int, default=50, help="untimed POSTs per side first")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="proms-survey-bench-") as tmp:
        workdir = Path(tmp)
        database_url = os.environ.get("PROMS_BENCH_DATABASE_URL") or (
            f"sqlite:///{workdir / 'proms.sqlite3'}"
        )
        bare_url = os.environ.get("PROMS_BENCH_DATABASE_URL") or (
            f"sqlite:///{workdir / 'bare.sqlite3'}"
        )
        kind = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
        env = {
            **os.environ,
            "PROMS_ENV": "development",
            "PROMS_DATABASE_URL": database_url,
            "PROMS_LINK_RATE_LIMIT": "100000 per minute",
        }
        setup_database(env)
        app, links = seed_links(database_url, args.posts + args.warmup)
        (workdir / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
        proms_server = start_server(
            "proms", "proms:create_app()", free_port(), env, ROOT, workdir / "proms.log"
        )
        bare_env = {**os.environ, "BARE_DATABASE_URL": bare_url}
        servers = [proms_server]
        try:
            bare_server = start_server(
                "bare", "bare_app:app", free_port(), bare_env, workdir, workdir / "bare.log"
            )
            servers.append(bare_server)
            wait_healthy(proms_server)
            wait_healthy(bare_server)
            weights = page_weights(proms_server.port, links)
            proms_times, bare_times = latency(
                proms_server.port,
                bare_server.port,
                links.latency,
                args.posts,
                args.warmup,
                args.seed,
            )
        except BenchError:
            for server in servers:
                print(f"--- {server.name} log:\n{server.tail()}", file=sys.stderr)
            raise
        finally:
            for server in servers:
                stop(server)
        saved = count_answers(app)
    print(
        f"proms survey bench: {kind}, gunicorn -w 1 (sync) for proms and the bare baseline, "
        f"{links.per_link} questions per baseline questionnaire"
    )
    report_pages(weights)
    walked = links.per_link + links.worst_questions  # the page walks answer every question
    expected = walked + args.warmup + args.posts
    report_latency(proms_times, bare_times, args.warmup, saved, expected)
    print(f"  (whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        raise SystemExit(f"survey bench failed: {exc}") from None
