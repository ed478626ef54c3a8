"""A local HTTP server that speaks Twilio's Messages API, for any test module.

    with FakeTwilio() as twilio:
        sender = SmsSender(twilio.base_url, twilio.account_sid, twilio.auth_token,
                           from_number=twilio.from_number)
        sid = sender.send(message)
        twilio.messages[0].body
        twilio.post_status(sid, "delivered")     # a signed callback to the StatusCallback URL

What it checks, as Twilio does (https://www.twilio.com/docs/messaging/api/message-resource):
POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP basic auth (the same account
sid), a form with To (E.164), Body, and From or MessagingServiceSid. It answers 201 with the
message as JSON ("SM" + 32 hex digits, status "queued", or "accepted" through a Messaging
Service), or Twilio's error JSON ({"code", "message", "more_info", "status"}).

On demand, for the next requests: `answer(400, code=21211)` (an error), `hang()` (the message is
created and the answer comes only after `release()` or `stop()`: a read timeout), `drop()` (the
message is created and the connection closed without an answer).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import re
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from proms.notify import gsm
from proms.notify.sms import API_VERSION, sign

LOOPBACK = "127.0.0.1"
E164 = re.compile(r"\+[1-9]\d{6,14}")
PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<sid>AC[0-9a-f]{{32}})/Messages\.json")

# Twilio's own wording for the errors the fake gives (https://www.twilio.com/docs/api/errors).
ERRORS: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}
_DEFAULT_CODES = {400: 21211, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True, slots=True)
class SentSms:
    """A message the fake created."""

    sid: str
    to: str
    body: str
    from_number: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    form: dict[str, str]


@dataclass(frozen=True, slots=True)
class StatusCallback:
    """A status callback as Twilio would post it: URL, form fields, X-Twilio-Signature."""

    url: str
    params: dict[str, str]
    signature: str


@dataclass(frozen=True, slots=True)
class _Behaviour:
    kind: str  # "answer", "hang" or "drop"
    status: int = 201
    code: int | None = None
    message: str | None = None


@dataclass
class _State:
    account_sid: str
    auth_token: str
    messages: list[SentSms] = field(default_factory=list)
    requests: int = 0
    script: deque[_Behaviour] = field(default_factory=deque)
    released: threading.Event = field(default_factory=threading.Event)
    hung: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: set[socket.socket] = field(default_factory=set)


class FakeTwilio:
    """The fake API in a thread on 127.0.0.1; `base_url` goes in TWILIO_BASE_URL."""

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str = "+15005550006",
    ) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.from_number = from_number
        self.messaging_service_sid = "MG" + secrets.token_hex(16)
        self._state = _State(self.account_sid, self.auth_token)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not running"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def messages(self) -> list[SentSms]:
        with self._state.lock:
            return list(self._state.messages)

    @property
    def requests(self) -> int:
        """How many requests reached the Messages endpoint (good or not)."""
        with self._state.lock:
            return self._state.requests

    @property
    def hung(self) -> threading.Event:
        """Set once a request is being held by `hang()`."""
        return self._state.hung

    def start(self) -> None:
        assert self._server is None, "already running"
        self._state.released.clear()
        server = _Server((LOOPBACK, 0), _Handler)
        server.state = self._state
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def stop(self) -> None:
        """Release held requests, close every connection, stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        self._state.released.set()
        server.shutdown()
        with self._state.lock:
            for connection in self._state.connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins the request threads
        assert self._thread is not None
        self._thread.join()
        self._thread = None

    def answer(
        self, status: int, *, code: int | None = None, message: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests with this error (Twilio's JSON)."""
        for _ in range(times):
            self._state.script.append(_Behaviour("answer", status, code, message))

    def hang(self, times: int = 1) -> None:
        """Create the next message but answer only after `release()` or `stop()`."""
        for _ in range(times):
            self._state.script.append(_Behaviour("hang"))

    def drop(self, times: int = 1) -> None:
        """Create the next message, then close the connection without answering."""
        for _ in range(times):
            self._state.script.append(_Behaviour("drop"))

    def release(self) -> None:
        self._state.released.set()

    def status_callback(
        self, sid: str, status: str, *, error_code: int | None = None
    ) -> StatusCallback:
        """The signed callback Twilio would post for message `sid` reaching `status`
        (delivered, failed, undelivered, sent, ...)."""
        sent = next((m for m in self.messages if m.sid == sid), None)
        assert sent is not None, f"no message {sid}"
        assert sent.status_callback, f"message {sid} was sent without a StatusCallback"
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": sent.from_number or self.from_number,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": sent.to,
        }
        if sent.messaging_service_sid:
            params["MessagingServiceSid"] = sent.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        url = sent.status_callback
        return StatusCallback(url, params, sign(self.auth_token, url, params))

    def post_status(self, sid: str, status: str, *, error_code: int | None = None) -> int:
        """Post the signed status callback to the message's StatusCallback URL (a server on
        loopback); the HTTP status it answered."""
        callback = self.status_callback(sid, status, error_code=error_code)
        response = httpx.post(
            callback.url,
            data=callback.params,
            headers={"X-Twilio-Signature": callback.signature},
            timeout=10,
        )
        return response.status_code

    def __enter__(self) -> FakeTwilio:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # Request threads are joined on close, so a stopped fake leaves nothing running.
    daemon_threads = False
    block_on_close = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out, closed) is what some tests do: not an error."""
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.state.lock:
            self.server.state.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what was recorded, not a log."""

    def do_GET(self) -> None:
        self._error(404, 20404)

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        match = PATH.fullmatch(self.path)
        if match is None:
            self._error(404, 20404)
            return
        with state.lock:
            state.requests += 1
        if not self._authorized(match["sid"]):
            self._error(401, 20003)
            return
        form = {name: values[-1] for name, values in parse_qs(raw.decode()).items()}
        problem = _invalid(form)
        if problem is not None:
            self._error(400, problem, to=form.get("To", ""))
            return
        behaviour = state.script.popleft() if state.script else _Behaviour("answer")
        if behaviour.kind == "answer" and behaviour.status != 201:
            self._error(behaviour.status, behaviour.code, behaviour.message)
            return
        resource = self._create(form)
        if behaviour.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour.kind == "hang":
            state.hung.set()
            state.released.wait(timeout=30)
        self._json(201, resource)

    def _authorized(self, path_sid: str) -> bool:
        state = self.server.state
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == state.account_sid == path_sid and password == state.auth_token

    def _create(self, form: dict[str, str]) -> dict[str, Any]:
        state = self.server.state
        sid = "SM" + secrets.token_hex(16)
        via_service = form.get("MessagingServiceSid")
        sent = SentSms(
            sid=sid,
            to=form["To"],
            body=form["Body"],
            from_number=form.get("From"),
            messaging_service_sid=via_service,
            status_callback=form.get("StatusCallback"),
            form=form,
        )
        with state.lock:
            state.messages.append(sent)
        now = format_datetime(dt.datetime.now(dt.UTC), usegmt=False)
        uri = f"/{API_VERSION}/Accounts/{state.account_sid}/Messages/{sid}"
        return {
            "account_sid": state.account_sid,
            "api_version": API_VERSION,
            "body": sent.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sent.from_number,
            "messaging_service_sid": via_service,
            "num_media": "0",
            # A Messaging Service picks the sender later, so Twilio reports 0 segments at first.
            "num_segments": "0" if via_service else str(gsm.segments(sent.body)[1]),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if via_service else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": sent.to,
            "uri": f"{uri}.json",
        }

    def _error(
        self, status: int, code: int | None, message: str | None = None, *, to: str = ""
    ) -> None:
        code = code or _DEFAULT_CODES.get(status, 20500)
        text = message or ERRORS.get(code, "Error").format(to=to)
        self._json(
            status,
            {
                "code": code,
                "message": text,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    def _json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _invalid(form: dict[str, str]) -> int | None:
    """Twilio's error code for a form it would refuse, None when it would take it."""
    if not form.get("To"):
        return 21604
    if not E164.fullmatch(form["To"]):
        return 21211
    if not form.get("Body"):
        return 21602
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return 21603
    return None


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake Messages API on loopback for the test."""
    with FakeTwilio() as twilio:
        yield twilio
