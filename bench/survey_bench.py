"""Benchmark the patient survey: bytes a phone downloads per page, and the time of a question POST.

Sets up a throwaway database (SQLite in a temp dir, or PROMS_BENCH_DATABASE_URL: an empty
PostgreSQL database the script may fill), migrates it, loads the demo data and seeds patients
whose baseline questionnaire is open (and one Spanish-speaking patient at the end of the course,
the longest questionnaire), then starts, in the same run and each under `gunicorn -w 1`:
  proms     `proms:create_app()` (PROMS_ENV=development; link rate limit raised, see below)
  baseline  a bare Flask + Flask-SQLAlchemy app whose one POST inserts one row and commits
            (same database kind and SQLite pragmas, same worker count)
and measures:
  page weight  a real browser (Debian's Chromium, headless, driven by Playwright; a 390 x 844
               phone; its HTTP cache on, a new empty one per phone) walks a whole baseline
               questionnaire in English: welcome, Start, every question answered (and one
               "Next" without an answer), review, send, thank you, the link opened again; the
               same for the longest questionnaire in Spanish; and, each on a new phone, an
               expired link, an unknown link and a question without the survey cookie.
               Per page: the bytes transferred for it, as Chromium's network stack counts them
               (DevTools: status line, headers and compressed body of every response the
               navigation needed: a POST's 303 and the page it leads to, and any subresource not
               served from the cache), and the bodies decoded.
               Targets: the first page of a visit (empty cache) at most 5 KB (5,000 bytes)
               transferred; every later page at most 1.5 KB (1,500 bytes); every page at most
               15 KB (15,000 bytes) of HTML + stylesheet decoded; one stylesheet, no third party
  latency      N question POSTs (each saves a real answer; a new link when a survey runs out of
               questions) against N one-row-insert POSTs, interleaved, one client, one request
               at a time, with a plain HTTP client that keeps cookies and parses CSRF tokens
               from pages; p50 and p99 of client wall time; target: at most 2x the baseline

The targets are reported, not asserted: the script exits 0 unless the setup fails.
LINK_RATE_LIMIT (30 a minute per address) would refuse the benchmark's link openings, so the
proms server runs with PROMS_LINK_RATE_LIMIT="100000 per minute" (the limiter still runs, and
its X-RateLimit-* headers are counted on the link pages).

    .venv/bin/python bench/survey_bench.py [--posts 500] [--warmup 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import http.client
import importlib.metadata
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Browser, CDPSession, Page

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PAGE_LIMIT = 15_000  # bytes, uncompressed, HTML and everything it loads
FIRST_PAGE_LIMIT = 5_000  # bytes transferred, the first page of a visit (nothing cached)
LATER_PAGE_LIMIT = 1_500  # bytes transferred, every page after it
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
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
    """The form values the latency walk needs: the CSRF token and the answer options."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.csrf: str | None = None
        self.answers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "input":
            if a.get("name") == "csrf_token":
                self.csrf = a.get("value")
            if a.get("name") == "answer" and a.get("type") == "radio":
                self.answers.append(a.get("value", ""))


def parse(reply: Reply) -> PageParser:
    parser = PageParser()
    parser.feed(reply.text)
    parser.close()
    return parser


def _csrf(page: PageParser, where: str) -> str:
    if not page.csrf:
        raise BenchError(f"no csrf_token input on {where}")
    return page.csrf


# --- page weight: what a phone's browser downloads, page by page -------------------------------


@dataclass
class Fetch:
    """One response a page needed, as Chromium's network stack saw it."""

    url: str
    status: int
    kind: str  # DevTools resource type: Document, Stylesheet, Image, ...
    sent: int  # bytes on the wire: status line, headers and the body as sent (compressed)
    body: int  # the body after decompression (0 for a redirect)
    encoding: str  # Content-Encoding ("" for none)
    cached: bool  # served from the browser's cache: nothing crossed the network

    def describe(self) -> str:
        if self.cached:
            return f"{self.kind.lower()} cached"
        if self.kind == "Redirect":
            return str(self.status)
        coding = f" {self.encoding}" if self.encoding else ""
        return f"{self.kind.lower()} {self.status}{coding}"


@dataclass
class PageLoad:
    """Everything one navigation needed: a POST's 303 and the page it leads to, subresources."""

    name: str
    first: bool  # the first page of a visit (empty cache)
    fetches: list[Fetch] = field(default_factory=list)

    @property
    def status(self) -> int:
        documents = [f for f in self.fetches if f.kind == "Document"]
        return documents[-1].status if documents else 0

    @property
    def sent(self) -> int:
        return sum(f.sent for f in self.fetches)

    @property
    def uncompressed(self) -> int:
        """The bodies the browser had to read (HTML, stylesheet, ...), cached or not."""
        return sum(f.body for f in self.fetches)

    @property
    def limit(self) -> int:
        return FIRST_PAGE_LIMIT if self.first else LATER_PAGE_LIMIT

    @property
    def stylesheets(self) -> int:
        return sum(f.kind == "Stylesheet" for f in self.fetches)

    def third_party(self, origin: str) -> list[str]:
        return [f.url for f in self.fetches if _origin_of(f.url) != origin]

    def failures(self, origin: str) -> list[str]:
        failed = []
        if self.sent > self.limit:
            failed.append("sent")
        if self.uncompressed > PAGE_LIMIT:
            failed.append("uncompressed")
        if self.stylesheets != 1:
            failed.append("stylesheets")
        if self.third_party(origin):
            failed.append("third-party")
        return failed


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class NetworkLog:
    """Chromium's DevTools network events, grouped into page loads.

    Bytes on the wire: `Network.loadingFinished.encodedDataLength` (headers and encoded body,
    0 when the cache served it); for a redirect, the `encodedDataLength` of the redirect
    response (its headers; Chromium does not read a redirect's body) plus its Content-Length.
    Decoded body sizes: the `dataLength` of `Network.dataReceived`, which the cache reports too.
    """

    def __init__(self, cdp: CDPSession) -> None:
        self.cdp = cdp
        self.current: PageLoad | None = None
        self.open: dict[str, tuple[PageLoad, dict[str, Any]]] = {}
        cdp.send("Network.enable")
        cdp.on("Network.requestWillBeSent", self._will_be_sent)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)

    def _will_be_sent(self, event: dict[str, Any]) -> None:
        request_id = event["requestId"]
        redirect = event.get("redirectResponse")
        if redirect is not None and request_id in self.open:
            load, hop = self.open.pop(request_id)
            headers = {k.lower(): v for k, v in redirect["headers"].items()}
            body = int(headers.get("content-length", "0") or 0)
            load.fetches.append(
                Fetch(
                    hop["url"],
                    redirect["status"],
                    "Redirect",
                    redirect["encodedDataLength"] + body,
                    0,
                    "",
                    False,
                )
            )
        if self.current is None:
            return  # not part of a measured page (there are none)
        hop = {"url": event["request"]["url"], "kind": event.get("type", "Other"), "body": 0}
        self.open[request_id] = (self.current, hop)

    def _from_cache(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.open:
            self.open[event["requestId"]][1]["cached"] = True

    def _response(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.open:
            hop = self.open[event["requestId"]][1]
            response = event["response"]
            headers = {k.lower(): v for k, v in response["headers"].items()}
            hop["status"] = response["status"]
            hop["encoding"] = headers.get("content-encoding", "")
            hop["cached"] = hop.get("cached") or bool(
                response.get("fromDiskCache") or response.get("fromPrefetchCache")
            )

    def _data(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.open:
            self.open[event["requestId"]][1]["body"] += event["dataLength"]

    def _finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] not in self.open:
            return
        load, hop = self.open.pop(event["requestId"])
        cached = bool(hop.get("cached"))
        load.fetches.append(
            Fetch(
                hop["url"],
                hop.get("status", 0),
                hop["kind"],
                0 if cached else int(event["encodedDataLength"]),
                hop["body"],
                hop.get("encoding", ""),
                cached,
            )
        )

    def _failed(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.open:
            _load, hop = self.open.pop(event["requestId"])
            raise BenchError(f"{hop['url']} failed to load: {event.get('errorText')}")

    def measure(self, page: Page, name: str, first: bool, action: Callable[[], object]) -> PageLoad:
        """Run one navigation (a goto, a tap on a submit button) and return what it fetched."""
        load = PageLoad(name, first)
        self.current = load
        try:
            with page.expect_navigation(wait_until="load"):
                action()
            deadline = time.monotonic() + 10
            # Events arrive in order with the replies to commands: one round trip delivers
            # everything sent before it; the loop covers a straggler.
            self.cdp.send("Runtime.evaluate", {"expression": "0"})
            while any(owner is load for owner, _hop in self.open.values()):
                if time.monotonic() > deadline:
                    raise BenchError(f"{name}: requests still open after 10 s")
                page.wait_for_timeout(20)
        finally:
            self.current = None
        if not any(f.kind == "Document" for f in load.fetches):
            raise BenchError(f"{name}: no page was loaded")
        return load


PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Walk:
    title: str
    loads: list[PageLoad]


def _phone(browser: Browser, language: str) -> tuple[Page, NetworkLog]:
    """A new phone (an empty cache: Playwright's contexts keep their HTTP cache in memory)."""
    context = browser.new_context(**PHONE, locale=language)
    context.set_default_timeout(15_000)
    page = context.new_page()
    return page, NetworkLog(context.new_cdp_session(page))


def walk_questionnaire(browser: Browser, base: str, token: str, language: str) -> list[PageLoad]:
    """Answer a whole questionnaire as a patient would: welcome, Start, each question (one
    "Next" without an answer on the way), review, each questionnaire's answers and back, send,
    thank you; then open the link again."""
    page, log = _phone(browser, language)
    loads = [log.measure(page, "welcome", True, lambda: page.goto(f"{base}/s/{token}"))]
    loads.append(log.measure(page, "question 1", False, page.locator("main form button").tap))
    loads.append(
        log.measure(page, "question 1, no answer", False, page.locator("input[name=next]").tap)
    )
    if loads[-1].status != 400:
        raise BenchError(f"Next without an answer gave {loads[-1].status}, expected 400")
    number = 1
    while urlsplit(page.url).path.startswith("/s/q/"):
        page.locator("label.option").first.tap()
        after = urlsplit(page.url).path
        load = log.measure(page, "", False, page.locator("input[name=next]").tap)
        path = urlsplit(page.url).path
        if path == after:
            raise BenchError(f"Next on {after} stayed on the page ({load.status})")
        number += 1
        load.name = f"question {number}" if path.startswith("/s/q/") else "review"
        loads.append(load)
    if urlsplit(page.url).path != "/s/review":
        raise BenchError(f"the questionnaire ended at {page.url}")
    loads[-1].name = f"review ({number - 1} answers)"
    # A careful patient looks over every questionnaire's answers before sending.
    parts = page.locator("ul.parts a")
    for index in range(parts.count()):
        title = parts.nth(index).inner_text()
        loads.append(log.measure(page, f"answers: {title[:40]}", False, parts.nth(index).tap))
        back = page.get_by_role("link", name=page.locator("nav.back a").inner_text()).first
        loads.append(log.measure(page, "review again", False, back.tap))
    send = page.locator("form[action$='/s/submit'] button").first
    loads.append(log.measure(page, "thank you", False, send.tap))
    if urlsplit(page.url).path != "/s/done":
        raise BenchError(f"sending ended at {page.url}")
    loads.append(
        log.measure(page, "link again (done)", False, lambda: page.goto(f"{base}/s/{token}"))
    )
    page.context.close()
    return loads


def first_visits(browser: Browser, base: str, links: BenchLinks) -> list[PageLoad]:
    """Pages a patient may open first: a link that expired, one that never existed, a question
    without the survey cookie. Each on a new phone."""
    visits = [
        ("expired link", f"/s/{links.expired}", 410),
        ("unknown link", f"/s/{secrets.token_urlsafe(32)}", 404),
        ("session ended", "/s/q/1", 403),
    ]
    loads = []
    for name, path, status in visits:
        page, log = _phone(browser, "en")
        load = log.measure(page, name, True, functools.partial(page.goto, base + path))
        if load.status != status:
            raise BenchError(f"{name}: {load.status}, expected {status}")
        loads.append(load)
        page.context.close()
    return loads


def page_weights(port: int, links: BenchLinks) -> tuple[str, list[Walk]]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise BenchError(f"{CHROMIUM} is missing (apt-get install chromium)")
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            walks = [
                Walk(
                    f"baseline questionnaire, English ({links.per_link} questions)",
                    walk_questionnaire(browser, base, links.walk, "en"),
                ),
                Walk(
                    f"end-of-course questionnaire, Spanish ({links.worst_questions} questions)",
                    walk_questionnaire(browser, base, links.worst, "es"),
                ),
                Walk("first visits", first_visits(browser, base, links)),
            ]
            version = browser.version
        finally:
            browser.close()
    return version, walks


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
    from proms.admin.models import Channel, Clinic, Patient, Protocol
    from proms.admin.services import enroll_patient
    from proms.catalog.services import deployment_registry
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


def _row(load: PageLoad, origin: str) -> str:
    failed = load.failures(origin)
    verdict = "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"
    order = {"Redirect": 0, "Document": 1}
    fetches = sorted(load.fetches, key=lambda f: order.get(f.kind, 2))
    responses = ", ".join(f.describe() for f in fetches)
    return (
        f"  {load.name:<28} {load.status:>6} {load.sent:>7,} {load.limit:>7,} "
        f"{load.uncompressed:>8,}  {responses:<38} {verdict}"
    )


def _condensed(loads: list[PageLoad]) -> tuple[list[PageLoad], list[PageLoad]]:
    """A long walk's rows: every page but the questions, of which the first and the largest."""
    questions = [
        load for load in loads if load.name.startswith("question ") and "," not in load.name
    ]
    keep = (
        {id(questions[0]), id(max(questions, key=lambda load: load.sent))} if questions else set()
    )
    rows = [load for load in loads if load not in questions or id(load) in keep]
    return rows, questions


def report_pages(version: str, walks: list[Walk], origin: str) -> None:
    print(
        f"Bytes transferred per page: Chromium {version} (Debian's, headless), a 390x844 phone, "
        "HTTP cache on, gunicorn -w 1"
    )
    print(
        "  sent = status lines + headers + bodies as sent (compressed) of every response the "
        "navigation needed (a POST's 303 and the page it leads to, subresources not served from "
        "the cache); uncompressed = the bodies decoded (HTML + stylesheet, cached or not)"
    )
    print(
        f"  {'page':<28} {'status':>6} {'sent B':>7} {'target':>7} {'uncompr':>8}  "
        f"{'responses':<38} verdict"
    )
    for index, walk in enumerate(walks):
        print(f"  -- {walk.title}")
        rows, questions = (walk.loads, []) if index == 0 else _condensed(walk.loads)
        for load in rows:
            print(_row(load, origin))
        if questions and len(rows) < len(walk.loads):
            sizes = [load.sent for load in questions]
            print(
                f"  ({len(questions)} question pages: {min(sizes):,} to {max(sizes):,} B sent, "
                f"median {statistics.median(sizes):,.0f})"
            )
    loads = [load for walk in walks for load in walk.loads]
    first = [load for load in loads if load.first]
    later = [load for load in loads if not load.first]
    print("Targets")
    for label, group, limit, size in (
        (f"first page   <= {FIRST_PAGE_LIMIT:,} B sent", first, FIRST_PAGE_LIMIT, "sent"),
        (f"later pages  <= {LATER_PAGE_LIMIT:,} B sent", later, LATER_PAGE_LIMIT, "sent"),
        (f"every page   <= {PAGE_LIMIT:,} B uncompressed", loads, PAGE_LIMIT, "uncompressed"),
    ):
        over = [load for load in group if getattr(load, size) > limit]
        largest = max(group, key=lambda load: getattr(load, size))
        verdict = "PASS" if not over else f"FAIL: {len(over)} of {len(group)} pages over"
        print(f"  {label:<34} {verdict}  (largest: {largest.name}, {getattr(largest, size):,} B)")
    odd = [load.name for load in loads if load.stylesheets != 1 or load.third_party(origin)]
    verdict = "PASS" if not odd else "FAIL: " + ", ".join(odd)
    print(f"  {'one stylesheet, no third party':<34} {verdict}")


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
            version, walks = page_weights(proms_server.port, links)
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
    report_pages(version, walks, f"http://127.0.0.1:{proms_server.port}")
    walked = links.per_link + links.worst_questions  # the page walks answer every question
    expected = walked + args.warmup + args.posts
    report_latency(proms_times, bare_times, args.warmup, saved, expected)
    print(f"  (whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        raise SystemExit(f"survey bench failed: {exc}") from None
