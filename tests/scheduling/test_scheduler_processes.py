"""Real `proms scheduler` processes against a real SMTP server on loopback.

Two schedulers at once send each of 5,000 due messages exactly once (PostgreSQL; SQLite runs
one scheduler, its single writer at a time being the lock). A scheduler killed with SIGKILL in
the middle of a batch and started again loses nothing and sends nothing twice: what it had
handed over becomes `unknown`. A mail server that is down, then back, gets its messages on a
later sweep. SIGTERM lets the message in hand finish and puts the rest back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask

from proms.admin import enrollment as enrollments
from proms.admin.models import Patient
from proms.db import db
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus
from proms.schema import alembic_config
from tests.helpers import World
from tests.notify.smtp_server import Handler, SmtpServer

PROMS = str(Path(sys.executable).with_name("proms"))
ENROLLED = dt.datetime(2027, 1, 1, 15, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2027, 1, 4, 15, 0, tzinfo=dt.UTC)  # 10:00 in New York: the invitations
ANCHOR = dt.date(2027, 1, 18)  # baselines open 14 days before, on 2027-01-04 at 10:00


def due_invitations(
    world: World, count: int, anchor: dt.date = ANCHOR, enrolled: dt.datetime = ENROLLED
) -> list[int]:
    """`count` patients, each with one invitation due at DUE (and reminders later)."""
    db.session.execute(
        sa.insert(Patient),
        [
            {
                "clinic_id": world.clinic_a.id,
                "mrn": f"P{n:05d}",
                "given_name": "Pat",
                "family_name": f"Many{n}",
                "email": f"p{n}@example.org",
                "time_zone": "America/New_York",
            }
            for n in range(count)
        ],
    )
    patients = db.session.scalars(sa.select(Patient).where(Patient.mrn.like("P%"))).all()
    enrollments.enroll_many(
        db.session, world.protocol_a, [(p, anchor) for p in patients], now=enrolled
    )
    ids = [p.id for p in patients]  # before the commit expires them: not a query each
    db.session.commit()
    return ids


def environment(database_url: str, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PROMS_ENV": "test",
        "PROMS_DATABASE_URL": database_url,
        "PROMS_PUBLIC_BASE_URL": "https://proms.example.org",
        "PROMS_MESSAGE_TRANSPORT": "live",
        "PROMS_MAIL_FROM": "Clinic <no-reply@clinic.example.org>",
        "PROMS_SMTP_HOST": "127.0.0.1",
        "PROMS_SMTP_PORT": str(smtp.port),
        "PROMS_SMTP_SECURITY": "none",
        "PROMS_SMTP_TIMEOUT_SECONDS": "5",
        # Email only: texts are not set up (and no patient here has a mobile number).
    }
    env.update(extra)
    return env


def scheduler(env: dict[str, str], now: dt.datetime) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PROMS, "scheduler", "--once", "--now", now.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()
    assert "failed\n" not in out.decode(), err.decode()[-3000:]
    return out.decode()


def outbox() -> list[Notification]:
    db.session.commit()  # a new transaction: see what the schedulers committed
    return list(
        db.session.scalars(
            sa.select(Notification).where(
                Notification.kind == NotificationKind.INVITE, Notification.send_after <= DUE
            )
        )
    )


def recipients(server: SmtpServer) -> Counter[str]:
    return Counter(address for message in server.messages for address in message.rcpt_tos)


@pytest.fixture(autouse=True)
def _stamped(database_url: str) -> Iterator[None]:
    """The test database, made from the models, marked as migrated to head for the command
    (which refuses a database it cannot tell is this proms'), and unmarked after."""
    command.stamp(alembic_config(database_url), "head")
    yield
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_two_schedulers_send_each_message_exactly_once(
    app: Flask, world: World, database_url: str, database_kind: str, smtp: SmtpServer
) -> None:
    count = 5000 if database_kind == "postgresql" else 1000
    due_invitations(world, count)
    env = environment(database_url, smtp, PROMS_DISPATCH_BATCH_SIZE="100")
    # SQLite: one scheduler (a deployment on SQLite runs one); PostgreSQL: two at once.
    processes = [scheduler(env, DUE) for _ in range(2 if database_kind == "postgresql" else 1)]
    outputs = [finish(process) for process in processes]
    rows = outbox()
    assert len(rows) == count, outputs
    assert {row.status for row in rows} == {NotificationStatus.SENT}, outputs
    received = recipients(smtp)
    assert len(received) == count
    assert set(received.values()) == {1}  # nobody got it twice
    assert len({row.provider_message_id for row in rows}) == count
    workers = Counter(row.claimed_by for row in rows)
    if database_kind == "postgresql":
        assert len(workers) == 2, workers  # both schedulers did part of the work


class _SlowAfter(Handler):
    """Accepts `accept` messages, then hangs at the end of the next one's DATA."""

    accept = 25

    async def _step(self, step: str) -> str | None:
        if step == "DATA" and len(self.messages) >= self.accept:
            self.hung.set()
            while not self.released.is_set():
                await asyncio.sleep(0.01)
        return await super()._step(step)


def test_a_scheduler_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    app: Flask, world: World, database_url: str, smtp: SmtpServer
) -> None:
    due_invitations(world, 100)
    smtp.handler.__class__ = _SlowAfter
    env = environment(database_url, smtp, PROMS_DISPATCH_BATCH_SIZE="10")
    first = scheduler(env, DUE)
    assert smtp.handler.hung.wait(120), "the scheduler never reached the hanging message"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    smtp.release()
    smtp.handler.__class__ = Handler
    rows = outbox()
    statuses = Counter(row.status for row in rows)
    # Two batches of ten recorded; the third was in hand: five accepted by the server, one
    # hanging, four not yet tried, none of it recorded.
    assert statuses[NotificationStatus.SENT] == 20
    assert statuses[NotificationStatus.SENDING] == 10

    # Started again after the claims' lease: the batch in hand is unknown, the rest goes.
    output = finish(
        scheduler(env | {"PROMS_DISPATCH_LEASE_SECONDS": "60"}, DUE + dt.timedelta(minutes=2))
    )
    rows = outbox()
    statuses = Counter(row.status for row in rows)
    assert statuses == {NotificationStatus.SENT: 90, NotificationStatus.UNKNOWN: 10}, output
    assert statuses == {NotificationStatus.SENT: 90, NotificationStatus.UNKNOWN: 10}
    received = recipients(smtp)
    assert set(received.values()) == {1}, "a message went twice"
    sent_to = {row.patient.email for row in rows if row.status is NotificationStatus.SENT}
    assert sent_to <= set(received)
    # Of the ten unknown, five arrived and perhaps the hanging one: that is what "unknown" means,
    # and a coordinator resolves them (the worklist).
    assert len(received) in (95, 96)


def test_a_mail_server_that_is_down_then_back_gets_the_messages(
    app: Flask, world: World, database_url: str, smtp: SmtpServer
) -> None:
    due_invitations(world, 20)
    smtp.stop()
    env = environment(database_url, smtp, PROMS_RETRY_BASE_SECONDS="60")
    output = finish(scheduler(env, DUE))
    assert "retrying=20" in output
    rows = outbox()
    assert {row.status for row in rows} == {NotificationStatus.PENDING}
    assert all(row.next_attempt_at and row.next_attempt_at > DUE for row in rows)
    smtp.start()
    output = finish(scheduler(env, DUE + dt.timedelta(minutes=5)))
    assert "sent=20" in output
    assert len(recipients(smtp)) == 20
    assert {row.attempts for row in outbox()} == {2}


def test_sigterm_finishes_the_message_in_hand_and_puts_the_rest_back(
    app: Flask, world: World, database_url: str, smtp: SmtpServer
) -> None:
    # The running scheduler reads the clock: enrolled now, in a window that opened yesterday,
    # so the invitations are due at once; quiet hours off (the test may run in New York's night).
    world.clinic_a.quiet_hours_start = world.clinic_a.quiet_hours_end = dt.time(0, 0)
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo("America/New_York")).date()
    due_invitations(world, 30, anchor=today + dt.timedelta(days=13), enrolled=now)
    smtp.handler.__class__ = _SlowAfter
    env = environment(database_url, smtp, PROMS_DISPATCH_BATCH_SIZE="10")
    process = subprocess.Popen(
        [PROMS, "scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert smtp.handler.hung.wait(120), "the scheduler never reached the hanging message"
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None  # still waiting for the server's answer
        smtp.release()  # the message in hand is answered
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert "stopped" in err.decode()
    db.session.commit()
    rows = list(
        db.session.scalars(
            sa.select(Notification).where(Notification.kind == NotificationKind.INVITE)
        )
    )
    statuses = Counter(row.status for row in rows if row.send_after <= now)
    assert statuses[NotificationStatus.SENT] == 26  # 25, and the one in hand
    assert statuses[NotificationStatus.PENDING] == 4  # put back, never handed to the server
    assert NotificationStatus.UNKNOWN not in statuses
    assert NotificationStatus.SENDING not in statuses
