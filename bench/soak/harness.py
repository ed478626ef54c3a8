"""The soak's moving parts: a database of its own, gunicorn servers, the scheduler, an SMTP sink,
Redis for shared rate-limit counters, and locust. Each starts and stops cleanly; nothing here
touches a database, Redis db or process it did not create.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "bench"))

from _pg import DEFAULT_SERVER, scratch_database  # noqa: E402 - bench/ on the path first

__all__ = ["DEFAULT_SERVER", "scratch_database"]

LINK = re.compile(r"/s/[A-Za-z0-9_-]{20,}")


class SoakError(RuntimeError):
    """The harness could not run (a server that did not start): not a gate, a broken run."""


def redact(text: str) -> str:
    return LINK.sub("/s/[token]", text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# SMTP sink ---------------------------------------------------------------------------------------


@dataclass
class Sink:
    """aiosmtpd on loopback, keeping who got what: each email's recipient and its unsubscribe
    link (one per message the outbox sent, so the same link twice is the same message twice)."""

    port: int = 0
    recipients: Counter[str] = field(default_factory=Counter)
    unsubscribe: Counter[str] = field(default_factory=Counter)
    _controller: Any = None

    def start(self) -> Sink:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content, policy=default_policy)
                for rcpt in envelope.rcpt_tos:
                    sink.recipients[rcpt.lower()] += 1
                link = str(message.get("List-Unsubscribe", ""))
                if link:
                    sink.unsubscribe[link] += 1
                return "250 OK"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            with contextlib.suppress(RuntimeError, asyncio.CancelledError):
                self._controller.stop()
            self._controller = None

    def to(self, addresses: frozenset[str]) -> int:
        return sum(n for rcpt, n in self.recipients.items() if rcpt in addresses)

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.unsubscribe.values() if n > 1)


# Redis -------------------------------------------------------------------------------------------


class RedisDb:
    """One numbered Redis database, emptied before and after (only that one)."""

    def __init__(self, number: int, host: str = "127.0.0.1", port: int = 6379) -> None:
        import redis

        self.number = number
        self.url = f"redis://{host}:{port}/{number}"
        self.client = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise SoakError(
                f"Redis at {host}:{port} does not answer ({exc}): the two-host run shares rate "
                "limits through it (apt-get install redis-server)"
            ) from None

    def flush(self) -> None:
        self.client.flushdb()

    def close(self) -> None:
        self.flush()
        self.client.close()


# Processes ---------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def tail(self, size: int = 3000) -> str:
        return redact(self.log.read_text(encoding="utf-8", errors="replace")[-size:])

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _spawn(
    name: str, command: Sequence[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def gunicorn_options() -> list[str]:
    """gunicorn 27 opens a control socket at one fixed path; two servers would share it."""
    major = int(importlib.metadata.version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


def start_gunicorn(name: str, env: dict[str, str], workers: int, workdir: Path) -> Process:
    """gunicorn as shipped (`-c python:proms.gunicorn_conf`), on a free port."""
    port = free_port()
    log = workdir / f"{name}.log"
    command = [
        str(BIN / "gunicorn"),
        "-c",
        "python:proms.gunicorn_conf",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        *gunicorn_options(),
    ]
    return Process(name, _spawn(name, command, env, log), log, port)


def start_scheduler(env: dict[str, str], workdir: Path) -> Process:
    log = workdir / "scheduler.log"
    return Process(
        "scheduler", _spawn("scheduler", [str(BIN / "proms"), "scheduler"], env, log), log
    )


def wait_healthy(server: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise SoakError(f"{server.name} exited ({server.popen.returncode}):\n{server.tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as reply:  # noqa: S310 - our own server
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SoakError(f"{server.name} did not answer /healthz in {timeout:.0f} s:\n{server.tail()}")


def server_errors(server: Process) -> list[str]:
    """Tracebacks and error lines in a server's log (redacted), for the report."""
    text = server.log.read_text(encoding="utf-8", errors="replace")
    found = [
        line
        for line in text.splitlines()
        if "Traceback" in line or " ERROR " in line or "[ERROR]" in line or "CRITICAL" in line
    ]
    return [redact(line)[:300] for line in found]


@contextlib.contextmanager
def running(processes: list[Process]) -> Iterator[list[Process]]:
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def base_env(
    *, database_url: str, secret_key: str, rate_limits: str, public_url: str = ""
) -> dict[str, str]:
    """The servers' and the scheduler's configuration (PROMS_* variables).

    Development, not production: production refuses our plain-http loopback address and the
    bundled summary wording the questionnaires carry here (no licensed wording is imported).
    One trusted proxy hop, so each simulated phone's X-Forwarded-For is its address.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PROMS_") and not key.startswith("GUNICORN")
    }
    env.update(
        {
            "PROMS_ENV": "development",
            "PROMS_SECRET_KEY": secret_key,
            "PROMS_DATABASE_URL": database_url,
            "PROMS_RATELIMIT_STORAGE_URI": rate_limits,
            "PROMS_PROXY_FIX_HOPS": "1",
            "PROMS_MESSAGE_TRANSPORT": "live",
        }
    )
    if public_url:
        env["PROMS_PUBLIC_BASE_URL"] = public_url
    return env


def scheduler_env(env: dict[str, str], sink: Sink, *, dispatch_seconds: int) -> dict[str, str]:
    """The scheduler sends email to the sink, in small batches, often: it keeps sending during
    the whole run instead of clearing the outbox in one sweep."""
    return {
        **env,
        "PROMS_SMTP_HOST": "127.0.0.1",
        "PROMS_SMTP_PORT": str(sink.port),
        "PROMS_SMTP_SECURITY": "none",
        "PROMS_MAIL_FROM": "Soak Pain Clinic <no-reply@soak.example.org>",
        "PROMS_SWEEP_DISPATCH_SECONDS": str(dispatch_seconds),
        "PROMS_SWEEP_ALERTS_SECONDS": "10",
        "PROMS_DISPATCH_BATCH_SIZE": "25",
    }


def new_secret() -> str:
    return "soak-" + secrets.token_hex(24)


# Locust ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    hosts: Sequence[str]
    patients: int
    staff: int
    seconds: int
    think: str = "4,10"
    staff_think: str = "3,8"
    drain: int = 0  # seconds people may take to finish what they are doing (a survey) at the end


def run_locust(
    load: Load, tokens: Path, staff: Path, workdir: Path, tag: str, first: int = 0
) -> dict[str, Any]:
    """locust, headless, for `load.seconds`, drawing links from number `first` on; what the
    clients saw (the locustfile's JSON)."""
    result = workdir / f"locust-{tag}.json"
    log = workdir / f"locust-{tag}.log"
    users = load.patients + load.staff
    env = {
        **os.environ,
        "SOAK_TOKENS": str(tokens),
        "SOAK_STAFF": str(staff),
        "SOAK_HOSTS": ",".join(load.hosts),
        "SOAK_PATIENTS": str(load.patients),
        "SOAK_STAFF_USERS": str(load.staff),
        "SOAK_THINK": load.think,
        "SOAK_STAFF_THINK": load.staff_think,
        "SOAK_RESULT": str(result),
        "SOAK_TOKEN_START": str(first),
    }
    command = [
        str(BIN / "locust"),
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--skip-log-setup",
        "-u",
        str(users),
        "-r",
        str(max(1, min(users, 50))),  # everyone in within a few seconds
        "-t",
        f"{load.seconds}s",
        "--stop-timeout",
        str(load.drain),
        "--host",
        load.hosts[0],
    ]
    with log.open("wb") as handle:
        done = subprocess.run(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if not result.exists():
        text = redact(log.read_text(encoding="utf-8", errors="replace")[-3000:])
        raise SoakError(f"locust wrote no result (exit {done.returncode}):\n{text}")
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return data
