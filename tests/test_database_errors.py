"""When the database is unreachable, loses its connections or runs out of space.

- Unreachable (PostgreSQL refusing connections, a SQLite file that cannot be opened): a 503 with
  Retry-After and a "try again in a moment" page, never a 500 or a stack trace.
- Connections dropped under a running app (a database restart): the next request is served
  without restarting proms, and a page already built when its connection died still goes out.
- SQLite's disk full (a real tmpfs, so root): a 507 page saying the answers so far are kept;
  the database stays intact, and once space is freed the same patient carries on and sends.

bench/soak/faults.py runs the same faults against gunicorn, a PostgreSQL cluster of its own
and a real full disk, under load.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from proms.admin.models import Channel, Protocol
from proms.admin.services import create_clinic, enroll_patient
from proms.db import Base, db, utcnow
from proms.notify.base import OutgoingMessage
from proms.notify.null import NullSender
from proms.outcomes.models import Score
from proms.scheduling.links import mint_token
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scheduling.runner import SWEEPS, Runner
from proms.security import SECURITY_HEADERS
from proms.surveys.models import SurveyAnswer, SurveyResponse
from tests.helpers import CSRF_RE, add_patient, in_ci, patient_today

TRY_AGAIN = "Please try again in a moment"
TRY_LATER = "Please try again later"
KEPT = "The answers you saved before are kept"
STAFF_TRY_AGAIN = "try again in a moment"
INTERNALS = ("Traceback", "OperationalError", "psycopg", "sqlite3", "Internal Server Error")
ANSWER_RE = re.compile(r'<input[^>]*name="answer"[^>]*type="radio"[^>]*value="([^"]+)"')


def closed_port() -> int:
    """A port nothing listens on (bound, then released): connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_reading_route(app: Flask) -> None:
    @app.get("/_test/read")
    def read() -> str:
        return str(db.session.execute(sa.text("SELECT 1")).scalar_one())


def assert_page(response: TestResponse, status: int, *words: str) -> str:
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    assert response.headers["Cache-Control"] == "no-store"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    for word in words:
        assert word in body
    for word in INTERNALS:
        assert word not in body
    return body


# Unreachable ------------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/proms"
    return f"sqlite:///{tmp_path / 'no-such-folder' / 'proms.sqlite3'}"


@pytest.fixture
def unreachable(make_app: Callable[..., Flask], unreachable_url: str) -> Flask:
    app = make_app(DATABASE_URL=unreachable_url, TESTING=False, PROPAGATE_EXCEPTIONS=False)
    add_reading_route(app)
    return app


def test_a_patient_page_says_try_again_in_a_moment(unreachable: Flask) -> None:
    response = unreachable.test_client().get("/s/some-link-token-0123456789abcdef")
    body = assert_page(response, 503, TRY_AGAIN, KEPT)
    assert response.headers["Retry-After"] == "5"
    assert 'class="patient"' in body


def test_a_staff_page_says_try_again_in_a_moment(unreachable: Flask) -> None:
    response = unreachable.test_client().get("/_test/read")
    assert_page(response, 503, STAFF_TRY_AGAIN)
    assert response.headers["Retry-After"] == "5"


def test_a_json_client_gets_the_message_as_json(unreachable: Flask) -> None:
    response = unreachable.test_client().get("/_test/read", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {
        "error": "This cannot be done just now. What was saved before is kept; try again in "
        "a moment."
    }


def test_a_failing_constraint_is_still_a_500(make_app: Callable[..., Flask]) -> None:
    """Only unavailability is a 503: a statement the database refuses is a bug, logged as one."""
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False)

    @app.get("/_test/bad-statement")
    def bad_statement() -> str:
        db.session.execute(sa.text("SELECT no_such_column FROM patient"))
        return "unreachable"

    response = app.test_client().get("/_test/bad-statement")
    assert_page(response, 500, "Something went wrong on our side")
    assert "Retry-After" not in response.headers


# Connections dropped under a running app ----------------------------------------------------------


def drop_connections(app: Flask, database_kind: str, name: str) -> int:
    """Cut the app's database connections from outside, as a database restart does; how many.

    PostgreSQL: the server ends the sessions of this app (by application_name). SQLite has no
    server: the pooled connections are closed under the app instead.
    """
    if database_kind == "postgresql":
        admin = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            cut = connection.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        admin.dispose()
        return int(cut)
    closed = 0
    for record in list(db.engine.pool._pool.queue):  # type: ignore[attr-defined]
        if record.dbapi_connection is not None:
            record.dbapi_connection.close()
            closed += 1
    return closed


@pytest.fixture
def dropping_app(
    make_app: Callable[..., Flask], database_kind: str
) -> tuple[Flask, Callable[[], int]]:
    name = f"proms-test-{os.getpid()}-{closed_port()}"
    options = {"connect_args": {"application_name": name, "connect_timeout": 3}}
    app = make_app(
        TESTING=False,
        PROPAGATE_EXCEPTIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS=options if database_kind == "postgresql" else {},
    )
    add_reading_route(app)

    @app.get("/_test/connection-dies-after-the-page")
    def dies_after_the_page() -> str:
        value = db.session.execute(sa.text("SELECT 1")).scalar_one()
        if database_kind == "postgresql":
            drop_connections(app, database_kind, name)
        else:
            db.session.connection().connection.dbapi_connection.close()  # type: ignore[union-attr]
        return f"page built ({value})"

    def drop() -> int:
        with app.app_context():
            return drop_connections(app, database_kind, name)

    return app, drop


def test_after_the_connections_are_cut_the_next_request_is_served(
    dropping_app: tuple[Flask, Callable[[], int]],
) -> None:
    app, drop = dropping_app
    client = app.test_client()
    assert client.get("/_test/read").status_code == 200
    assert drop() >= 1
    # The pooled connection is dead: replaced at checkout (pool_pre_ping), not a 503 or a 500.
    for _ in range(3):
        response = client.get("/_test/read")
        assert response.status_code == 200, response.get_data(as_text=True)


def test_a_page_whose_connection_died_after_it_was_built_still_goes_out(
    dropping_app: tuple[Flask, Callable[[], int]],
) -> None:
    app, _drop = dropping_app
    client = app.test_client()
    response = client.get("/_test/connection-dies-after-the-page")
    # Ending the session rolls back on the dead connection: that failure must not replace the
    # page with the server's bare 500 (proms.db._end_session).
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "page built (1)"
    assert client.get("/_test/read").status_code == 200


# SQLite's disk full -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that really fills up (mounting needs root)."""
    if os.geteuid() != 0:
        message = "mounting a small tmpfs for the disk-full test needs root"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=4096k", "tmpfs", str(disk)], check=True
    )
    try:
        yield disk
    finally:
        subprocess.run(["/usr/bin/umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler.bin"
    stats = os.statvfs(disk)
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def answer_value(response: TestResponse) -> str:
    found = ANSWER_RE.search(response.get_data(as_text=True))
    assert found is not None, "no answer options on the question page"
    return found.group(1)


def csrf(response: TestResponse) -> str:
    found = CSRF_RE.search(response.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def sqlite_patient(make_app: Callable[..., Flask], database: Path) -> tuple[Flask, int, str]:
    """An app on its own SQLite file with one patient whose baseline is open: (app, the
    baseline's id, a link to it)."""
    url = f"sqlite:///{database}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = make_app(
        DATABASE_URL=url, TESTING=False, PROPAGATE_EXCEPTIONS=False, MESSAGE_TRANSPORT="null"
    )
    with app.app_context():
        clinic = create_clinic(db.session, slug="d", name="Clinic D", time_zone="America/Chicago")
        patient = add_patient(clinic, "D1", time_zone="America/Chicago")
        protocol = db.session.scalars(
            sa.select(Protocol).where(Protocol.clinic_id == clinic.id)
        ).one()
        enrollment = enroll_patient(
            db.session, patient, protocol, patient_today(patient) + dt.timedelta(days=3)
        )
        baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
        assessment_id = baseline.id
        token = mint_token(db.session, baseline, now=utcnow(), max_age=dt.timedelta(days=30))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return app, assessment_id, token


def test_a_full_disk_keeps_the_answers_and_the_patient_carries_on_after(
    small_disk: Path, make_app: Callable[..., Flask]
) -> None:
    database = small_disk / "proms.sqlite3"
    app, assessment_id, token = sqlite_patient(make_app, database)

    client = app.test_client()
    started = client.post(f"/s/{token}", data={"csrf_token": csrf(client.get(f"/s/{token}"))})
    assert started.status_code == 303
    where = started.headers["Location"]
    saved: list[int] = []
    # Room for a few answers (each commit adds pages to the WAL), then none.
    filler = fill(small_disk, leave=160 * 1024)
    refused: TestResponse | None = None
    form: dict[str, str] = {}
    for _ in range(60):
        assert where.startswith("/s/q/"), where
        page = client.get(where)
        if page.status_code == 507:
            refused = page
            break
        form = {"csrf_token": csrf(page), "answer": answer_value(page), "next": "Next"}
        reply = client.post(where, data=form)
        if reply.status_code == 507:
            refused = reply
            break
        assert reply.status_code == 303, reply.get_data(as_text=True)
        saved.append(int(form["answer"]))
        where = reply.headers["Location"]
    assert refused is not None, "the disk never filled"
    assert saved, "no answer was saved before the disk filled"
    assert_page(refused, 507, TRY_LATER, KEPT)

    check = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = [
        value
        for (value,) in check.execute(
            "SELECT a.value FROM survey_answer a JOIN survey_response r ON r.id = a.response_id "
            "WHERE r.assessment_id = ?",
            (assessment_id,),
        )
    ]
    check.close()
    assert sorted(stored) == sorted(saved)

    # Space again: the same browser carries on from the question that failed, and sends.
    filler.unlink()
    for _ in range(60):
        if not where.startswith("/s/q/"):
            break
        page = client.get(where)
        assert page.status_code == 200
        reply = client.post(
            where, data={"csrf_token": csrf(page), "answer": answer_value(page), "next": "Next"}
        )
        assert reply.status_code == 303
        where = reply.headers["Location"]
    review = client.get("/s/review")
    assert review.status_code == 200
    sent = client.post("/s/submit", data={"csrf_token": csrf(review)})
    assert sent.status_code == 303
    assert client.get(sent.headers["Location"]).status_code == 200
    with app.app_context():
        assessment = db.session.get(Assessment, assessment_id)
        assert assessment is not None
        assert assessment.status is AssessmentStatus.COMPLETED
        responses = db.session.scalars(
            sa.select(SurveyResponse).where(SurveyResponse.assessment_id == assessment_id)
        ).all()
        answers = db.session.scalars(
            sa.select(SurveyAnswer).where(SurveyAnswer.response_id.in_([r.id for r in responses]))
        ).all()
        scores = db.session.scalars(sa.select(Score).where(Score.assessment_id == assessment_id))
        assert len(list(scores)) >= len(responses) > 0
        assert len(answers) > len(saved)
        db.session.remove()
        db.engine.dispose()
    check = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


# The scheduler ----------------------------------------------------------------------------------


def test_a_sweep_without_its_database_logs_one_line_and_the_next_runs(
    make_app: Callable[..., Flask],
    dropping_app: tuple[Flask, Callable[[], int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database restart costs the scheduler a failed sweep or two, each one log line (not a
    traceback a second), and never the process: the next sweep runs on a new connection."""
    down = make_app(
        DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/proms",
        MESSAGE_TRANSPORT="null",
    )
    dispatch = next(sweep for sweep in SWEEPS if sweep.id == "dispatch")
    with caplog.at_level(logging.WARNING, logger="proms.scheduler"):
        assert Runner(down, {"email": NullSender()}).run(dispatch) == "dispatch: failed"
    [record] = [r for r in caplog.records if r.name == "proms.scheduler"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "database unavailable" in record.getMessage()

    app, drop = dropping_app
    app.config["MESSAGE_TRANSPORT"] = "null"
    runner = Runner(app, {"email": NullSender()})
    assert runner.run(dispatch).startswith("dispatch: claimed=0")
    assert drop() >= 1
    assert runner.run(dispatch).startswith("dispatch: claimed=0")


class LockingSender:
    """Accepts every message (as the null channel does), and as it takes the first one another
    process locks the whole database: the dispatcher's record of what it sent waits out the busy
    timeout (5 s) and fails, as during a database restart. The lock is let go once the
    dispatcher has said it will try again (`release`), or after `seconds` at the latest; a fixed
    lock barely longer than the busy timeout could end, on a busy machine, before the
    dispatcher's wait did."""

    def __init__(self, database: Path, seconds: float) -> None:
        self.database = database
        self.seconds = seconds
        self.sent: list[int] = []
        self.released = threading.Event()
        self._blocker: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        if not self.sent:
            blocker = sqlite3.connect(self.database, timeout=5, check_same_thread=False)
            blocker.execute("BEGIN EXCLUSIVE")
            self._blocker = blocker
            threading.Timer(self.seconds, self.release).start()
        self.sent.append(message.notification_id)
        return f"locked-test:{message.notification_id}"

    def release(self) -> None:
        with self._lock:
            if self._blocker is not None:
                self._blocker.rollback()
                self._blocker.close()
                self._blocker = None
                self.released.set()


class ReleaseOnRetry(logging.Handler):
    """Lets the database go when the dispatcher logs that it will try again."""

    def __init__(self, sender: LockingSender) -> None:
        super().__init__(logging.WARNING)
        self.sender = sender
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if "trying again" in record.getMessage():
            if not self.sender.released.is_set():
                self.fired = True  # the lock was still held: this is what it made fail
            self.sender.release()


def test_what_was_sent_is_recorded_once_the_database_is_back(
    make_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages handed over and sent while the database became unreachable are recorded as
    sent when it is back (within half the claim's lease), not left to become `unknown`."""
    database = tmp_path / "proms.sqlite3"
    app, assessment_id, _token = sqlite_patient(make_app, database)
    with app.app_context():
        patient_id = db.session.get(Assessment, assessment_id).enrollment.patient_id  # type: ignore[union-attr]
        now = utcnow()
        db.session.add(
            Notification(
                idempotency_key=f"assessment:{assessment_id}:new_link:test",
                patient_id=patient_id,
                assessment_id=assessment_id,
                kind=NotificationKind.NEW_LINK,
                channel=Channel.EMAIL,
                send_after=now,
                created_at=now,
            )
        )
        db.session.commit()
        db.session.remove()
    sender = LockingSender(database, seconds=30)
    dispatch = next(sweep for sweep in SWEEPS if sweep.id == "dispatch")
    releaser = ReleaseOnRetry(sender)
    logger = logging.getLogger("proms.scheduler")
    logger.addHandler(releaser)
    try:
        with caplog.at_level(logging.WARNING, logger="proms.scheduler"):
            line = Runner(app, {"email": sender}).run(dispatch)
    finally:
        logger.removeHandler(releaser)
        sender.release()
    assert releaser.fired  # the record failed while locked, and was made once the lock went
    assert line.startswith("dispatch: claimed=1 sent=1"), line
    assert any("trying again" in r.getMessage() for r in caplog.records)
    with app.app_context():
        [row] = db.session.scalars(
            sa.select(Notification).where(Notification.kind == NotificationKind.NEW_LINK)
        ).all()
        assert row.status is NotificationStatus.SENT
        assert row.provider_message_id == f"locked-test:{row.id}"
        assert sender.sent == [row.id]
        db.session.remove()
        db.engine.dispose()
