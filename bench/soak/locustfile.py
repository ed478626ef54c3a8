"""The soak's simulated people, for `locust --headless` (bench/soak/run.py starts it).

Patients answer whole questionnaires from their links as a phone does: the link (welcome page),
Start, every question (the page, a pause to read and tap, the POST and its 303), the review, Send
and the thank-you page, with the CSRF token read from each page. Staff sign in and browse the
patient list (plain and filtered), patients' pages, the alerts inbox and the cohort report.

Everything comes from the environment (run.py sets it):
  SOAK_TOKENS        file of patient links' raw tokens, one JSON object a line ({"n", "token"})
  SOAK_STAFF         file of staff accounts ({"email", "password", "role"})
  SOAK_HOSTS         base URLs, comma-separated; with two, each user alternates request by request
  SOAK_PATIENTS      patient users;  SOAK_STAFF_USERS  staff users
  SOAK_THINK         a patient's pause per page, "min,max" seconds; SOAK_STAFF_THINK likewise
  SOAK_TOKEN_START   the first link to draw (a later run on the same database goes on from
                     where the one before stopped)
  SOAK_RESULT        where to write what happened (JSON), when locust quits

URLs are grouped by route ("GET /s/[token]", "POST /s/q/[n]"): no token ever reaches a name,
and so none reaches locust's output. Each simulated person comes from an address of its own
(X-Forwarded-For; the servers trust one proxy hop), as 200 phones would: the link rate limit is
per address, and is checked on its own by run.py.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import HttpUser, events, task
from locust.env import Environment

TOKENS = [
    json.loads(line)
    for line in Path(os.environ["SOAK_TOKENS"]).read_text(encoding="utf-8").splitlines()
    if line.strip()
]
STAFF = [
    json.loads(line)
    for line in Path(os.environ["SOAK_STAFF"]).read_text(encoding="utf-8").splitlines()
    if line.strip()
]
HOSTS = [h.rstrip("/") for h in os.environ["SOAK_HOSTS"].split(",") if h.strip()]


def _span(name: str, default: str) -> tuple[float, float]:
    low, high = (float(x) for x in os.environ.get(name, default).split(","))
    return low, high


THINK = _span("SOAK_THINK", "4,10")
STAFF_THINK = _span("SOAK_STAFF_THINK", "3,8")
FILTERS = ("alert", "worsened", "improved", "overdue", "open", "active")

CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE = re.compile(r'value="([^"]*)"')
RADIO = re.compile(r'<input[^>]*name="answer"[^>]*>')
LINK = re.compile(r"/s/[A-Za-z0-9_-]{20,}")
PATIENT_LINK = re.compile(r'href="/patients/(\d+)"')

_next_token = itertools.count(int(os.environ.get("SOAK_TOKEN_START", "0")))
_next_address = itertools.count(1)
_next_account = itertools.count()
_lock = threading.Lock()


class Record:
    """What the clients saw, written to SOAK_RESULT when locust quits."""

    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    unexpected: Counter[str] = Counter()  # "POST /s/q/[n] 500" -> times
    finished: list[int] = []  # token numbers whose answers were sent
    sending: set[int] = set()  # token numbers whose Send was in flight when locust stopped
    taken = 0  # links drawn from the file
    started = 0
    crossed = 0  # surveys started on one host and sent from another
    ran_out = 0  # patients who found no link left
    logins = 0
    first_at: float | None = None


def _address() -> str:
    n = next(_next_address)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _csrf(html: str) -> str:
    tag = CSRF.search(html)
    found = VALUE.search(tag.group(0)) if tag else None
    if found is None:
        raise ValueError("no csrf_token on the page")
    return found.group(1)


def _answers(html: str) -> list[str]:
    return [m.group(1) for tag in RADIO.finditer(html) if (m := VALUE.search(tag.group(0)))]


def _redact(text: str) -> str:
    """No token in anything written out (an exception's text may quote a URL)."""
    return LINK.sub("/s/[token]", text)


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Person(HttpUser):
    """A browser: its own address, cookies, and (with two hosts) the next host each request."""

    abstract = True
    host = HOSTS[0]

    def on_start(self) -> None:
        self.address = _address()
        self.turn = random.randrange(len(HOSTS))

    def _base(self) -> str:
        base = HOSTS[self.turn % len(HOSTS)]
        self.turn += 1
        return base

    def call(
        self, method: str, path: str, name: str, expect: tuple[int, ...], form: Any = None
    ) -> tuple[Any, str]:
        """One request, no redirects followed; a status outside `expect` is a failure."""
        base = self._base()
        headers = {"X-Forwarded-For": self.address, "Accept-Encoding": "gzip, br"}
        if method == "POST":
            headers["Origin"] = base
        with self.client.request(
            method,
            base + path,
            name=name,
            data=form,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            status = response.status_code
            Record.statuses[name][status] += 1
            if status not in expect:
                Record.unexpected[f"{name} {status}"] += 1
                response.failure(f"{status}, expected {'/'.join(map(str, expect))}")
            else:
                response.success()
        return response, base

    def think(self, span: tuple[float, float]) -> None:
        gevent.sleep(random.uniform(*span))


class Patient(Person):
    """Answers questionnaires from links, one after another, until the links run out."""

    fixed_count = int(os.environ.get("SOAK_PATIENTS", "200"))

    def wait_time(self) -> float:
        return random.uniform(*THINK)

    @task
    def questionnaire(self) -> None:
        with _lock:
            n = next(_next_token)
        if n >= len(TOKENS):
            Record.ran_out += 1
            self.stop()
            return
        Record.taken += 1
        self.client.cookies.clear()  # a new patient on a new phone
        token = TOKENS[n]["token"]
        welcome, _ = self.call("GET", f"/s/{token}", "GET /s/[token]", (200,))
        if welcome.status_code != 200:
            return
        self.think(THINK)
        started, start_host = self.call(
            "POST",
            f"/s/{token}",
            "POST /s/[token] (start)",
            (303,),
            {"csrf_token": _csrf(welcome.text)},
        )
        if started.status_code != 303:
            return
        Record.started += 1
        location = _path(started.headers["Location"])
        while location.startswith("/s/q/"):
            page, _ = self.call("GET", location, "GET /s/q/[n]", (200,))
            if page.status_code != 200:
                return
            self.think(THINK)
            form = {
                "csrf_token": _csrf(page.text),
                "answer": random.choice(_answers(page.text)),
                "next": "Next",
            }
            saved, _ = self.call("POST", location.split("?")[0], "POST /s/q/[n]", (303,), form)
            if saved.status_code != 303:
                return
            location = _path(saved.headers["Location"])
        if location != "/s/review":
            Record.unexpected[f"questions ended at {location.split('/')[2]}"] += 1
            return
        review, _ = self.call("GET", "/s/review", "GET /s/review", (200,))
        if review.status_code != 200:
            return
        if random.random() < 0.5:
            # Half look over their first questionnaire's answers before sending. With two hosts
            # this one request more sends Send to the other host than Start went to.
            self.think(THINK)
            self.call("GET", "/s/review/1", "GET /s/review/[part]", (200,))
        self.think(THINK)
        Record.sending.add(TOKENS[n]["n"])
        sent, send_host = self.call(
            "POST", "/s/submit", "POST /s/submit", (303,), {"csrf_token": _csrf(review.text)}
        )
        Record.sending.discard(TOKENS[n]["n"])
        if sent.status_code != 303 or _path(sent.headers["Location"]) != "/s/done":
            return
        Record.finished.append(TOKENS[n]["n"])
        Record.crossed += send_host != start_host
        self.call("GET", "/s/done", "GET /s/done", (200,))


class Staff(Person):
    """A clinician or coordinator: signs in once, then browses the care pages."""

    fixed_count = int(os.environ.get("SOAK_STAFF_USERS", "20"))

    def wait_time(self) -> float:
        return random.uniform(*STAFF_THINK)

    def on_start(self) -> None:
        super().on_start()
        with _lock:
            self.account = STAFF[next(_next_account) % len(STAFF)]
        self.patient_ids: list[str] = []
        page, _ = self.call("GET", "/login", "GET /login", (200,))
        form = {
            "email": self.account["email"],
            "password": self.account["password"],
            "csrf_token": _csrf(page.text),
        }
        signed, _ = self.call("POST", "/login", "POST /login", (302, 303), form)
        if signed.status_code in (302, 303):
            Record.logins += 1

    def _list(self, query: str, name: str) -> None:
        page, _ = self.call("GET", "/patients" + query, name, (200,))
        if page.status_code == 200:
            found = PATIENT_LINK.findall(page.text)
            if found:
                self.patient_ids = found

    @task(3)
    def patient_list(self) -> None:
        self._list("", "GET /patients")

    @task(3)
    def filtered_list(self) -> None:
        self._list(f"?filter={random.choice(FILTERS)}", "GET /patients?filter=[f]")

    @task(4)
    def patient_page(self) -> None:
        if not self.patient_ids:
            self.patient_list()
            return
        chosen = random.choice(self.patient_ids)
        self.call("GET", f"/patients/{chosen}", "GET /patients/[id]", (200,))

    @task(2)
    def alerts(self) -> None:
        self.call("GET", "/alerts", "GET /alerts", (200,))

    @task(1)
    def cohort_report(self) -> None:
        self.call("GET", "/reports/cohort", "GET /reports/cohort", (200,))


@events.test_start.add_listener
def _started(environment: Environment, **_: Any) -> None:
    Record.first_at = time.time()


@events.quitting.add_listener
def _write(environment: Environment, **_: Any) -> None:
    stats = environment.stats
    rows = []
    for entry in sorted(stats.entries.values(), key=lambda e: e.name):
        rows.append(
            {
                "name": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "p50": entry.get_response_time_percentile(0.50),
                "p95": entry.get_response_time_percentile(0.95),
                "p99": entry.get_response_time_percentile(0.99),
                "mean": entry.avg_response_time,
                "max": entry.max_response_time,
            }
        )
    total = stats.total
    result = {
        "seconds": (total.last_request_timestamp or time.time()) - total.start_time,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "p50": total.get_response_time_percentile(0.50),
        "p95": total.get_response_time_percentile(0.95),
        "p99": total.get_response_time_percentile(0.99),
        "endpoints": rows,
        "statuses": {name: dict(counts) for name, counts in Record.statuses.items()},
        "unexpected": dict(Record.unexpected),
        "errors": {_redact(f"{e.name}: {e.error}"): e.occurrences for e in stats.errors.values()},
        "finished": Record.finished,
        "sending": sorted(Record.sending),
        "taken": Record.taken,
        "started": Record.started,
        "crossed": Record.crossed,
        "ran_out": Record.ran_out,
        "logins": Record.logins,
    }
    Path(os.environ["SOAK_RESULT"]).write_text(json.dumps(result), encoding="utf-8")
