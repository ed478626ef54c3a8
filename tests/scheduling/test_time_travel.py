"""A whole six-month course driven through `proms scheduler --once --now ...`, with the
development channel writing every message to the outbox folder.

Patients in New York (across both daylight-saving changes), Kolkata (+05:30, no DST) and
Lord Howe Island (a 30-minute DST shift) get every invitation and reminder once, at 10:00 on
their own clock, inside its window; a second run at the same moment sends nothing more.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from proms.admin import enrollment as enrollments
from proms.admin.models import Channel
from proms.db import db
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from tests.helpers import World, add_patient

# (zone, phone, anchor date, the clock changes the course's windows must cross)
COURSES = [
    ("America/New_York", "+12125550101", dt.date(2027, 2, 1), ["2027-03-14"]),
    ("America/New_York", "+12125550102", dt.date(2027, 5, 25), ["2027-11-07"]),
    ("Asia/Kolkata", "+919812345678", dt.date(2027, 2, 1), []),
    ("Australia/Lord_Howe", "+61255501234", dt.date(2027, 3, 1), ["2027-04-04"]),
]


@pytest.fixture
def outbox(app: Flask, tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    app.config.update(
        MESSAGE_TRANSPORT="files",
        OUTBOX_DIR=str(folder),
        PUBLIC_BASE_URL="https://proms.example.org",
    )
    return folder


def run_once(app: Flask, now: dt.datetime) -> list[str]:
    result = app.test_cli_runner().invoke(args=["scheduler", "--once", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def next_due(after: dt.datetime) -> dt.datetime | None:
    """The next moment something is due: a pending message's time, or a window's close."""
    db.session.commit()  # a new transaction: see what the scheduler committed
    pending = db.session.scalar(
        sa.select(
            sa.func.min(sa.func.coalesce(Notification.next_attempt_at, Notification.send_after))
        ).where(Notification.status == NotificationStatus.PENDING)
    )
    closing = db.session.scalar(
        sa.select(sa.func.min(Assessment.closes_at)).where(
            Assessment.status == AssessmentStatus.SCHEDULED, Assessment.closes_at > after
        )
    )
    candidates = [moment for moment in (pending, closing) if moment is not None]
    return max(min(candidates), after) if candidates else None


@pytest.mark.parametrize(
    ("zone", "phone", "anchor", "changes"), COURSES, ids=[f"{c[0]}-{c[2]}" for c in COURSES]
)
def test_a_six_month_course_at_the_patients_local_time(
    app: Flask,
    world: World,
    outbox: Path,
    zone: str,
    phone: str,
    anchor: dt.date,
    changes: list[str],
) -> None:
    tz = ZoneInfo(zone)
    patient = add_patient(
        world.clinic_a, "TRAVEL", time_zone=zone, phone=phone, preferred_channel=Channel.SMS
    )
    enrolled = dt.datetime.combine(anchor - dt.timedelta(days=20), dt.time(9), tzinfo=tz)
    course = enrollments.enroll(
        db.session, patient, world.protocol_a, anchor, now=enrolled.astimezone(dt.UTC)
    )
    db.session.commit()
    planned = {
        row.idempotency_key
        for row in db.session.scalars(
            sa.select(Notification).where(Notification.status == NotificationStatus.PENDING)
        )
    }
    assert len(planned) >= 10

    now = enrolled.astimezone(dt.UTC)
    runs = 0
    while (due := next_due(now)) is not None:
        now = due
        run_once(app, now)
        repeat = run_once(app, now)  # the same moment again sends nothing more
        assert "sent=0" in next(line for line in repeat if line.startswith("dispatch:"))
        runs += 1
        assert runs < 100, "the schedule never ran out"

    db.session.commit()
    sent = db.session.scalars(
        sa.select(Notification)
        .where(Notification.status == NotificationStatus.SENT)
        .order_by(Notification.sent_at)
    ).all()
    # Every planned message went, once; the patient never answered, so every window was missed.
    assert {row.idempotency_key for row in sent} == planned
    assert len(list(outbox.glob("*-sms.txt"))) == len(sent)
    for row in sent:
        assert row.assessment is not None
        assert row.assessment.opens_at <= row.sent_at < row.assessment.closes_at
        local = row.sent_at.astimezone(tz)
        assert (local.hour, local.minute) == (10, 0), (row.idempotency_key, local)
    offsets = {row.sent_at.astimezone(tz).utcoffset() for row in sent}
    assert len(offsets) == (2 if changes else 1)  # 10:00 on both sides of a change
    for change in changes:
        day = dt.date.fromisoformat(change)
        before = [r for r in sent if r.sent_at.astimezone(tz).date() < day]
        after = [r for r in sent if r.sent_at.astimezone(tz).date() > day]
        assert before, f"no messages before {change}"
        assert after, f"no messages after {change}"
    assert {a.status for a in course.assessments} == {AssessmentStatus.EXPIRED}
