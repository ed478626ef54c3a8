"""SmsSender against a local server speaking Twilio's Messages API, and the webhook signature."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from proms.notify.base import OutgoingMessage, Rejected, Uncertain
from proms.notify.sms import SmsSender, sign, valid_signature
from tests.notify.fake_twilio import FakeTwilio
from tests.notify.helpers import PATIENT_PHONE, sms_message

MakeSender = Callable[..., SmsSender]
SID = re.compile(r"SM[0-9a-f]{32}")


@pytest.fixture
def make_sender(fake_twilio: FakeTwilio) -> Iterator[MakeSender]:
    """SmsSenders for the fake (From number, 5 s timeout unless told), closed after the test."""
    senders: list[SmsSender] = []

    def factory(**options: Any) -> SmsSender:
        values: dict[str, Any] = {
            "base_url": fake_twilio.base_url,
            "account_sid": fake_twilio.account_sid,
            "auth_token": fake_twilio.auth_token,
            "from_number": fake_twilio.from_number,
            "timeout": 5.0,
        }
        values.update(options)
        sender = SmsSender(**values)
        senders.append(sender)
        return sender

    yield factory
    for sender in senders:
        sender.close()


def _assert_no_patient_data(reason: str, message: OutgoingMessage) -> None:
    assert message.to not in reason
    assert message.to.lstrip("+") not in reason
    assert message.text not in reason


# Sent -------------------------------------------------------------------------------------------


def test_sends_the_form_twilio_documents(fake_twilio: FakeTwilio, make_sender: MakeSender) -> None:
    message = sms_message(status_callback_url="http://127.0.0.1:9/hooks/twilio/status")
    sid = make_sender().send(message)

    assert SID.fullmatch(sid)
    [sent] = fake_twilio.messages
    assert sent.sid == sid
    assert sent.form == {
        "To": PATIENT_PHONE,
        "Body": message.text,
        "From": fake_twilio.from_number,
        "StatusCallback": "http://127.0.0.1:9/hooks/twilio/status",
    }


def test_a_messaging_service_replaces_the_from_number(
    fake_twilio: FakeTwilio, make_sender: MakeSender
) -> None:
    sender = make_sender(from_number="", messaging_service_sid=fake_twilio.messaging_service_sid)
    sender.send(sms_message())

    [sent] = fake_twilio.messages
    assert sent.messaging_service_sid == fake_twilio.messaging_service_sid
    assert "From" not in sent.form
    assert "StatusCallback" not in sent.form


def test_accented_text_arrives_intact(fake_twilio: FakeTwilio, make_sender: MakeSender) -> None:
    text = "Clínica Lagos: José, ¿qué tal se encuentra? Responda PARAR para darse de baja"
    make_sender().send(sms_message(text=text))

    assert fake_twilio.messages[0].body == text


def test_several_messages_on_one_sender(fake_twilio: FakeTwilio, make_sender: MakeSender) -> None:
    sender = make_sender()
    sids = {sender.send(sms_message(notification_id=n)) for n in range(3)}

    assert len(sids) == 3
    assert {sent.sid for sent in fake_twilio.messages} == sids


def test_a_sender_needs_a_from_number_or_a_messaging_service() -> None:
    with pytest.raises(ValueError, match="Messaging Service"):
        SmsSender("http://127.0.0.1:9", "AC1", "token")


def test_email_is_not_sms(make_sender: MakeSender) -> None:
    with pytest.raises(ValueError, match="text messages"):
        make_sender().send(sms_message(channel="email"))


# Refused: Rejected ------------------------------------------------------------------------------


def test_an_invalid_number_is_rejected_for_good_without_the_number(
    fake_twilio: FakeTwilio, make_sender: MakeSender
) -> None:
    message = sms_message(to="+1 216 555 0123")  # not E.164: Twilio's 21211 quotes it
    with pytest.raises(Rejected) as refused:
        make_sender().send(message)

    assert refused.value.permanent is True
    assert refused.value.reason.startswith("Twilio 400, error 21211: The 'To' number")
    _assert_no_patient_data(refused.value.reason, message)
    assert "216" not in refused.value.reason
    assert fake_twilio.messages == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, 21610), (400, 21614), (404, 20404), (403, None)],
)
def test_other_client_errors_are_rejected_for_good(
    fake_twilio: FakeTwilio, make_sender: MakeSender, status: int, code: int | None
) -> None:
    fake_twilio.answer(status, code=code)
    message = sms_message()
    with pytest.raises(Rejected) as refused:
        make_sender().send(message)

    assert refused.value.permanent is True
    assert refused.value.reason.startswith(f"Twilio {status}")
    if code is not None:
        assert f"error {code}" in refused.value.reason
    _assert_no_patient_data(refused.value.reason, message)


@pytest.mark.parametrize("status", [429, 503])
def test_slow_down_and_unavailable_are_rejected_for_now(
    fake_twilio: FakeTwilio, make_sender: MakeSender, status: int
) -> None:
    fake_twilio.answer(status)
    sender = make_sender()
    with pytest.raises(Rejected) as refused:
        sender.send(sms_message())
    assert refused.value.permanent is False

    sender.send(sms_message())  # the next try goes through
    assert len(fake_twilio.messages) == 1


def test_wrong_credentials_are_rejected_for_now(
    fake_twilio: FakeTwilio, make_sender: MakeSender
) -> None:
    # Our configuration, not the message: once the token is fixed the message can go.
    with pytest.raises(Rejected) as refused:
        make_sender(auth_token="not-the-token").send(sms_message())

    assert refused.value.permanent is False
    assert "error 20003" in refused.value.reason
    assert fake_twilio.messages == []


def test_twilio_down_is_rejected_for_now(fake_twilio: FakeTwilio, make_sender: MakeSender) -> None:
    sender = make_sender()
    fake_twilio.stop()

    with pytest.raises(Rejected) as refused:
        sender.send(sms_message())

    assert refused.value.permanent is False
    assert "cannot connect" in refused.value.reason


# Maybe sent: Uncertain --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_and_gateway_errors_are_uncertain(
    fake_twilio: FakeTwilio, make_sender: MakeSender, status: int
) -> None:
    fake_twilio.answer(status)
    message = sms_message()
    with pytest.raises(Uncertain) as uncertain:
        make_sender().send(message)

    assert f"Twilio {status}" in uncertain.value.reason
    _assert_no_patient_data(uncertain.value.reason, message)


def test_no_answer_in_time_is_uncertain(fake_twilio: FakeTwilio, make_sender: MakeSender) -> None:
    fake_twilio.hang()
    with pytest.raises(Uncertain) as uncertain:
        make_sender(timeout=0.5).send(sms_message())

    assert "ReadTimeout" in uncertain.value.reason
    # And indeed the message exists at Twilio: sending it again would make a duplicate.
    assert len(fake_twilio.messages) == 1
    fake_twilio.release()


def test_a_connection_closed_before_the_answer_is_uncertain(
    fake_twilio: FakeTwilio, make_sender: MakeSender
) -> None:
    fake_twilio.drop()
    with pytest.raises(Uncertain):
        make_sender().send(sms_message())

    assert len(fake_twilio.messages) == 1


# Status callbacks and signatures ----------------------------------------------------------------


class _Receiver:
    """A webhook endpoint on loopback that checks Twilio's signature, as the app's view will."""

    def __init__(self, auth_token: str) -> None:
        self.received: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                params = {name: values[-1] for name, values in parse_qs(body).items()}
                url = f"{receiver.origin}{self.path}"
                signature = self.headers.get("X-Twilio-Signature")
                ok = valid_signature(auth_token, url, params, signature)
                if ok:
                    receiver.received.append(params)
                self.send_response(204 if ok else 403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.origin}/hooks/twilio/status?x=1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver(fake_twilio: FakeTwilio) -> Iterator[_Receiver]:
    endpoint = _Receiver(fake_twilio.auth_token)
    yield endpoint
    endpoint.close()


@pytest.mark.parametrize(
    ("status", "error_code"), [("delivered", None), ("undelivered", 30003), ("failed", 30008)]
)
def test_a_signed_status_callback_round_trip(
    fake_twilio: FakeTwilio,
    make_sender: MakeSender,
    receiver: _Receiver,
    status: str,
    error_code: int | None,
) -> None:
    sid = make_sender().send(sms_message(status_callback_url=receiver.url))

    assert fake_twilio.post_status(sid, status, error_code=error_code) == 204

    [params] = receiver.received
    assert params["MessageSid"] == sid
    assert params["MessageStatus"] == status
    assert params.get("ErrorCode") == (str(error_code) if error_code else None)


def test_a_callback_signed_with_another_token_is_refused(
    make_sender: MakeSender, receiver: _Receiver
) -> None:
    other = FakeTwilio()
    with other:
        sender = make_sender(
            base_url=other.base_url,
            account_sid=other.account_sid,
            auth_token=other.auth_token,
        )
        sid = sender.send(sms_message(status_callback_url=receiver.url))
        assert other.post_status(sid, "delivered") == 403
    assert receiver.received == []


# Twilio's published example (twilio-samples/api-snippets, security/signature_validation/
# signature_validation.2.x.js and .3.x.js): auth token 12345, this URL and these parameters.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def _twilio_params(number: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": number,
        "Digits": "1234",
        "From": number,
        "To": "+18005551212",
    }


@pytest.mark.parametrize(
    ("number", "signature"),
    [
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
    ],
)
def test_twilios_published_signatures(number: str, signature: str) -> None:
    params = _twilio_params(number)
    assert sign("12345", TWILIO_URL, params) == signature
    assert valid_signature("12345", TWILIO_URL, params, signature)


def test_a_tampered_request_fails_the_signature() -> None:
    params = _twilio_params("+14158675309")
    signature = sign("12345", TWILIO_URL, params)

    assert not valid_signature("12345", TWILIO_URL, {**params, "Digits": "1235"}, signature)
    assert not valid_signature("12345", TWILIO_URL, {**params, "Extra": ""}, signature)
    assert not valid_signature("12345", TWILIO_URL.replace("foo=1", "foo=2"), params, signature)
    assert not valid_signature("54321", TWILIO_URL, params, signature)
    assert not valid_signature("12345", TWILIO_URL, params, signature[:-2] + "A=")
    assert not valid_signature("12345", TWILIO_URL, params, "")
    assert not valid_signature("12345", TWILIO_URL, params, None)
    assert not valid_signature("", TWILIO_URL, params, sign("", TWILIO_URL, params))


def test_the_signature_holds_with_or_without_the_default_port() -> None:
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    with_port = "https://proms.example.org:443/hooks/twilio/status"
    without = "https://proms.example.org/hooks/twilio/status"

    assert valid_signature("t", without, params, sign("t", with_port, params))
    assert valid_signature("t", with_port, params, sign("t", without, params))
    assert not valid_signature(
        "t",
        without,
        params,
        sign("t", "https://proms.example.org:8443/hooks/twilio/status", params),
    )
