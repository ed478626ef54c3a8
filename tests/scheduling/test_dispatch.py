"""The dispatcher on a fixed clock: each due message once, re-checked at send time, refusals
retried with backoff, uncertain ones never resent, quiet hours and the patient's cap kept.

The channel here records what it is given (or fails on demand): these tests are about the
dispatcher's decisions. Real SMTP and Twilio round trips are in tests/scheduling/test_scheduler.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from proms.admin import enrollment as enrollments
from proms.admin.models import Enrollment, Patient
from proms.db import db
from proms.notify.base import OutgoingMessage, Rejected, Uncertain
from proms.scheduling import dispatch
from proms.scheduling.links import hash_token
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.surveys.models import AccessToken
from tests.helpers import World, add_patient

NEW_YORK = ZoneInfo("America/New_York")
ENROLLED = dt.datetime(2027, 1, 4, 15, 0, tzinfo=dt.UTC)
ANCHOR = dt.date(2027, 1, 18)  # baseline opens 2027-01-04 10:00 New York


class Recorder:
    """A channel that keeps what it is given; `fail` decides per message what goes wrong."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.fail: Callable[[OutgoingMessage], Exception | None] = lambda _m: None

    def send(self, message: OutgoingMessage) -> str:
        problem = self.fail(message)
        if problem is not None:
            raise problem
        self.sent.append(message)
        return f"test:{len(self.sent)}"

    def close(self) -> None:
        pass


@pytest.fixture
def channel() -> Recorder:
    return Recorder()


@pytest.fixture
def run(app: Flask, channel: Recorder) -> Callable[..., dispatch.Report]:
    def sweep(now: dt.datetime, **changes: object) -> dispatch.Report:
        config = {**app.config, "PUBLIC_BASE_URL": "https://proms.example.org", **changes}
        settings = dispatch.Settings.from_config(config, "test-worker")
        return dispatch.dispatch(db.session, {"email": channel, "sms": channel}, now, settings)

    return sweep


def local(day: str, time: str, zone: ZoneInfo = NEW_YORK) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=zone).astimezone(dt.UTC)


def enroll(world: World, patient: Patient | None = None) -> Enrollment:
    course = enrollments.enroll(
        db.session, patient or world.patients_a[0], world.protocol_a, ANCHOR, now=ENROLLED
    )
    db.session.commit()
    return course


def rows(status: NotificationStatus | None = None) -> list[Notification]:
    query = sa.select(Notification).order_by(Notification.send_after, Notification.id)
    if status is not None:
        query = query.where(Notification.status == status)
    db.session.commit()  # a new transaction: see what the dispatcher committed
    return list(db.session.scalars(query))


def test_a_due_invitation_goes_once_with_a_fresh_link(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    first = run(local("2027-01-04", "10:00"))
    assert (first.claimed, first.sent) == (1, 1)
    again = run(local("2027-01-04", "10:00"))
    assert again.claimed == again.sent == 0
    [message] = channel.sent
    assert message.channel == "email"
    assert message.to == world.patients_a[0].email
    raw = message.text.split("/s/")[1].split()[0]
    token = db.session.scalar(
        sa.select(AccessToken).where(AccessToken.token_hash == hash_token(raw))
    )
    assert token is not None
    [invite] = rows(NotificationStatus.SENT)
    assert token.notification_id == invite.id
    assert invite.provider_message_id == "test:1"
    assert invite.sent_at == local("2027-01-04", "10:00")
    assert invite.attempts == 1
    assert message.unsubscribe_url is not None
    assert invite.unsubscribe_hash == hash_token(message.unsubscribe_url.rsplit("/", 1)[1])


def test_nothing_goes_before_its_time(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    report = run(local("2027-01-04", "09:59"))
    assert report.claimed == 0
    assert channel.sent == []


def test_a_completed_questionnaire_gets_no_more_reminders(
    world: World, channel: Recorder, run
) -> None:  # type: ignore[no-untyped-def]
    course = enroll(world)
    run(local("2027-01-04", "10:00"))
    baseline = course.assessments[0]
    baseline.status = AssessmentStatus.COMPLETED
    baseline.completed_at = local("2027-01-05", "12:00")
    db.session.commit()
    report = run(local("2027-01-06", "10:00"))  # reminder 1 was due now
    assert report.sent == 0
    assert report.skipped == {"completed": 1}
    [reminder] = [r for r in rows() if r.cancel_reason == "completed"]
    assert reminder.kind is NotificationKind.REMINDER


def test_withdrawn_and_opted_out_patients_get_nothing(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    course = enroll(world)
    other = enroll(world, world.patients_a[1])
    # Changed behind the planner's back (a restore, a direct edit): the send-time check holds.
    course.status = course.status.WITHDRAWN
    course.withdrawn_at = ENROLLED
    world.patients_a[1].opted_out_at = ENROLLED
    db.session.commit()
    report = run(local("2027-01-04", "10:00"))
    assert channel.sent == []
    assert report.skipped == {"withdrawn": 1, "opted_out": 1}
    assert other.id != course.id


def test_a_message_due_in_quiet_hours_waits_for_the_morning(
    world: World, channel: Recorder, run
) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    # The scheduler was down from 10:00 until 23:30: the invitation waits until 08:00.
    late = run(local("2027-01-04", "23:30"))
    assert (late.sent, late.deferred) == (0, 1)
    [invite] = rows(NotificationStatus.PENDING)[:1]
    assert invite.next_attempt_at == local("2027-01-05", "08:00")
    assert run(local("2027-01-05", "07:59")).claimed == 0
    assert run(local("2027-01-05", "08:00")).sent == 1


def test_after_downtime_only_the_latest_due_message_goes(
    world: World, channel: Recorder, run
) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    # Down from before the invitation until after the first reminder (two days later).
    report = run(local("2027-01-06", "10:30"))
    assert report.sent == 1
    assert report.skipped == {"superseded": 1}
    [sent] = rows(NotificationStatus.SENT)
    assert (sent.kind, sent.idempotency_key.split(":")[4]) == (NotificationKind.REMINDER, "1")


def test_the_patient_cap_holds_across_courses(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    patient = world.patients_a[0]
    enroll(world, patient)
    second = enrollments.enroll(
        db.session, patient, world.protocol_a, ANCHOR + dt.timedelta(days=1), now=ENROLLED
    )
    db.session.commit()
    # The second course's first invitation, an hour after the first course's.
    db.session.execute(
        sa.update(Notification)
        .where(
            Notification.kind == NotificationKind.INVITE,
            Notification.assessment_id == second.assessments[0].id,
        )
        .values(send_after=local("2027-01-04", "11:00"))
    )
    db.session.commit()
    assert run(local("2027-01-04", "10:00")).sent == 1
    report = run(local("2027-01-04", "11:00"), PATIENT_MESSAGE_GAP_MINUTES=240)
    assert (report.sent, report.deferred) == (0, 1)
    waiting = [r for r in rows(NotificationStatus.PENDING) if r.next_attempt_at is not None]
    assert [r.next_attempt_at for r in waiting] == [local("2027-01-04", "14:00")]
    assert run(local("2027-01-04", "14:00")).sent == 1
    assert len(channel.sent) == 2


def test_a_refusal_is_retried_with_backoff_then_fails(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    baseline = enroll(world).assessments[0].id
    channel.fail = lambda _m: Rejected("421 try later")
    now = local("2027-01-04", "10:00")
    tries = []
    for _ in range(5):
        report = run(now, RETRY_MAX_ATTEMPTS=5, RETRY_BASE_SECONDS=60)
        [row] = [
            r for r in rows() if r.kind is NotificationKind.INVITE and r.assessment_id == baseline
        ]
        tries.append((report.retrying, report.failed, row.status))
        if row.next_attempt_at is not None and row.status is NotificationStatus.PENDING:
            delay = row.next_attempt_at - now
            base = dt.timedelta(seconds=60 * 2 ** (row.attempts - 1))
            assert base * 0.5 <= delay <= base * 1.5
            now = row.next_attempt_at
    assert tries[-1] == (0, 1, NotificationStatus.FAILED)
    assert [t[0] for t in tries[:4]] == [1, 1, 1, 1]
    assert row.attempts == 5
    assert row.last_error == "421 try later"
    # Every link minted for a refused message was revoked.
    tokens = db.session.scalars(sa.select(AccessToken)).all()
    assert len(tokens) == 5
    assert all(t.revoked_at is not None for t in tokens)


def test_a_permanent_refusal_fails_at_once(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    channel.fail = lambda _m: Rejected("550 no such user", permanent=True)
    report = run(local("2027-01-04", "10:00"))
    assert (report.failed, report.retrying) == (1, 0)


def test_an_uncertain_send_is_never_repeated(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    channel.fail = lambda _m: Uncertain("timed out after the message was handed over")
    report = run(local("2027-01-04", "10:00"))
    assert report.uncertain == 1
    channel.fail = lambda _m: None
    later = run(local("2027-01-05", "10:00"))
    assert later.sent == 0
    [row] = rows(NotificationStatus.UNKNOWN)
    assert row.kind is NotificationKind.INVITE


def test_a_lapsed_claim_goes_back_or_becomes_unknown(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    enroll(world)
    claimed_at = local("2027-01-04", "10:00")
    invite, first, _second = [r for r in rows() if r.status is NotificationStatus.PENDING][:3]
    # A scheduler died: it had claimed the invitation and handed the first reminder over.
    invite.status = first.status = NotificationStatus.SENDING
    invite.claimed_at = first.claimed_at = claimed_at
    first.handed_over_at = claimed_at
    db.session.commit()
    assert run(claimed_at + dt.timedelta(seconds=10)).claimed == 0  # the claims still hold
    later = claimed_at + dt.timedelta(minutes=6)
    report = run(later, DISPATCH_LEASE_SECONDS=300)
    assert report.uncertain == 1
    db.session.expire_all()
    assert first.status is NotificationStatus.UNKNOWN
    # The invitation was never handed over: it is pending again, and waits out the gap after
    # the reminder that may have gone.
    assert invite.status is NotificationStatus.PENDING
    assert invite.next_attempt_at == claimed_at + dt.timedelta(hours=4)
    assert run(claimed_at + dt.timedelta(hours=4)).sent == 1


def test_a_closed_window_drops_its_reminders(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    course = enroll(world)
    baseline: Assessment = course.assessments[0]
    report = run(baseline.closes_at + dt.timedelta(hours=1))
    assert report.sent == 0
    assert set(report.skipped) <= {"window_closed", "superseded"}


def test_a_requested_link_goes_at_once_even_at_night(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    course = enroll(world)
    night = local("2027-01-05", "22:30")
    patient = world.patients_a[0]
    db.session.add(
        Notification(
            idempotency_key="request:1",
            patient_id=patient.id,
            assessment_id=course.assessments[0].id,
            kind=NotificationKind.NEW_LINK,
            channel=patient.preferred_channel,
            send_after=night,
            created_at=night,
        )
    )
    db.session.commit()
    report = run(night)
    sent = [m for m in channel.sent if m.idempotency_key == "request:1"]
    assert len(sent) == 1
    assert report.sent >= 1


def test_a_missing_contact_is_skipped_with_its_reason(world: World, channel: Recorder, run) -> None:  # type: ignore[no-untyped-def]
    patient = add_patient(world.clinic_a, "GONE")
    enroll(world, patient)
    patient.email = None
    db.session.commit()
    report = run(local("2027-01-04", "10:00"))
    assert report.skipped == {"no_contact": 1}
    assert channel.sent == []
