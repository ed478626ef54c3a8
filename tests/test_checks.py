"""Production's needs are checked where they are used: serving pages, signing, making links.

Serving refuses without a real SECRET_KEY and an https PUBLIC_BASE_URL, saying why in one line
(create_app, and gunicorn's master before any worker starts). Commands build the app without
those checks: one that makes a link refuses then, and nothing can sign with a weak key. Links
follow the server: PUBLIC_BASE_URL when set, else (development, tests) the server's own address,
and `make run PORT=...` sets it from its port.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from proms import ConfigurationError, create_app
from proms.admin.services import enroll_patient
from proms.auth.models import Role, StaffUser
from proms.checks import DEVELOPMENT_BASE_URL
from proms.db import db
from proms.surveys import links
from tests.helpers import World, csrf_token, patient_today

CHECKOUT = Path(__file__).resolve().parents[1]
SECRET = "s" * 40


def production(tmp_path: Path, **config: Any) -> dict[str, Any]:
    return {
        "ENV": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "AUDIT_CHAIN_KEY": "a" * 40,
        **config,
    }


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "without PUBLIC_BASE_URL"),
        ("http://proms.example.org", "which is not https"),
        ("proms.example.org", "which is not a web address"),
        ("https://proms.example.org/?next=1", "which is not a web address"),
    ],
)
def test_production_refuses_to_serve_without_an_https_public_address(
    tmp_path: Path, address: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app(production(tmp_path, SECRET_KEY=SECRET, PUBLIC_BASE_URL=address))
    message = str(refused.value)
    assert message.startswith("Refusing to start ")
    assert reason in message
    assert "PROMS_PUBLIC_BASE_URL" in message  # what to set
    assert "\n" not in message


@pytest.mark.parametrize("address", ["https://proms.example.org/", "https://example.org/proms"])
def test_production_serves_with_an_https_public_address(tmp_path: Path, address: str) -> None:
    app = create_app(production(tmp_path, SECRET_KEY=SECRET, PUBLIC_BASE_URL=address))
    with app.test_request_context(base_url="http://10.0.0.7:8000"):  # behind a proxy, say
        assert links.link_url(app.config, "t") == address.rstrip("/") + "/s/t"


def test_every_reason_is_given_at_once_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app(production(tmp_path))
    message = str(refused.value)
    assert "default or short SECRET_KEY" in message
    assert "without PUBLIC_BASE_URL" in message
    assert "\n" not in message


def test_outside_production_a_public_address_may_be_http_or_unset(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/x.sqlite3"
    for address in ("", "http://192.168.1.20:5077"):
        create_app({"ENV": "development", "DATABASE_URL": database, "PUBLIC_BASE_URL": address})
    with pytest.raises(ConfigurationError, match="not a web address"):
        create_app(
            {"ENV": "development", "DATABASE_URL": database, "PUBLIC_BASE_URL": "localhost:5077"}
        )


def test_commands_get_an_app_that_cannot_sign_or_link_without_configuration(
    tmp_path: Path,
) -> None:
    app = create_app(production(tmp_path), serving=False)
    # The default key is public: gone, so nothing in a command process signs with it.
    assert app.config["SECRET_KEY"] is None
    with pytest.raises(ConfigurationError) as refused:
        links.link_url(app.config, "t")
    assert str(refused.value).startswith(
        "Refusing to make a patient link in production without PUBLIC_BASE_URL: set "
        "PROMS_PUBLIC_BASE_URL"
    )
    configured = create_app(
        production(tmp_path, SECRET_KEY=SECRET, PUBLIC_BASE_URL="https://proms.example.org"),
        serving=False,
    )
    assert configured.config["SECRET_KEY"] == SECRET
    assert links.link_url(configured.config, "t") == "https://proms.example.org/s/t"


def test_without_a_public_address_links_follow_the_server(tmp_path: Path) -> None:
    app = create_app({"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})
    with app.test_request_context(base_url="http://127.0.0.1:5077"):
        assert links.link_url(app.config, "t") == "http://127.0.0.1:5077/s/t"
    with app.app_context():  # a command in development: flask run's default address
        assert links.link_url(app.config, "t") == f"{DEVELOPMENT_BASE_URL}/s/t"
    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:5077/"
    assert links.link_url(app.config, "t") == "http://127.0.0.1:5077/s/t"


def test_the_create_a_link_button_links_to_the_port_the_page_came_from(
    staff_client: Callable[[StaffUser], FlaskClient], world: World
) -> None:
    patient = world.patients_a[0]
    enroll_patient(
        db.session, patient, world.protocol_a, patient_today(patient) + dt.timedelta(days=3)
    )
    db.session.commit()
    client = staff_client(world.user("a", Role.COORDINATOR))
    page = f"/patients/{patient.id}"
    response = client.post(
        f"{page}/link",
        data={"csrf_token": csrf_token(client, page)},
        base_url="http://localhost:5077",
    )
    assert response.status_code == 200
    assert re.search(
        r"<code[^>]*>http://localhost:5077/s/[\w-]{43}</code>", response.get_data(as_text=True)
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "reason"),
    [(None, "without PUBLIC_BASE_URL"), ("http://proms.example.org", "which is not https")],
)
def test_gunicorn_refuses_to_start_in_one_line(
    tmp_path: Path, address: str | None, reason: str
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PROMS_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "PROMS_SECRET_KEY": secrets.token_hex(32),
        "PROMS_AUDIT_CHAIN_KEY": secrets.token_hex(32),
    }
    if address is not None:
        env["PROMS_PUBLIC_BASE_URL"] = address
    # gunicorn 27 opens a control socket at one fixed path, shared with other tests' servers.
    major = int(importlib.metadata.version("gunicorn").split(".")[0])
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            *("-c", "python:proms.gunicorn_conf"),
            *(["--no-control-socket"] if major >= 27 else []),
            *("-b", f"127.0.0.1:{free_port()}", "proms:create_app()"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    (refusal,) = [line for line in output.splitlines() if "proms: " in line]
    assert "proms: Refusing to start in production" in refusal
    assert reason in refusal
    assert "Booting worker" not in output  # refused by the master, before any worker


def test_make_run_makes_links_to_its_own_port(tmp_path: Path) -> None:
    """`make run PORT=5077`: every command it runs, the scheduler beside the web app included,
    gets the base URL of that port."""
    calls = tmp_path / "calls.log"
    # The web app's stand-in waits (up to 10 s) for the scheduler's to have started: when the
    # web app stops, `make run` stops the scheduler too, perhaps before it wrote its line.
    waits = {
        "proms": "",
        "flask": f'for i in $(seq 100); do grep -q "^proms scheduler" "{calls}" && break; '
        "sleep 0.1; done\n",
    }
    for name, wait in waits.items():  # stand-ins that note their arguments and environment
        script = tmp_path / name
        note = f'echo "{name} $* | $PROMS_ENV | $PROMS_PUBLIC_BASE_URL" >> "{calls}"'
        script.write_text(f"#!/bin/sh\n{wait}{note}\n", encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMS_", "MAKE"))}
    make = shutil.which("make")
    assert make, "make is missing (the Makefile is the task runner)"
    result = subprocess.run(
        # -o install: the stand-ins need no virtual environment.
        [make, "-s", "-C", str(CHECKOUT), "-o", "install", "run", f"BIN={tmp_path}", "PORT=5077"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "proms is on http://127.0.0.1:5077/" in result.stdout
    lines = calls.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == [
        "proms db upgrade | development | http://127.0.0.1:5077",
        "proms demo | development | http://127.0.0.1:5077",
    ]
    assert lines[2:] == [  # the scheduler, then the web app beside it
        "proms scheduler | development | http://127.0.0.1:5077",
        "flask --app proms run --host 127.0.0.1 --port 5077 | development | http://127.0.0.1:5077",
    ]


@pytest.mark.parametrize("key", [None, "dev-only", "k" * 31])
def test_production_refuses_a_default_or_short_audit_chain_key(
    tmp_path: Path, key: str | None
) -> None:
    config = production(tmp_path, SECRET_KEY=SECRET, PUBLIC_BASE_URL="https://proms.example.org")
    if key is None:
        del config["AUDIT_CHAIN_KEY"]  # the shipped default
    else:
        config["AUDIT_CHAIN_KEY"] = key
    with pytest.raises(ConfigurationError, match="default or short AUDIT_CHAIN_KEY"):
        create_app(config)
