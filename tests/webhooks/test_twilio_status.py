"""Delivery reports: each stored on its message, in the order of a message's life whatever the
order they arrive in; reports for messages we do not know, or not signed by Twilio, change
nothing. One test runs the whole path: our SMS sender, the local Twilio double, and its signed
callback to proms on a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from proms.admin.models import Patient
from proms.db import db
from proms.notify.base import OutgoingMessage
from proms.notify.sms import SmsSender
from proms.scheduling.models import Notification, NotificationStatus
from tests.helpers import World, add_patient
from tests.notify.fake_twilio import FakeTwilio
from tests.webhooks.helpers import (
    AUTH_TOKEN,
    add_sent_text,
    post_signed,
    status_report,
)

PATH = "/hooks/twilio/status"


@pytest.fixture
def patient(world: World) -> Patient:
    patient = add_patient(world.clinic_a, "S1", phone="+12165550123")
    db.session.commit()
    return patient


@pytest.fixture
def text(patient: Patient) -> Notification:
    row = add_sent_text(patient)
    db.session.commit()
    return row


def report(client: FlaskClient, sid: str, status: str, error_code: str | None = None) -> int:
    response = post_signed(client, PATH, status_report(sid, status, error_code))
    return response.status_code


def reload(row: Notification) -> Notification:
    db.session.refresh(row)
    return row


def test_delivered_is_stored_with_its_time(client: FlaskClient, text: Notification) -> None:
    assert report(client, text.provider_message_id or "", "delivered") == 204
    row = reload(text)
    assert row.delivery_status == "delivered"
    assert row.delivered_at is not None
    assert row.status is NotificationStatus.SENT, "the outbox status is the dispatcher's"
    assert row.last_error is None


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["queued", "sending", "sent", "delivered"], "delivered"),
        (["delivered", "sent"], "delivered"),
        (["delivered", "queued", "sending"], "delivered"),
        (["sent", "queued"], "sent"),
        (["undelivered", "sent"], "undelivered"),
        (["failed", "queued"], "failed"),
        (["sent", "failed", "delivered"], "failed"),  # the first final report stands
        (["delivered", "undelivered"], "delivered"),
        (["sending", "sent"], "sent"),
    ],
)
def test_reports_in_any_order_keep_the_latest_state(
    client: FlaskClient, text: Notification, reports: list[str], final: str
) -> None:
    for status in reports:
        assert report(client, text.provider_message_id or "", status) == 204
    row = reload(text)
    assert row.delivery_status == final
    assert (row.delivered_at is not None) == (final == "delivered")


def test_a_late_sent_keeps_the_delivery_time(client: FlaskClient, text: Notification) -> None:
    sid = text.provider_message_id or ""
    report(client, sid, "delivered")
    delivered_at = reload(text).delivered_at
    report(client, sid, "sent")
    report(client, sid, "delivered")  # Twilio repeats itself: nothing moves
    assert reload(text).delivered_at == delivered_at


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        ("undelivered", "30003", "provider reported undelivered (error 30003)"),
        ("failed", "30008", "provider reported failed (error 30008)"),
        ("failed", None, "provider reported failed"),
        ("undelivered", "not a code", "provider reported undelivered"),
    ],
)
def test_a_failed_delivery_says_so(
    client: FlaskClient, text: Notification, status: str, code: str | None, error: str
) -> None:
    assert report(client, text.provider_message_id or "", status, code) == 204
    row = reload(text)
    assert row.delivery_status == status
    assert row.last_error == error
    assert row.delivered_at is None


def test_other_messages_are_left_alone(
    client: FlaskClient, patient: Patient, text: Notification
) -> None:
    other = add_sent_text(patient)
    db.session.commit()
    report(client, text.provider_message_id or "", "failed", "30005")
    assert reload(other).delivery_status is None
    assert reload(other).last_error is None


@pytest.mark.parametrize("status", ["canceled", "partially_delivered", "receiving"])
def test_states_we_do_not_track_are_ignored(
    client: FlaskClient, text: Notification, status: str
) -> None:
    assert report(client, text.provider_message_id or "", status) == 204
    assert reload(text).delivery_status is None


def test_an_unknown_sid_is_accepted_and_changes_nothing(
    client: FlaskClient, text: Notification
) -> None:
    """Twilio retries errors: a report we cannot use is answered 2xx all the same."""
    assert report(client, "SM" + "f" * 32, "delivered") == 204
    assert reload(text).delivery_status is None


@pytest.mark.parametrize(
    "problem", ["no signature", "wrong token", "no sid", "no status", "odd sid", "GET"]
)
def test_bad_reports_are_refused(client: FlaskClient, text: Notification, problem: str) -> None:
    fields = status_report(text.provider_message_id or "", "delivered")
    if problem == "no signature":
        status = client.post(PATH, data=fields).status_code
    elif problem == "wrong token":
        status = post_signed(client, PATH, fields, token="c" * 32).status_code
    elif problem == "no sid":
        del fields["MessageSid"]
        status = post_signed(client, PATH, fields).status_code
    elif problem == "no status":
        del fields["MessageStatus"]
        status = post_signed(client, PATH, fields).status_code
    elif problem == "odd sid":
        fields["MessageSid"] = "SM' OR 1=1 --"
        status = post_signed(client, PATH, fields).status_code
    else:
        status = client.get(PATH).status_code
    assert status in {400, 403, 405}
    expected = {"no signature": 403, "wrong token": 403, "GET": 405}.get(problem, 400)
    assert status == expected
    assert reload(text).delivery_status is None


# The whole path: proms sends through the Twilio double, which calls back over HTTP ------------


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def served(make_app: Callable[..., Flask]) -> Iterator[tuple[Flask, str]]:
    """The app on a real server on loopback, with its address as PUBLIC_BASE_URL."""
    app = make_app(TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    # shutdown() waits for a poll: every 50 ms, not 0.5 s.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        with app.app_context():
            yield app, url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_twilios_own_callback_reaches_the_message(served: tuple[Flask, str], world: World) -> None:
    _, url = served
    patient = add_patient(world.clinic_a, "S2", phone="+12165550124")
    row = add_sent_text(patient, provider_message_id=None)
    db.session.commit()
    with FakeTwilio(auth_token=AUTH_TOKEN) as twilio:
        sender = SmsSender(
            twilio.base_url, twilio.account_sid, AUTH_TOKEN, from_number=twilio.from_number
        )
        try:
            sid = sender.send(
                OutgoingMessage(
                    notification_id=row.id,
                    idempotency_key=row.idempotency_key,
                    channel="sms",
                    to="+12165550124",
                    text="Clinic A: how are you?",
                    status_callback_url=f"{url}/hooks/twilio/status",
                )
            )
        finally:
            sender.close()
        row.provider_message_id = sid
        db.session.commit()
        assert twilio.post_status(sid, "sent") == 204
        assert twilio.post_status(sid, "undelivered", error_code=30003) == 204
        assert twilio.post_status(sid, "sent") == 204
    db.session.refresh(row)
    assert row.delivery_status == "undelivered"
    assert row.last_error == "provider reported undelivered (error 30003)"
