"""The real processes the faults break: a PostgreSQL cluster of our own, gunicorn, `proms
scheduler`, an SMTP server on loopback (aiosmtpd), a small tmpfs; and a patient client.

Nothing here knows about a particular fault (bench/soak/faults.py does); nothing here is shared
with the load harness, so the faults run on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class FaultError(RuntimeError):
    """The set-up itself failed (not a gate): the run stops and says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its error output in the exception if it does not."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise FaultError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise FaultError(f"{what} needs root (pg_createcluster, mount); run the faults as root")


# PostgreSQL: a cluster of our own, so that restarting it breaks nobody else ----------------------


class Cluster:
    """`pg_createcluster VERSION NAME --port PORT`: trust on 127.0.0.1, dropped by `drop()`."""

    def __init__(self, name: str = "soakfaults", port: int = 5499) -> None:
        require_root("a PostgreSQL cluster of its own")
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        if not versions or shutil.which("pg_createcluster") is None:
            raise FaultError("PostgreSQL server packages (postgresql-common) are not installed")
        self.version = versions[-1].parts[-3]
        self.name = name
        self.port = port

    def create(self) -> None:
        self.drop()  # a cluster left by an interrupted run
        run(["pg_createcluster", self.version, self.name, "--port", str(self.port)])
        hba = Path(f"/etc/postgresql/{self.version}/{self.name}/pg_hba.conf")
        lines = [
            "host all all 127.0.0.1/32 trust"
            if re.match(r"^host\s+all\s+all\s+127\.0\.0\.1/32\s", line)
            else line
            for line in hba.read_text().splitlines()
        ]
        hba.write_text("\n".join(lines) + "\n")
        self.start()

    def ctl(self, action: str, *extra: str) -> None:
        run(["pg_ctlcluster", *extra, self.version, self.name, action])

    def start(self) -> None:
        self.ctl("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.1)
        raise FaultError("the soak cluster did not accept connections in 30 s")

    def stop(self) -> None:
        # Fast: open transactions are rolled back and their sessions cut, as a restart does.
        self.ctl("stop", "--mode", "fast")

    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url("postgres", driver=False), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def url(self, database: str, *, driver: bool = True) -> str:
        scheme = "postgresql+psycopg" if driver else "postgresql"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template`, which is quicker than migrating again)."""
        import psycopg

        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url("postgres", driver=False), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop(self) -> None:
        if Path(f"/etc/postgresql/{self.version}/{self.name}").exists():
            run(["pg_dropcluster", "--stop", self.version, self.name])


# A small filesystem ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` at `path` (root only): fills up like a real disk."""
    require_root("a small filesystem (mount -t tmpfs)")
    path.mkdir(parents=True, exist_ok=True)
    kib = max(64, size_bytes // 1024)
    run(["/usr/bin/mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(path)])
    try:
        yield path
    finally:
        subprocess.run(["/usr/bin/umount", "-l", str(path)], check=False)


def fill(directory: Path, leave_bytes: int) -> Path:
    """A filler file taking all the space but `leave_bytes`; delete it to free the space."""
    filler = directory / "filler.bin"
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


# gunicorn and the scheduler -------------------------------------------------------------------


def base_environment(database_url: str, **extra: str) -> dict[str, str]:
    """What every proms process of a fault gets: development settings, no rate limits in the way
    (every simulated patient comes from 127.0.0.1)."""
    env = {
        **os.environ,
        "PROMS_ENV": "development",
        "PROMS_SECRET_KEY": "soak-faults-" + "k" * 40,
        "PROMS_DATABASE_URL": database_url,
        "PROMS_PUBLIC_BASE_URL": "https://proms.example.org",
        "PROMS_MESSAGE_TRANSPORT": "null",
        "PROMS_LINK_RATE_LIMIT": "100000 per minute",
        "PROMS_IDENTITY_RATE_LIMIT": "100000 per minute",
    }
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def terminate(self, timeout: float = 15) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def children(self) -> set[int]:
        """The process's children (gunicorn's workers)."""
        found = set()
        for status in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = status.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.popen.pid:
                    found.add(int(status.parent.name))
        return found


def start(name: str, command: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("ab") as handle:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log)


def gunicorn(env: dict[str, str], port: int, workers: int, log: Path) -> Process:
    server = start(
        "gunicorn",
        [
            str(BIN / "gunicorn"),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--timeout",
            "60",
            "proms:create_app()",
        ],
        env,
        log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not server.alive():
            raise FaultError(f"gunicorn exited:\n{server.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        time.sleep(0.2)
    server.terminate()
    raise FaultError(f"gunicorn did not answer /healthz in 60 s:\n{server.tail()}")


def scheduler(env: dict[str, str], log: Path) -> Process:
    return start("scheduler", [str(BIN / "proms"), "scheduler"], env, log)


# The SMTP server: counts every message it accepted, by recipient and Message-ID ---------------


@dataclass(frozen=True, slots=True)
class Received:
    recipient: str
    message_id: str
    at: float  # time.monotonic()


@dataclass
class _Handler:
    delay: float = 0.0  # seconds before answering the final dot: a slower provider
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        parsed = message_from_bytes(envelope.original_content or envelope.content)
        message_id = str(parsed.get("Message-ID", ""))
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received.append(Received(recipient, message_id, time.monotonic()))
        return "250 Message accepted for delivery"


class Sink:
    """aiosmtpd on 127.0.0.1:`port`; `stop()` takes it down (connections refused), `start()`
    brings it back on the same port. What it accepted survives both."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.handler = _Handler(delay=delay)
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def count(self) -> int:
        with self.handler.lock:
            return len(self.handler.received)


# A patient: a plain HTTP client that answers a questionnaire as a browser would -------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.csrf: str | None = None
        self.answers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "input" and a.get("name") == "csrf_token":
            self.csrf = a.get("value")
        if tag == "input" and a.get("name") == "answer" and a.get("type") == "radio":
            self.answers.append(a.get("value", ""))


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


@dataclass
class Reply:
    """One response as the patient saw it."""

    method: str
    path: str
    status: int
    at: float  # time.monotonic() when it arrived
    retry_after: str | None
    text: str
    location: str = ""


class GaveUp(Exception):
    """The server kept failing past the client's patience."""


@dataclass
class PatientWalk:
    """What one patient did: every reply, and each answer the server confirmed (303)."""

    token: str
    replies: list[Reply] = field(default_factory=list)
    confirmed: dict[int, int] = field(default_factory=dict)  # question number -> value
    finished: bool = False  # the thank-you page came
    stopped_at: Reply | None = None  # the error that made it stop (stop_on)
    error: str = ""


class Patient:
    """A patient's phone: cookies kept, redirects read, a failed step tried again.

    On a 503 (or a status in `retry`) it waits as the page asks (at most a second) and sends the
    same request again, as a patient pressing the button again would; `patience` bounds that.
    On a status in `stop_on` it stops where it is (`walk.stopped_at`), to carry on with `resume`.
    """

    def __init__(
        self,
        port: int,
        token: str,
        *,
        patience: float = 60.0,
        retry: frozenset[int] = frozenset({503}),
        stop_on: frozenset[int] = frozenset(),
        answer_pick: int = 0,
    ) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=30
        )
        self.walk = PatientWalk(token)
        self.patience = patience
        self.retry = retry
        self.stop_on = stop_on
        self.answer_pick = answer_pick
        self._next: tuple[str, str] | None = None  # where to carry on after a stop
        self._csrf = ""

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, data: dict[str, str] | None = None) -> Reply:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = self.http.request(method, path, data=data)
                reply = Reply(
                    method,
                    path,
                    response.status_code,
                    time.monotonic(),
                    response.headers.get("Retry-After"),
                    response.text,
                    response.headers.get("Location", ""),
                )
            except httpx.TransportError as error:  # the server itself is down: also counted
                reply = Reply(method, path, 0, time.monotonic(), None, repr(error))
            self.walk.replies.append(reply)
            if reply.status in self.stop_on:
                self.walk.stopped_at = reply
                raise GaveUp(f"stopped on {reply.status} at {method} {path}")
            if reply.status not in self.retry and reply.status != 0 and reply.status < 500:
                return reply
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {path}: still {reply.status} after {self.patience:.0f} s")
            wait = float(reply.retry_after) if (reply.retry_after or "").isdigit() else 0.5
            time.sleep(min(wait, 1.0))

    def _expect(self, reply: Reply, status: int) -> Reply:
        if reply.status != status:
            raise GaveUp(f"{reply.method} {reply.path} gave {reply.status}, expected {status}")
        return reply

    def answer_all(self) -> PatientWalk:
        """Open the link, start, answer every question, send; the thank-you page."""
        self._next = ("open", "")
        return self.resume()

    def resume(self) -> PatientWalk:
        """Carry on from the step that failed: the same patient, the same cookies."""
        self.walk.error = ""
        self.walk.stopped_at = None
        try:
            self._carry_on()
        except GaveUp as stop:
            self.walk.error = str(stop)
        return self.walk

    def _carry_on(self) -> None:
        assert self._next is not None
        step, where = self._next
        if step == "open":
            welcome = self._expect(self._request("GET", f"/s/{self.walk.token}"), 200)
            self._csrf = parse(welcome.text).csrf or ""
            step = "start"
            self._next = (step, "")
        if step == "start":
            form = {"csrf_token": self._csrf}
            started = self._expect(self._request("POST", f"/s/{self.walk.token}", form), 303)
            where = started.location
        while where.startswith("/s/q/"):
            self._next = ("question", where)
            page = parse(self._expect(self._request("GET", where), 200).text)
            number = int(where.rsplit("/", 1)[1].split("?")[0])
            value = page.answers[self.answer_pick % len(page.answers)]
            form = {"csrf_token": page.csrf or "", "answer": value, "next": "Next"}
            reply = self._expect(self._request("POST", where, form), 303)
            self.walk.confirmed[number] = int(value)
            where = reply.location
        self._next = ("review", where)
        page = parse(self._expect(self._request("GET", "/s/review"), 200).text)
        sent = self._expect(
            self._request("POST", "/s/submit", {"csrf_token": page.csrf or ""}), 303
        )
        if not sent.location.startswith("/s/done"):
            raise GaveUp(f"sending led to {sent.location}")
        self._expect(self._request("GET", sent.location), 200)
        self._next = ("done", "")
        self.walk.finished = True
