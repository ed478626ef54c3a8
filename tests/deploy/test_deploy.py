"""The deployment of docs/deployment.md, as far as one machine allows, with the files of deploy/.

proms is installed from its wheel into a fresh virtual environment (tests/wheel.py, once per run),
configured from deploy/proms.env, migrated with `proms db upgrade` on PostgreSQL, and
served by gunicorn started with the ExecStart line of deploy/systemd/proms-web.service, behind
nginx running deploy/nginx/proms.conf with a self-signed certificate. Only what cannot be the
same here is changed: paths (/opt/proms is the test's venv), ports, the certificate, secrets,
one worker with in-memory rate limits instead of four sharing Redis. Then, over https: ready,
a Secure __Host- cookie, HSTS, the request id from nginx to proms' JSON logs and back; the
scheduler unit's command logs JSON too; `systemd-analyze verify` accepts both units.

Marked `wheel` (it builds the wheel): it runs once, in the SQLite pass, and uses PostgreSQL
through PROMS_TEST_POSTGRES_URL (a schema of its own). A missing tool fails it under CI.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ScratchDatabases, stop
from tests.wheel import Installed, checked

pytestmark = pytest.mark.wheel

CHECKOUT = Path(__file__).resolve().parents[2]
DEPLOY = CHECKOUT / "deploy"
WEB_UNIT = DEPLOY / "systemd" / "proms-web.service"
SCHEDULER_UNIT = DEPLOY / "systemd" / "proms-scheduler.service"
CLIENT_ADDRESS = "127.0.0.3"  # the browser's address: not the proxy's (127.0.0.1)
NGINX_ID = re.compile(r"[0-9a-f]{32}")


def need(tool: str) -> str:
    """A tool's path; under CI a missing one fails the test (.ci/run installs it)."""
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if found is None:
        message = f"{tool} is not installed (Debian: see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unit_command(unit: Path, venv: Path) -> list[str]:
    """A unit's ExecStart, with /opt/proms (the documented venv) replaced by the test's."""
    (line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    words = shlex.split(line.removeprefix("ExecStart="))
    return [word.replace("/opt/proms", str(venv)) for word in words]


def replaced(words: list[str], option: str, value: str) -> list[str]:
    """The command with an option's value changed (it must be there)."""
    at = words.index(option)
    return [*words[: at + 1], value, *words[at + 2 :]]


def environment_file(path: Path) -> dict[str, str]:
    """NAME=value lines as systemd reads them (comments, blank lines, double quotes)."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[name.strip()] = value
    return values


def substitute(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text, f"deploy/nginx/proms.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Site:
    installed: Installed
    env: dict[str, str]  # the service's environment: the env file's, with the test's values
    https_port: int
    http_port: int
    cafile: Path
    gunicorn_log: Path  # gunicorn's standard output and error: what the journal gets
    nginx_log: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        context = ssl.create_default_context(cafile=str(self.cafile))
        connection = http.client.HTTPSConnection(
            "127.0.0.1",
            self.https_port,
            timeout=30,
            context=context,
            source_address=(CLIENT_ADDRESS, 0),
        )
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response


def wait_for(what: str, ready: Any, processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        for process in processes:
            assert process.poll() is None, f"{what} exited:\n{log.read_text()}"
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"{what} did not start:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database of the deployment's own (a schema in the test database)."""
    if not os.environ.get("PROMS_TEST_POSTGRES_URL"):
        message = "the deployment test needs PostgreSQL: PROMS_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    scratch = ScratchDatabases("postgresql", tmp_path_factory.mktemp("deploy-db"), [])
    yield scratch.new_url()
    scratch.drop_all()


@pytest.fixture(scope="module")
def site(
    postgres_url: str,
    installed: Installed,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    nginx = need("nginx")
    openssl = need("openssl")
    root = tmp_path_factory.mktemp("deploy")
    https_port, http_port, app_port = free_port(), free_port(), free_port()

    # The environment file, as shipped, with this machine's values.
    env = environment_file(DEPLOY / "proms.env")
    assert env["PROMS_ENV"] == "production"
    assert env["PROMS_PROXY_FIX_HOPS"] == "1"
    env.update(
        PROMS_SECRET_KEY=secrets.token_hex(32),
        PROMS_EXPORT_PSEUDONYM_KEY=secrets.token_hex(32),
        PROMS_AUDIT_CHAIN_KEY=secrets.token_hex(32),
        PROMS_DATABASE_URL=postgres_url,
        PROMS_PUBLIC_BASE_URL=f"https://127.0.0.1:{https_port}",
        PROMS_RATELIMIT_STORAGE_URI="memory://",  # one worker here
        XDG_RUNTIME_DIR=str(root),  # the unit's RuntimeDirectory
    )
    applied = checked(installed.run("proms", "db", "upgrade", **env))
    assert "Upgraded: " in applied, applied

    # A self-signed certificate for the address the test connects to.
    cert, key = root / "fullchain.pem", root / "privkey.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    processes: list[subprocess.Popen[bytes]] = []
    gunicorn_log = root / "gunicorn.output"
    command = unit_command(WEB_UNIT, installed.venv)
    command = replaced(command, "--bind", f"127.0.0.1:{app_port}")
    command = replaced(command, "--workers", "1")
    with gunicorn_log.open("wb") as output:
        processes.append(
            subprocess.Popen(
                command,
                cwd=installed.workdir,
                env=installed.env(**env),
                # The access log goes to standard output, the rest to standard error: systemd
                # sends both to the journal.
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        )

    nginx_log = root / "proms.access.log"
    site_conf = substitute(
        (DEPLOY / "nginx" / "proms.conf").read_text(),
        {
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{app_port};",
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;\n": "",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
            "listen [::]:443 ssl http2;\n": "",
            "/etc/ssl/proms/fullchain.pem": str(cert),
            "/etc/ssl/proms/privkey.pem": str(key),
            "/var/log/nginx/proms.access.log": str(nginx_log),
            "server_name proms.example.org;": "server_name 127.0.0.1;",
        },
    )
    (root / "proms.conf").write_text(site_conf)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / name).mkdir()
    user = "user root;" if os.geteuid() == 0 else ""  # workers read nothing outside this folder
    (root / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx.error.log;
events {{ worker_connections 64; }}
http {{
    access_log {root}/nginx.other.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/proms.conf;
}}
"""
    )
    nginx_command = [nginx, "-p", str(root), "-c", str(root / "nginx.conf")]
    tested = subprocess.run(
        [*nginx_command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert tested.returncode == 0, tested.stderr
    nginx_output = root / "nginx.output"
    with nginx_output.open("wb") as output:
        processes.append(
            subprocess.Popen(
                [*nginx_command, "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT
            )
        )
    here = Site(installed, env, https_port, http_port, cert, gunicorn_log, nginx_log)
    try:
        wait_for("gunicorn", lambda: app_listening(app_port), processes[:1], gunicorn_log)
        wait_for("nginx", lambda: here.get("/healthz").status == 200, processes, nginx_output)
        yield here
    finally:
        stop(processes)


def app_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log, each one JSON object (fails on a line that is not)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ready_over_https_with_hsts(site: Site) -> None:
    response = site.get("/readyz")
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security"), response.getheaders()
    assert response.getheader("Cache-Control") == "no-store"


def test_the_sign_in_page_sets_a_secure_host_cookie(site: Site) -> None:
    response = site.get("/login")
    assert response.status == 200
    cookies = response.headers.get_all("Set-Cookie") or []
    session = [c for c in cookies if c.startswith("__Host-proms=")]
    assert session, cookies
    attributes = {part.strip().split("=")[0].lower() for part in session[0].split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= attributes, session[0]
    assert "domain" not in attributes


def test_plain_http_is_sent_to_https(site: Site) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=10)
    connection.request("GET", "/login")
    response = connection.getresponse()
    connection.close()
    assert response.status == 301
    assert response.getheader("Location", "").startswith("https://127.0.0.1")


def test_the_request_id_runs_from_nginx_through_proms_logs_and_back(site: Site) -> None:
    # A client's own id is replaced by nginx's: only the proxy's ids are trusted.
    response = site.get("/login", {"X-Request-ID": "chosen-by-the-client"})
    rid = response.getheader("X-Request-ID", "")
    assert NGINX_ID.fullmatch(rid), rid

    deadline = time.monotonic() + 10
    while True:
        app_lines = [r for r in json_lines(site.gunicorn_log) if r.get("request_id") == rid]
        proxy_lines = [r for r in json_lines(site.nginx_log) if r.get("request_id") == rid]
        if (app_lines and proxy_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (access,) = [r for r in app_lines if r["logger"] == "gunicorn.access"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/login", 200)
    # ProxyFix (PROXY_FIX_HOPS=1) gives proms the browser's address, not nginx's.
    assert access["remote_addr"] == CLIENT_ADDRESS
    (proxied,) = proxy_lines
    assert proxied["status"] == 200
    assert proxied["remote_addr"] == CLIENT_ADDRESS
    # Everything gunicorn wrote (access, errors, the app's records) is JSON with the fields.
    for record in json_lines(site.gunicorn_log):
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    assert "chosen-by-the-client" not in site.gunicorn_log.read_text()


def test_the_scheduler_unit_runs_and_logs_json(site: Site) -> None:
    command = unit_command(SCHEDULER_UNIT, site.installed.venv)
    log = site.installed.workdir / "scheduler.stderr"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=site.installed.workdir,
            env=site.installed.env(**site.env),
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while "dispatch:" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # what systemd sends
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        stop([process])
    records = json_lines(log)
    messages = [r["message"] for r in records]
    assert any(m.startswith("scheduler ") and " started: " in m for m in messages), messages
    assert any(m.startswith("stopping (SIGTERM)") for m in messages), messages
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record


def test_systemd_accepts_the_units(installed: Installed, tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    units = []
    for unit in (WEB_UNIT, SCHEDULER_UNIT):
        text = unit.read_text().replace("/opt/proms/bin", str(installed.venv / "bin"))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    result = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr
