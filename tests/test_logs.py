"""Logs never carry a patient link (however it is spelled) or what a patient wrote.

Links: the development server and a real gunicorn each serve a real link under every spelling
that opens it (`/s%2F<token>`, `/s/%37...`, `/%73/<token>`) or nearly does (`/S/<token>`,
`/s%252F<token>`); neither the access log nor the error log may hold the token, encoded or not.
Database errors: with bound parameters hidden (proms.db), and PostgreSQL's DETAIL lines
("Failing row contains (...)") dropped from driver errors (proms.db) and redacted from logs, and
SQLAlchemy's DEBUG rows removed, a failed insert of a score or
a patient leaves no value of it in any log record.
JSON logs (production's): one object a line with the request's id, which the response echoes;
a real gunicorn writes its access and error lines and the app's records that way, and none of
them holds a link, a hostile request id or a patient's value.
"""

from __future__ import annotations

import datetime as dt
import http.client
import importlib.metadata
import io
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from proms import create_app
from proms.admin.models import Patient
from proms.admin.services import enroll_patient
from proms.db import db, utcnow
from proms.logs import REDACTED, JsonFormatter, RedactLinks, redact, request_id
from proms.outcomes.models import Score
from proms.surveys.links import mint_token
from tests.helpers import World, add_patient, stop

BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[1]  # the servers run from the repository

# Redaction, spelling by spelling ----------------------------------------------------------------

TOKEN = "Q7xKp2mZ_9vB-3nRtY8wLcE5hJ0aFgD4sU6iO1eWqXy"  # the shape of secrets.token_urlsafe(32)
ENCODED = "".join(f"%{ord(c):02X}" for c in TOKEN)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f'"GET /s/{TOKEN} HTTP/1.1" 200', '"GET /s/<redacted> HTTP/1.1" 200'),
        (f'"GET /S/{TOKEN} HTTP/1.1" 404', '"GET /S/<redacted> HTTP/1.1" 404'),
        (f"GET /s%2F{TOKEN} HTTP/1.1", "GET /s%2F<redacted> HTTP/1.1"),
        (f"GET /s%2f{TOKEN} HTTP/1.1", "GET /s%2f<redacted> HTTP/1.1"),
        (f"GET /s%252F{TOKEN} HTTP/1.1", "GET /s%252F<redacted> HTTP/1.1"),
        (f"GET /%73/{TOKEN} HTTP/1.1", "GET /%73/<redacted> HTTP/1.1"),
        (f"GET /s/%37{TOKEN[1:]} HTTP/1.1", "GET /s/<redacted> HTTP/1.1"),
        (f"GET /s/{ENCODED} HTTP/1.1", "GET /s/<redacted> HTTP/1.1"),
        (f"GET /s/%20{TOKEN} HTTP/1.1", "GET /s/<redacted> HTTP/1.1"),
        (f"GET //s/{TOKEN}?from=email HTTP/1.1", "GET //s/<redacted>?from=email HTTP/1.1"),
        (f"POST /s/{TOKEN}/new-link", "POST /s/<redacted>/new-link"),
        (f"GET /s/x/s/{TOKEN}", "GET /s/x/s/<redacted>"),
        # An email's unsubscribe link stops the patient's messages: a secret like a survey link.
        (f'"GET /u/{TOKEN} HTTP/1.1" 200', '"GET /u/<redacted> HTTP/1.1" 200'),
        (f"POST /U/{TOKEN} HTTP/1.1", "POST /U/<redacted> HTTP/1.1"),
        (f"GET /%75%2F{TOKEN} HTTP/1.1", "GET /%75%2F<redacted> HTTP/1.1"),
        # A staff member's one-time password link is a secret too.
        (f"GET /password/{TOKEN} HTTP/1.1", "GET /password/<redacted> HTTP/1.1"),
        (f"POST /Password/{TOKEN} HTTP/1.1", "POST /Password/<redacted> HTTP/1.1"),
        (
            f"Referer: https://proms.example.org/s/{TOKEN}",
            "Referer: https://proms.example.org/s/<redacted>",
        ),
        (f"GET /login?next=%2Fs%2F{TOKEN}", "GET /login?next=%2Fs%2F<redacted>"),
        # The survey's own pages stay readable; nothing else changes.
        ("GET /s/q/3?from=review HTTP/1.1", "GET /s/q/3?from=review HTTP/1.1"),
        ("GET /s/review HTTP/1.1", "GET /s/review HTTP/1.1"),
        ("GET /patients/12 HTTP/1.1", "GET /patients/12 HTTP/1.1"),
        ("100% done, /s/ and %zz", "100% done, /s/ and %zz"),
        ("GET /s/<redacted> HTTP/1.1", "GET /s/<redacted> HTTP/1.1"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_a_whole_path_is_redacted_past_a_space() -> None:
    # gunicorn's %(U)s is the decoded path: `/s/%20<token>` arrives as "/s/ <token>".
    assert redact(f"/s/ {TOKEN}", whole_path=True) == f"/s/{REDACTED}"


def test_the_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("proms.test_logs")
    logger.addFilter(RedactLinks())
    try:
        try:
            raise LookupError(f"no route for /s%2F{TOKEN}")
        except LookupError:
            logger.exception("Exception on %s [GET]", f"/s/{TOKEN}")
    finally:
        logger.filters.clear()
    assert "Exception on /s/<redacted> [GET]" in caplog.text
    assert "no route for /s%2F<redacted>" in caplog.text
    assert_no_token(caplog.text, TOKEN)


def assert_no_token(text: str, token: str) -> None:
    """Not the token, not any 12 characters of it, not its percent-encoded form."""
    encoded = "".join(f"%{ord(c):02X}" for c in token)
    for start in range(len(token) - 11):
        assert token[start : start + 12] not in text, token[start : start + 12]
    for start in range(0, len(encoded) - 35, 3):
        assert encoded[start : start + 36].lower() not in text.lower()


# Real servers ----------------------------------------------------------------------------------


@pytest.fixture
def link(world: World) -> str:
    """A working link to an open baseline questionnaire."""
    patient = add_patient(world.clinic_a, "LOGS1")
    today = dt.datetime.now(ZoneInfo(patient.time_zone)).date()
    enrollment = enroll_patient(db.session, patient, world.protocol_a, today + dt.timedelta(3))
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    raw = mint_token(db.session, baseline, now=utcnow(), max_age=dt.timedelta(days=30))
    db.session.commit()
    return raw


def spellings(token: str) -> dict[str, int]:
    """Ways to ask for a link, and the status each gets: 200 is the welcome page."""
    encoded = "".join(f"%{ord(c):02X}" for c in token)
    return {
        f"/s/{token}": 200,
        f"/s%2F{token}": 200,
        f"/s%2f{token}": 200,
        f"/s/%{ord(token[0]):02x}{token[1:]}": 200,
        f"/s/{encoded}": 200,
        f"/%73/{token}": 200,
        f"/s/{token}?from=email": 200,
        f"/S/{token}": 404,
        f"/s%252F{token}": 404,
        f"/s/%20{token}": 404,
        f"/s/{token}/new-link": 405,  # a POST-only page
    }


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def ask_every_spelling(port: int, token: str) -> None:
    for path, status in spellings(token).items():
        referrer = {"Referer": f"https://proms.example.org{path}"}
        assert get(port, path, referrer) == status, path


def test_the_development_server_logs_no_link(
    app: Flask, link: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # shutdown() waits for a poll
        name="logs-test-server",
        daemon=True,
    )
    thread.start()
    try:
        ask_every_spelling(server.server_port, link)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    requests = [line for line in lines if "GET /" in line]
    assert len(requests) == len(spellings(link)), lines
    for line in requests:
        assert REDACTED in line, line
    assert_no_token(caplog.text, link)


def gunicorn_options() -> list[str]:
    """gunicorn 27 opens a control socket at one fixed path; two servers would share it."""
    major = int(importlib.metadata.version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def run_gunicorn(database_url: str, tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """Start gunicorn on the test database; returns its port and its log folder."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*arguments: str) -> tuple[int, Path]:
        port = free_port()
        logs = tmp_path / f"gunicorn-{port}"
        logs.mkdir()
        env = {
            **os.environ,
            "PROMS_ENV": "test",
            "PROMS_DATABASE_URL": database_url,
            "PROMS_SECRET_KEY": secrets.token_hex(32),
        }
        command = [
            str(BIN / "gunicorn"),
            *("-w", "1", "-b", f"127.0.0.1:{port}"),
            *gunicorn_options(),
            *("--access-logfile", str(logs / "access.log")),
            *("--error-logfile", str(logs / "error.log")),
            "--log-level=debug",
            # Every atom that holds the path: the request line, the decoded path, the query,
            # the referrer, the raw URI.
            "--access-logformat="
            '%(h)s "%(r)s" %(s)s U=%(U)s q=%(q)s f="%(f)s" '
            "raw=%({raw_uri}e)s path=%({path_info}e)s",
            *arguments,
        ]
        with (logs / "output.log").open("wb") as output:
            process = subprocess.Popen(
                command, cwd=CHECKOUT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (logs / "output.log").read_text()
            try:
                if get(port, "/healthz") == 200:
                    return port, logs
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not start:\n{(logs / 'error.log').read_text()}")

    yield start
    stop(processes)


def access_lines(path: Path, expected: int) -> list[str]:
    """The access log's request lines, once all are written (each just after its response)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in path.read_text().splitlines() if "/healthz" not in line]
        if len(lines) >= expected or time.monotonic() > deadline:
            assert len(lines) == expected, lines
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize(
    "arguments",
    [
        ("-c", "python:proms.gunicorn_conf"),  # the documented way: proms' logger class
        ("proms:create_app()",),  # gunicorn's own logger, with proms' filter from create_app
    ],
    ids=["proms-config", "plain"],
)
def test_gunicorn_logs_no_link(
    run_gunicorn: Callable[..., tuple[int, Path]], link: str, arguments: tuple[str, ...]
) -> None:
    """Access and error logs of a real gunicorn, with proms' config module and without it."""
    port, logs = run_gunicorn(*arguments)
    ask_every_spelling(port, link)
    lines = access_lines(logs / "access.log", len(spellings(link)))
    for line in lines:
        assert line.count(REDACTED) >= 4, line  # request line, path, referrer, raw URI
    # At debug level the error log names every request too.
    assert (logs / "error.log").read_text().count(REDACTED) >= len(spellings(link))
    assert_no_token("\n".join(path.read_text() for path in logs.iterdir()), link)


# Database errors -------------------------------------------------------------------------------

PAIN_SCORE = 71.37  # a T-score no other row holds
FAMILY_NAME = "Quenneville-Orbach"
MRN = "MRN-7731-QX"


def add_failing_writes(app: Flask, clinic_id: int) -> None:
    """Test-only routes whose insert the database refuses, each carrying a patient's data."""

    @app.post("/_test/score")
    def score_with_a_negative_error() -> str:
        patient = db.session.scalar(db.select(Patient).where(Patient.mrn == MRN))
        assert patient is not None
        db.session.add(
            Score(
                response_id=2**31 - 1,
                patient_id=patient.id,
                enrollment_id=2**31 - 1,
                assessment_id=2**31 - 1,
                timepoint_key="baseline",
                instrument_code="promis-pi-4a",
                instrument_version="1.0",
                domain="pain_interference",
                observed_at=utcnow(),
                t_score=PAIN_SCORE,
                raw_score=PAIN_SCORE,
                standard_error=-1.0,  # CHECK se_positive
                n_answered=4,
                method="table",
                scoring_version="test",
            )
        )
        db.session.flush()
        return "unreachable"

    @app.post("/_test/patient-without-mrn")
    def patient_without_mrn() -> str:
        db.session.add(
            Patient(
                clinic_id=clinic_id,
                mrn="",  # CHECK mrn_not_empty
                given_name="Philippa",
                family_name=FAMILY_NAME,
                birth_on=dt.date(1951, 3, 14),
                time_zone="America/New_York",
            )
        )
        db.session.flush()
        return "unreachable"

    @app.post("/_test/duplicate-patient")
    def duplicate_patient() -> str:
        existing = db.session.scalar(db.select(Patient).where(Patient.mrn == MRN))
        assert existing is not None
        db.session.add(
            Patient(
                clinic_id=existing.clinic_id,
                mrn=existing.mrn,  # UNIQUE (clinic_id, mrn)
                given_name="Philippa",
                family_name=FAMILY_NAME,
                birth_on=dt.date(1951, 3, 14),
                time_zone="America/New_York",
            )
        )
        db.session.flush()
        return "unreachable"


@pytest.fixture
def failing_writes(make_app: Callable[..., Flask], world: World) -> Flask:
    add_patient(world.clinic_a, MRN, given_name="Philippa", family_name="Zwanenburg")
    db.session.commit()
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False, WTF_CSRF_ENABLED=False)
    add_failing_writes(app, world.clinic_a.id)
    return app


@pytest.mark.parametrize(
    "path", ["/_test/score", "/_test/patient-without-mrn", "/_test/duplicate-patient"]
)
def test_database_errors_log_no_patient_data(
    failing_writes: Flask, path: str, caplog: pytest.LogCaptureFixture, database_kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy sets its own logger to WARNING; turn on everything an operator could.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    response = failing_writes.test_client().post(path)
    assert response.status_code == 500

    # The error and the statement were logged: the test would prove nothing otherwise.
    logged = [r for r in caplog.records if r.name == "proms" and r.exc_info]
    assert logged, [r.getMessage() for r in caplog.records]
    assert "IntegrityError" in caplog.text
    assert "[SQL parameters hidden due to hide_parameters=True]" in caplog.text
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    if database_kind == "postgresql":
        # PostgreSQL quotes the failing row or key, which hide_parameters cannot hide: proms.db
        # keeps only the primary message of driver errors (the log filter is the second line).
        assert "DETAIL" not in caplog.text or f"DETAIL:  {REDACTED}" in caplog.text
        assert "Failing row contains" not in caplog.text

    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), record.exc_text or ""]
    for text in texts:
        for value in (str(PAIN_SCORE), FAMILY_NAME, "Zwanenburg", MRN, "1951-03-14"):
            assert value not in text


# JSON logs and request ids ---------------------------------------------------------------------

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
HOSTILE_IDS = [
    "x" * 65,  # too long
    "has space",
    'quote"',
    '{"json": 1}',
    "-leading-dash",
    f"../s/{TOKEN}",  # a path: could carry a link into every line
    "é",
]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object (fails on any line that is not)."""
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_a_json_line_has_the_fields_and_no_link_or_database_value() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("proms.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id.set("abc-123")
    try:
        try:
            raise LookupError(
                f"no route for /s%2F{TOKEN}\nDETAIL:  Failing row contains (7, {FAMILY_NAME})."
            )
        except LookupError:
            logger.exception("Exception on %s [GET]", f"/s/{TOKEN}", extra={"clinic_id": 3})
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
        logger.propagate = True
    (record,) = json_lines(stream.getvalue())
    assert list(record)[:5] == ["time", "level", "logger", "message", "request_id"]
    assert ISO_UTC.fullmatch(record["time"]), record["time"]
    assert record["level"] == "ERROR"
    assert record["logger"] == "proms.test_json"
    assert record["message"] == f"Exception on /s/{REDACTED} [GET]"
    assert record["request_id"] == "abc-123"
    assert record["clinic_id"] == 3
    # The traceback is one field, redacted like the message.
    assert record["exception"].startswith("Traceback")
    assert f"no route for /s%2F{REDACTED}" in record["exception"]
    assert f"DETAIL:  {REDACTED}" in record["exception"]
    assert_no_token(stream.getvalue(), TOKEN)
    assert FAMILY_NAME not in stream.getvalue()


@pytest.fixture
def logging_route(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()

    @app.get("/_test/log")
    def log_something() -> str:
        logging.getLogger("proms.test_logs").warning("during the request")
        return "logged"

    return app


def test_each_request_gets_an_id_in_its_header_and_log_records(
    logging_route: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = logging_route.test_client()
    first = client.get("/_test/log")
    second = client.get("/_test/log")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    for rid in ids:
        assert GENERATED_ID.fullmatch(rid), rid
    assert ids[0] != ids[1]
    records = [r for r in caplog.records if r.getMessage() == "during the request"]
    assert [getattr(r, "request_id", None) for r in records] == ids
    # Outside a request, no id.
    logging.getLogger("proms.test_logs").warning("after the requests")
    assert caplog.records[-1].request_id is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "incoming", ["0f8fa1c2d3e4b5a6978812345678abcd", "550e8400-e29b-41d4-a716-446655440000", "a"]
)
def test_a_sane_incoming_request_id_is_kept(
    logging_route: Flask, caplog: pytest.LogCaptureFixture, incoming: str
) -> None:
    response = logging_route.test_client().get("/_test/log", headers={"X-Request-ID": incoming})
    assert response.headers["X-Request-ID"] == incoming
    (record,) = [r for r in caplog.records if r.getMessage() == "during the request"]
    assert record.request_id == incoming  # type: ignore[attr-defined]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_a_hostile_incoming_request_id_is_replaced(
    logging_route: Flask, caplog: pytest.LogCaptureFixture, hostile: str
) -> None:
    response = logging_route.test_client().get("/_test/log", headers={"X-Request-ID": hostile})
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])
    assert response.headers.getlist("X-Request-ID") == [response.headers["X-Request-ID"]]
    (record,) = [r for r in caplog.records if r.getMessage() == "during the request"]
    assert record.request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]


def test_an_error_response_has_an_id_too(client) -> None:  # type: ignore[no-untyped-def]
    assert GENERATED_ID.fullmatch(client.get("/no-such-page").headers["X-Request-ID"])


def test_log_format_defaults_and_refusal(make_app: Callable[..., Flask]) -> None:
    from proms.checks import ConfigurationError
    from proms.logs import log_format

    assert log_format({"ENV": "production", "LOG_FORMAT": ""}) == "json"
    assert log_format({"ENV": "development", "LOG_FORMAT": ""}) == "text"
    assert log_format({"ENV": "test", "LOG_FORMAT": ""}) == "text"
    assert log_format({"ENV": "development", "LOG_FORMAT": "json"}) == "json"
    with pytest.raises(ConfigurationError, match="LOG_FORMAT must be json or text, not 'xml'"):
        make_app(LOG_FORMAT="xml")


def failing_app() -> Flask:
    """gunicorn's app for the JSON test: proms with the failing routes, SQLAlchemy at DEBUG."""
    app = create_app()
    with app.app_context():
        clinic_id = db.session.scalar(select(Patient.clinic_id).where(Patient.mrn == MRN))
        db.session.remove()
    assert clinic_id is not None
    add_failing_writes(app, clinic_id)
    app.config["WTF_CSRF_ENABLED"] = False  # the test routes have no form
    # Every statement and every row read, as an operator chasing a bug might turn on.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    return app


def request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """Status and X-Request-ID of a request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-ID", "")
    finally:
        connection.close()


def test_gunicorn_writes_json_lines_with_request_ids_and_nothing_private(
    run_gunicorn: Callable[..., tuple[int, Path]],
    link: str,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    database_kind: str,
) -> None:
    add_patient(world.clinic_a, MRN, given_name="Philippa", family_name="Zwanenburg")
    db.session.commit()
    monkeypatch.setenv("PROMS_LOG_FORMAT", "json")
    port, logs = run_gunicorn("-c", "python:proms.gunicorn_conf", "tests.test_logs:failing_app()")
    ask_every_spelling(port, link)
    sent: dict[str, str] = {}  # path -> the id it was sent with
    for number, path in enumerate(
        ["/_test/score", "/_test/patient-without-mrn", "/_test/duplicate-patient"]
    ):
        rid = f"proxy-id-{number}-{secrets.token_hex(4)}"
        assert request(port, "POST", path, {"X-Request-ID": rid}) == (500, rid)
        sent[path] = rid
    hostile = {}
    for value in (f"../s/{link}", "x" * 65, "a b"):
        status, echoed = request(port, "GET", "/login", {"X-Request-ID": value})
        assert status == 200
        assert GENERATED_ID.fullmatch(echoed), echoed
        hostile[echoed] = value

    access = json_lines_when_written(logs / "access.log", len(spellings(link)) + 6)
    errors = json_lines((logs / "error.log").read_text())
    for record in access + errors:
        assert ISO_UTC.fullmatch(record["time"]), record
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    requests = [r for r in access if r["path"] != "/healthz"]
    for record in requests:
        assert record["logger"] == "gunicorn.access"
        assert record["remote_addr"] == "127.0.0.1"
        assert isinstance(record["duration_ms"], float)
        assert record["method"] in ("GET", "POST")
    by_id = {r["request_id"]: r for r in requests}
    for path, rid in sent.items():
        assert (by_id[rid]["path"], by_id[rid]["status"]) == (path, 500)
    for echoed in hostile:
        assert (by_id[echoed]["path"], by_id[echoed]["status"]) == ("/login", 200)
    link_lines = [r for r in requests if r["method"] == "GET" and r["path"] != "/login"]
    assert len(link_lines) == len(spellings(link))
    for record in link_lines:
        assert REDACTED in record["path"], record

    # The app's own records (the failed inserts) are JSON in the error log, with the request's
    # id and the traceback as one field.
    failures = [r for r in errors if r["message"].startswith("Exception on /_test/")]
    assert {r["request_id"] for r in failures} == set(sent.values())
    for record in failures:
        assert "IntegrityError" in record["exception"]
        assert "[SQL parameters hidden due to hide_parameters=True]" in record["exception"]
    assert any(r["logger"].startswith("sqlalchemy.engine") for r in errors)  # DEBUG was on

    everything = "\n".join(path.read_text() for path in logs.iterdir())
    assert_no_token(everything, link)
    for value in hostile.values():
        assert value not in everything
    for value in (str(PAIN_SCORE), FAMILY_NAME, "Zwanenburg", MRN, "1951-03-14"):
        assert value not in everything
    if database_kind == "postgresql":
        assert "Failing row contains" not in everything


def json_lines_when_written(path: Path, expected: int) -> list[dict[str, Any]]:
    """The access log's records, once all requests are in it (each is written after its
    response); /healthz lines (the fixture's start-up probe) are not counted."""
    deadline = time.monotonic() + 10
    while True:
        records = json_lines(path.read_text())
        count = len([r for r in records if r.get("path") != "/healthz"])
        if count >= expected or time.monotonic() > deadline:
            assert count == expected, records
            return records
        time.sleep(0.05)
