"""Production refuses to serve what would be unsafe, in one line, before serving anything.

`create_app()` (and gunicorn's master, through `check_serving_config`) refuses a default or
short SECRET_KEY, debug mode and an http PUBLIC_BASE_URL; gunicorn's master alone knows how many
workers it starts, so it also refuses in-memory rate limits for more than one
(proms.gunicorn_conf). The gunicorn refusals are checked by starting the real server.
tests/test_checks.py covers the public address and tests/test_app.py the key in more detail.
"""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from proms import ConfigurationError, create_app
from proms.checks import DEFAULT_SECRET_KEY, rate_limit_storage_problem
from tests.helpers import stop

SECRET = secrets.token_hex(32)
ADDRESS = "https://proms.example.org"
GUNICORN = Path(sys.executable).parent / "gunicorn"


def production(tmp_path: Path, **config: Any) -> dict[str, Any]:
    return {
        "ENV": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "SECRET_KEY": SECRET,
        "AUDIT_CHAIN_KEY": SECRET,
        "PUBLIC_BASE_URL": ADDRESS,
        **config,
    }


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"SECRET_KEY": DEFAULT_SECRET_KEY}, "default or short SECRET_KEY"),
        ({"SECRET_KEY": "s" * 31}, "default or short SECRET_KEY"),
        ({"DEBUG": True}, "in debug mode"),
        ({"PUBLIC_BASE_URL": "http://proms.example.org"}, "which is not https"),
    ],
)
def test_create_app_refuses_in_one_line(
    tmp_path: Path, config: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app(production(tmp_path, **config))
    message = str(refused.value)
    assert message.startswith("Refusing to start in production")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("variable", ["FLASK_DEBUG", "PROMS_DEBUG"])
def test_debug_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """`flask run --debug` sets FLASK_DEBUG; PROMS_DEBUG reaches DEBUG like any PROMS_ setting."""
    monkeypatch.setenv("PROMS_ENV", "production")
    monkeypatch.setenv("PROMS_DATABASE_URL", f"sqlite:///{tmp_path}/x.sqlite3")
    monkeypatch.setenv("PROMS_SECRET_KEY", SECRET)
    monkeypatch.setenv("PROMS_AUDIT_CHAIN_KEY", SECRET)
    monkeypatch.setenv("PROMS_PUBLIC_BASE_URL", ADDRESS)
    monkeypatch.setenv(variable, "true")
    with pytest.raises(ConfigurationError, match="in debug mode"):
        create_app()
    monkeypatch.setenv(variable, "false")
    assert create_app().config["DEBUG"] is False


def test_development_may_debug_and_production_serves_when_all_is_set(tmp_path: Path) -> None:
    development = {"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path}/d.sqlite3"}
    assert create_app({**development, "DEBUG": True}).debug
    assert not create_app(production(tmp_path)).debug


@pytest.mark.parametrize(
    ("env", "workers", "storage", "refused"),
    [
        ("production", 2, "memory://", True),
        ("production", 4, "", True),  # empty: Flask-Limiter's default, memory
        ("production", 1, "memory://", False),  # one process counts everything
        ("production", 4, "redis://127.0.0.1:6379", False),
        ("development", 4, "memory://", False),
    ],
)
def test_in_memory_rate_limits_are_refused_for_several_workers(
    env: str, workers: int, storage: str, refused: bool
) -> None:
    problem = rate_limit_storage_problem({"ENV": env, "RATELIMIT_STORAGE_URI": storage}, workers)
    assert (problem is not None) is refused
    if problem:
        assert f"{workers} workers and in-memory rate limits" in problem
        assert "PROMS_RATELIMIT_STORAGE_URI" in problem  # what to set


# The real server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gunicorn_command(port: int, *options: str) -> list[str]:
    # gunicorn 27 opens a control socket at one fixed path, shared with other tests' servers.
    major = int(importlib.metadata.version("gunicorn").split(".")[0])
    return [
        str(GUNICORN),
        *("-c", "python:proms.gunicorn_conf"),
        *(["--no-control-socket"] if major >= 27 else []),
        *("-b", f"127.0.0.1:{port}"),
        *options,
        "proms:create_app()",
    ]


def production_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PROMS_ENV": "production",
        "PROMS_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "PROMS_SECRET_KEY": SECRET,
        "PROMS_AUDIT_CHAIN_KEY": SECRET,
        "PROMS_PUBLIC_BASE_URL": ADDRESS,
        **variables,
    }


@pytest.mark.parametrize(
    ("options", "variables", "reason"),
    [
        (["-w", "2"], {}, "with 2 workers and in-memory rate limits"),
        # The count given another way, and the store named explicitly.
        ([], {"WEB_CONCURRENCY": "3", "PROMS_RATELIMIT_STORAGE_URI": "memory://"}, "3 workers"),
        (["-w", "1"], {"FLASK_DEBUG": "1"}, "in debug mode"),
    ],
)
def test_gunicorn_refuses_to_start_in_one_line(
    tmp_path: Path, options: list[str], variables: dict[str, str], reason: str
) -> None:
    result = subprocess.run(
        gunicorn_command(free_port(), *options),
        cwd=tmp_path,
        env=production_env(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    (refusal,) = [line for line in output.splitlines() if "proms: " in line]
    assert "proms: Refusing to start in production" in refusal
    assert reason in refusal
    assert "Booting worker" not in output  # refused by the master, before any worker


def test_gunicorn_serves_with_several_workers_and_a_shared_store(tmp_path: Path) -> None:
    """The refusal is about the store: the same two workers start with Redis's (not contacted
    until a limited page is asked for, so no Redis server is needed here)."""
    log = tmp_path / "gunicorn.log"
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            gunicorn_command(port, "-w", "2"),
            cwd=tmp_path,
            env=production_env(tmp_path, PROMS_RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Booting worker") < 2:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        # Quick shutdown (SIGINT): a graceful one would wait for the workers to finish loading
        # the app, which is not what is being checked.
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stop([server])
    assert "Refusing" not in log.read_text()
