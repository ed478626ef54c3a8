"""What coordinators see and do about messages: the worklist's failed and uncertain messages
(mark as sent, send again), "Send now" for an invitation, and the message history of the course
page and the patient page. Through the pages, checked in the database."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from proms.admin.enrollment import enroll
from proms.admin.models import Channel, Enrollment, EnrollmentStatus, Patient
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db, utcnow
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from tests.helpers import PASSWORD, World, add_patient, csrf_token, patient_today
from tests.live import Server, at_once, serve

StaffClient = Callable[[StaffUser], FlaskClient]

FAILED_REASON = "SMTP RCPT refused: 550 mailbox unavailable"
LAPSED = "the scheduler stopped while sending: it is not known whether it went"


# Building courses and messages ------------------------------------------------------------------


def _course(world: World, patient: Patient, days_ahead: int = 3) -> Enrollment:
    """A course whose baseline is open now (it opens 14 days before day 0)."""
    protocol = world.protocol_a if patient.clinic_id == world.clinic_a.id else world.protocol_b
    course = enroll(
        db.session,
        patient,
        protocol,
        patient_today(patient) + dt.timedelta(days=days_ahead),
        now=utcnow(),
    )
    db.session.flush()
    return course


def _message(course: Enrollment, kind: str = "invite", number: int = 0, point: int = 0):  # type: ignore[no-untyped-def]
    """The planned row of one time point's invitation or reminder."""
    assessment = course.assessments[point]
    return db.session.scalars(
        sa.select(Notification).where(
            Notification.assessment_id == assessment.id,
            Notification.idempotency_key.like(f"%:{kind}:{number}:%"),
        )
    ).one()


def _failed(row: Notification, attempts: int = 5) -> Notification:
    _went(row, utcnow() - dt.timedelta(hours=1))
    row.status = NotificationStatus.FAILED
    row.attempts = attempts
    row.last_error = FAILED_REASON
    return row


def _unknown(row: Notification, handed_over_at: dt.datetime) -> Notification:
    _went(row, handed_over_at)
    row.status = NotificationStatus.UNKNOWN
    row.attempts = 1
    row.claimed_at = row.handed_over_at = handed_over_at
    row.last_error = LAPSED
    return row


def _sent(row: Notification, at: dt.datetime, delivery: str | None = None) -> Notification:
    _went(row, at)
    row.status = NotificationStatus.SENT
    row.attempts = 1
    row.handed_over_at = row.sent_at = at
    row.delivery_status = delivery
    return row


def _went(row: Notification, at: dt.datetime) -> None:
    """A message tried at `at` was due by then."""
    row.send_after = min(row.send_after, at)


def _count(*where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(Notification).where(*where)
    return db.session.scalar(query) or 0


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def _section(body: str, key: str) -> str:
    start = body.index(f'<section id="{key}"')
    return body[start : body.index("</section>", start)]


def _post(client: FlaskClient, path: str) -> tuple[int, str]:
    """POST with a CSRF token, then follow the redirect: (first status, the page after)."""
    response = client.post(path, data={"csrf_token": csrf_token(client, "/patients")})
    if response.status_code != 303:
        return response.status_code, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return 303, page


@pytest.fixture
def coordinator(world: World, staff_client: StaffClient) -> FlaskClient:
    return staff_client(world.user("a", Role.COORDINATOR))


# The worklist -----------------------------------------------------------------------------------


def test_the_worklist_lists_failed_uncertain_and_undelivered_messages(
    world: World, coordinator: FlaskClient
) -> None:
    now = utcnow()
    failing, unsure, texted = world.patients_a
    _failed(_message(_course(world, failing)))
    _unknown(_message(_course(world, unsure)), now - dt.timedelta(minutes=30))
    texted.phone = "+12165550123"
    undelivered = _message(_course(world, texted))
    undelivered.channel = Channel.SMS
    _sent(undelivered, now - dt.timedelta(hours=1), delivery="undelivered")
    decided = add_patient(world.clinic_a, "DECIDED", family_name="Decided")
    resolved = _failed(_message(_course(world, decided)))
    resolved.resolution, resolved.resolved_at = "marked_sent", now
    delivered = add_patient(world.clinic_a, "FINE", family_name="Fine")
    _sent(_message(_course(world, delivered)), now, delivery="delivered")
    other = world.patients_b[0]
    _failed(_message(_course(world, other)))
    db.session.commit()

    body = coordinator.get("/worklist").get_data(as_text=True)
    section = _section(body, "messages")
    for patient in (failing, unsure, texted):
        assert patient.family_name in section
    for patient in (decided, delivered, other):
        assert patient.family_name not in section
    assert "Invitation (Baseline) by email" in section
    assert f"Failed after 5 tries: {FAILED_REASON}" in section
    assert "The scheduler stopped while sending; it may have arrived." in section
    assert "Invitation (Baseline) by text message" in section
    assert "Sent, but the phone company reported it undelivered." in section
    assert section.count("It arrived: mark as sent") == 3
    assert section.count("It did not arrive: send again") == 3
    assert other.family_name not in body


def test_marking_an_uncertain_message_sent_records_when_it_went(
    world: World, coordinator: FlaskClient
) -> None:
    handed = utcnow() - dt.timedelta(minutes=40)
    row = _unknown(_message(_course(world, world.patients_a[0])), handed)
    db.session.commit()

    status, page = _post(coordinator, f"/messages/{row.id}/mark-sent")
    assert status == 303
    assert "Invitation marked as sent." in page
    assert '<section id="messages"' not in page  # nothing left to decide
    db.session.refresh(row)
    assert row.status is NotificationStatus.SENT
    assert row.sent_at == handed
    assert row.resolution == "marked_sent"
    assert row.resolved_at is not None
    (event,) = _events("notification.marked_sent")
    assert event.patient_id == row.patient_id
    assert event.detail["notification_id"] == row.id
    assert event.detail["before"]["status"] == "unknown"
    assert event.detail["after"]["status"] == "sent"
    assert event.detail["after"]["resolution"] == "marked_sent"


def test_marking_a_failed_message_sent_keeps_its_status(
    world: World, coordinator: FlaskClient
) -> None:
    row = _failed(_message(_course(world, world.patients_a[0]), "reminder", 1))
    db.session.commit()

    status, page = _post(coordinator, f"/messages/{row.id}/mark-sent")
    assert status == 303
    assert "Reminder 1 marked as sent." in page
    db.session.refresh(row)
    assert row.status is NotificationStatus.FAILED  # the provider did refuse it
    assert row.sent_at is None
    assert row.resolution == "marked_sent"
    # Deciding twice: refused, with the reason.
    status, page = _post(coordinator, f"/messages/{row.id}/mark-sent")
    assert status == 303
    assert "This message was already marked as sent." in page
    assert len(_events("notification.marked_sent")) == 1


def test_a_message_that_did_not_fail_cannot_be_decided(
    world: World, coordinator: FlaskClient
) -> None:
    row = _message(_course(world, world.patients_a[0]))  # pending
    db.session.commit()
    for action in ("mark-sent", "resend"):
        status, page = _post(coordinator, f"/messages/{row.id}/{action}")
        assert status == 303
        assert "This message did not fail: there is nothing to decide." in page
    db.session.refresh(row)
    assert row.status is NotificationStatus.PENDING
    assert row.resolution is None
    assert _count(Notification.kind == NotificationKind.NEW_LINK) == 0


def test_sending_again_queues_one_new_link(world: World, coordinator: FlaskClient) -> None:
    patient = world.patients_a[0]
    patient.phone = "+12165550123"
    row = _message(_course(world, patient), "reminder", 1)
    row.channel = Channel.SMS
    _failed(row)
    db.session.commit()

    before = utcnow()
    status, page = _post(coordinator, f"/messages/{row.id}/resend")
    assert status == 303
    assert "A new link goes by text message within a minute." in page
    fresh = db.session.scalars(
        sa.select(Notification).where(Notification.kind == NotificationKind.NEW_LINK)
    ).one()
    assert fresh.idempotency_key == f"notification:{row.id}:resend"
    assert fresh.channel is Channel.SMS
    assert fresh.status is NotificationStatus.PENDING
    assert fresh.patient_id == row.patient_id
    assert fresh.assessment_id == row.assessment_id
    assert before <= fresh.send_after <= utcnow()
    db.session.refresh(row)
    assert row.resolution == "resent"
    assert row.resolved_at is not None
    (event,) = _events("notification.resent")
    assert event.detail["new_notification_id"] == fresh.id
    assert event.detail["after"]["resolution"] == "resent"
    # Not a patient's request: the worklist does not ask anyone to act on it.
    body = coordinator.get("/worklist").get_data(as_text=True)
    assert 'id="new_link"' not in body
    assert 'id="messages"' not in body

    # A second click: refused, still one new link.
    status, page = _post(coordinator, f"/messages/{row.id}/resend")
    assert status == 303
    assert "This message was already sent again." in page
    assert _count(Notification.kind == NotificationKind.NEW_LINK) == 1


def test_sending_again_uses_the_contact_still_on_file(
    world: World, coordinator: FlaskClient
) -> None:
    moved, unreachable = world.patients_a[:2]
    by_text = _message(_course(world, moved))
    by_text.channel = Channel.SMS  # their mobile has since been removed; the email is there
    _failed(by_text)
    nowhere = _failed(_message(_course(world, unreachable)))
    unreachable.email = None
    db.session.commit()

    status, page = _post(coordinator, f"/messages/{by_text.id}/resend")
    assert status == 303
    assert "A new link goes by email within a minute." in page
    fresh = db.session.scalars(
        sa.select(Notification).where(Notification.kind == NotificationKind.NEW_LINK)
    ).one()
    assert fresh.channel is Channel.EMAIL

    body = coordinator.get("/worklist").get_data(as_text=True)
    assert "No new link: no email address or mobile number is on file" in body
    status, page = _post(coordinator, f"/messages/{nowhere.id}/resend")
    assert status == 303
    assert "No email address or mobile number is on file" in page
    assert _count(Notification.kind == NotificationKind.NEW_LINK) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("closed", "The questionnaire has closed, so a new link would not work."),
        ("answered", "The patient has answered the questionnaire since."),
        ("withdrawn", "The course was withdrawn"),
        ("opted_out", "The patient opted out of messages."),
    ],
)
def test_sending_again_is_refused_when_a_link_would_not_help(
    world: World, coordinator: FlaskClient, change: str, reason: str
) -> None:
    patient = world.patients_a[0]
    course = _course(world, patient)
    row = _failed(_message(course))
    baseline: Assessment = course.assessments[0]
    now = utcnow()
    if change == "closed":
        baseline.opens_at = now - dt.timedelta(days=10)
        baseline.due_at = now - dt.timedelta(days=3)
        baseline.closes_at = now - dt.timedelta(days=1)
    elif change == "answered":
        baseline.status, baseline.completed_at = AssessmentStatus.COMPLETED, now
    elif change == "withdrawn":
        course.status, course.withdrawn_at = EnrollmentStatus.WITHDRAWN, now
        course.withdrawal_reason = "moved away"
    else:
        patient.opted_out_at, patient.opt_out_reason = now, "asked"
    db.session.commit()

    body = coordinator.get("/worklist").get_data(as_text=True)
    section = _section(body, "messages")
    assert "It did not arrive: send again" not in section
    assert "No new link:" in section
    assert "It arrived: mark as sent" in section  # that decision is still there to make
    status, page = _post(coordinator, f"/messages/{row.id}/resend")
    assert status == 303
    assert reason in page
    assert _count(Notification.kind == NotificationKind.NEW_LINK) == 0
    db.session.refresh(row)
    assert row.resolution is None
    assert not _events("notification.resent")


# Send now ---------------------------------------------------------------------------------------


def test_send_now_brings_an_open_questionnaires_invitation_forward(
    world: World, coordinator: FlaskClient
) -> None:
    course = _course(world, world.patients_a[0])
    invite = _message(course)
    later = utcnow() + dt.timedelta(hours=5)
    invite.send_after = invite.next_attempt_at = later  # held back (quiet hours, the daily cap)
    db.session.commit()

    page = coordinator.get(f"/enrollments/{course.id}").get_data(as_text=True)
    messages = _section(page, "messages")
    assert messages.count("Send now") == 1  # the open baseline's invitation, nothing else
    before = utcnow()
    status, page = _post(coordinator, f"/messages/{invite.id}/send-now")
    assert status == 303
    assert "The invitation goes" in page
    db.session.refresh(invite)
    assert before <= invite.send_after <= utcnow()
    assert invite.next_attempt_at is None
    assert invite.status is NotificationStatus.PENDING
    (event,) = _events("notification.sent_now")
    assert event.detail["notification_id"] == invite.id
    assert "send_after" in event.detail["after"]
    # Due now: no second button, and a second click changes nothing.
    page = coordinator.get(f"/enrollments/{course.id}").get_data(as_text=True)
    assert "Send now" not in _section(page, "messages")
    status, page = _post(coordinator, f"/messages/{invite.id}/send-now")
    assert status == 303
    assert "This invitation is due already: it goes within a minute." in page
    assert len(_events("notification.sent_now")) == 1


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("future_invite", "The questionnaire is not open now"),
        ("reminder", "Only an invitation can be sent now."),
        ("sent_invite", "This invitation is not waiting to be sent."),
        ("due_invite", "This invitation is due already: it goes within a minute."),
    ],
)
def test_send_now_is_refused_otherwise(
    world: World, coordinator: FlaskClient, which: str, reason: str
) -> None:
    course = _course(world, world.patients_a[0])
    if which == "future_invite":
        row = _message(course, point=2)  # the month-1 questionnaire opens in weeks
    elif which == "reminder":
        row = _message(course, "reminder", 1)
    elif which == "due_invite":
        row = _message(course)
        row.send_after = utcnow() - dt.timedelta(minutes=1)  # the scheduler is about to send it
    else:
        row = _sent(_message(course), utcnow())
    send_after = row.send_after
    db.session.commit()

    status, page = _post(coordinator, f"/messages/{row.id}/send-now")
    assert status == 303
    assert reason in page
    db.session.refresh(row)
    assert row.send_after == send_after
    assert not _events("notification.sent_now")


# Roles and scoping ------------------------------------------------------------------------------

ACTIONS = ("mark-sent", "resend", "send-now")


@pytest.mark.parametrize("action", ACTIONS)
def test_only_coordinators_of_the_clinic_act(
    world: World, staff_client: StaffClient, action: str
) -> None:
    row = _failed(_message(_course(world, world.patients_a[0])))
    db.session.commit()
    path = f"/messages/{row.id}/{action}"
    for user, expected in (
        (world.user("a", Role.CLINICIAN), 403),
        (world.user("b", Role.COORDINATOR), 404),
        (world.user("b", Role.ADMIN), 404),
    ):
        client = staff_client(user)
        token = csrf_token(client, "/patients")
        assert client.post(path, data={"csrf_token": token}).status_code == expected
    db.session.refresh(row)
    assert row.resolution is None
    assert _count(Notification.kind == NotificationKind.NEW_LINK) == 0


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("bad_id", ["999999", "2147483648", "0", "-1", "abc", "1.5"])
def test_a_bad_id_is_not_found(coordinator: FlaskClient, action: str, bad_id: str) -> None:
    token = csrf_token(coordinator, "/patients")
    response = coordinator.post(f"/messages/{bad_id}/{action}", data={"csrf_token": token})
    assert response.status_code == 404


def test_actions_need_a_form_token_and_a_sign_in(
    world: World, coordinator: FlaskClient, client: FlaskClient
) -> None:
    row = _failed(_message(_course(world, world.patients_a[0])))
    db.session.commit()
    assert coordinator.post(f"/messages/{row.id}/mark-sent").status_code == 400
    assert coordinator.get(f"/messages/{row.id}/mark-sent").status_code == 405
    assert client.post(f"/messages/{row.id}/mark-sent").status_code in (302, 400)
    db.session.refresh(row)
    assert row.resolution is None


# Message history --------------------------------------------------------------------------------


def _history_course(world: World, patient: Patient) -> Enrollment:
    """A course whose messages have met every fate."""
    now = utcnow()
    course = _course(world, patient)
    _sent(_message(course), now - dt.timedelta(days=2), delivery="delivered")
    _failed(_message(course, "reminder", 1))
    end = course.assessments[1]
    for number, reason in enumerate(("completed", "superseded", "patient_cap")):
        row = _message(course, "invite" if number == 0 else "reminder", number, point=1)
        row.status, row.cancel_reason = NotificationStatus.CANCELLED, reason
    month_1 = _message(course, point=2)
    _unknown(month_1, now - dt.timedelta(hours=3))
    rows = [_message(course, "reminder", n, point=3) for n in (1, 2)]
    rows[0].status, rows[0].cancel_reason = NotificationStatus.CANCELLED, "opted_out"
    rows[1].status, rows[1].cancel_reason = NotificationStatus.CANCELLED, "withdrawn"
    resend = Notification(
        idempotency_key="notification:1:resend",
        patient_id=patient.id,
        assessment_id=end.id,
        kind=NotificationKind.NEW_LINK,
        channel=Channel.EMAIL,
        send_after=now,
    )
    db.session.add(resend)
    return course


def test_the_course_page_tells_each_messages_fate(world: World, coordinator: FlaskClient) -> None:
    course = _history_course(world, world.patients_a[0])
    db.session.commit()
    page = coordinator.get(f"/enrollments/{course.id}").get_data(as_text=True)
    messages = _section(page, "messages")
    total = _count(Notification.patient_id == course.patient_id)
    assert messages.count("<li ") == total
    for words in (
        "Invitation</span>, Baseline · email",
        "Reminder 1</span>, Baseline",
        "Reminder 2</span>, End of course",
        "New link (sent again)</span>, End of course",
        ">delivered<",
        ">failed<",
        FAILED_REASON,
        ">may not have arrived<",
        "the scheduler stopped while sending; it may have arrived",
        ">not sent<",
        "the questionnaire was answered",
        "a later reminder went instead",
        "the patient&#39;s daily limit of messages lasted until the window closed",
        "the patient opted out of messages",
        "the course was withdrawn",
        ">planned<",
        "Decide on the worklist",
    ):
        assert words in messages, words
    # In the patient's time (New York), in time order.
    times = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d) E[SD]T", messages)
    assert len(times) == total
    assert times == sorted(times)


def test_the_patient_page_shows_the_latest_messages_first(
    world: World, staff_client: StaffClient
) -> None:
    patient = world.patients_a[0]
    course = _history_course(world, patient)
    now = utcnow()
    # 25 earlier messages whose time has come (cancelled): only 20 rows fit.
    for n in range(25):
        db.session.add(
            Notification(
                idempotency_key=f"old:{n}",
                patient_id=patient.id,
                assessment_id=course.assessments[0].id,
                kind=NotificationKind.REMINDER,
                channel=Channel.EMAIL,
                send_after=now - dt.timedelta(days=30, minutes=n),
                status=NotificationStatus.CANCELLED,
                cancel_reason="rescheduled",
            )
        )
    db.session.commit()
    tried = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.UNKNOWN)
    happened = _count(
        Notification.patient_id == patient.id,
        sa.or_(Notification.send_after <= now, Notification.status.in_(tried)),
    )
    upcoming = _count(
        Notification.patient_id == patient.id,
        Notification.status == NotificationStatus.PENDING,
        Notification.send_after > now,
    )

    for role in (Role.COORDINATOR, Role.CLINICIAN):
        client = staff_client(world.user("a", role))
        page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
        messages = _section(page, "messages")
        assert messages.count("<li ") == 20
        assert f"{happened - 20} older messages not shown" in messages
        assert f"({upcoming - 1} more planned after it)" in messages
        assert "Next: " in messages
        items = messages.split("<li ")[1:]
        assert "New link (sent again)" in items[0]  # the most recent first
        assert "the window moved" in items[-1]
        assert ("each course page lists" in messages) is (role is Role.COORDINATOR)


def test_a_patient_without_messages_says_so(world: World, coordinator: FlaskClient) -> None:
    patient = world.patients_a[0]
    page = coordinator.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "No message has been sent yet." in _section(page, "messages")


# Two clicks at once -----------------------------------------------------------------------------


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    app = make_app(SESSION_COOKIE_SECURE=False, LOGIN_RATE_LIMIT="10000 per minute")
    with serve(app) as live, app.app_context():
        yield live


def test_send_again_clicked_twice_at_once_makes_one_new_link(server: Server, world: World) -> None:
    rows = [_failed(_message(_course(world, patient))) for patient in world.patients_a]
    db.session.commit()
    for row in rows:
        browsers = [server.browser() for _ in range(2)]
        for browser in browsers:
            browser.get("/login")
            email = world.user("a", Role.COORDINATOR).email
            assert browser.post("/login", {"email": email, "password": PASSWORD}).status == 302
            browser.get("/patients")  # a page with a form: its CSRF token
        path = f"/messages/{row.id}/resend"
        with server.slow_database():
            replies = at_once(*(lambda b=b, p=path: b.post(p) for b in browsers))
        assert [r.status for r in replies] == [303, 303], [r.body[:300] for r in replies]
        with db.engine.connect() as connection:
            made = connection.scalar(
                sa.select(sa.func.count())
                .select_from(Notification)
                .where(Notification.idempotency_key == f"notification:{row.id}:resend")
            )
        assert made == 1
        db.session.rollback()
        assert len(_events("notification.resent")) == rows.index(row) + 1
