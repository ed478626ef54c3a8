"""Plain forms are refused by size and field count before anything parses them.

Anyone can post the patient pages and the sign-in form, so a 3 MB field or 380,000 empty fields
must cost a worker nothing but a 413; staff forms get a larger allowance. Nothing saved changes.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from proms.auth.models import LoginThrottle
from proms.db import db
from proms.errors import MESSAGES
from tests.helpers import PASSWORD, World, csrf_token

URLENCODED = "application/x-www-form-urlencoded"
TOO_LARGE = str(MESSAGES[413])


def throttle_rows() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(LoginThrottle)) or 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"email=a%40b.org&password=" + b"x" * (3 * 1024 * 1024), "a 3 MB field"),
        (b"&".join(b"f" for _ in range(380_000)), "380,000 fields"),
        (b"&".join(b"f%d=1" % n for n in range(60)), "60 small fields"),
    ],
)
def test_the_sign_in_form_refuses_large_bodies_before_parsing(
    app: Flask, world: World, body: bytes, why: str
) -> None:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data=body + b"&csrf_token=" + token.encode(), content_type=URLENCODED
    )
    assert response.status_code == 413, why
    assert TOO_LARGE in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert throttle_rows() == 0, "a refused body is not a sign-in attempt"


def test_a_patient_page_refuses_a_large_body(app: Flask) -> None:
    response = app.test_client().post(
        "/s/q/1", data=b"answer=" + b"1" * 20_000, content_type=URLENCODED
    )
    assert response.status_code == 413
    # The patient's error page, in words the patient can act on.
    assert TOO_LARGE in response.get_data(as_text=True)


def test_an_ordinary_sign_in_still_works_within_the_limits(app: Flask, world: World) -> None:
    client = app.test_client()
    response = client.post(
        "/login",
        data={
            "email": "clinician@a.example.org",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302


def test_staff_forms_have_the_larger_allowance(app: Flask, world: World) -> None:
    """A 20 KB search body (over the public limit) reaches the form's own validation."""
    client = app.test_client()
    client.post(
        "/login",
        data={
            "email": "clinician@a.example.org",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    token = csrf_token(client, "/patients")
    response = client.post(
        "/patients", data={"q": "x" * 20_000, "csrf_token": token}, content_type=URLENCODED
    )
    assert response.status_code == 400
    assert "Search for at most 100 characters." in response.get_data(as_text=True)
    over = client.post(
        "/patients", data={"q": "x" * 70_000, "csrf_token": token}, content_type=URLENCODED
    )
    assert over.status_code == 413


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def server(app: Flask) -> Iterator[tuple[str, int]]:
    live: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    # shutdown() waits for a poll: every 50 ms, not 0.5 s.
    thread = threading.Thread(
        target=live.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield "127.0.0.1", live.server_port
    finally:
        live.shutdown()
        live.server_close()
        thread.join(timeout=10)


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(
    server: tuple[str, int], world: World
) -> None:
    """No Content-Length to check: reading stops at the limit instead of at the end."""
    host, port = server

    def chunks() -> Iterator[bytes]:
        yield b"email=a%40b.org&password="
        for _ in range(200):  # 200 x 16 KB = 3.2 MB, never all read
            yield b"x" * 16_384

    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(
            "POST",
            "/login",
            body=chunks(),
            headers={"Content-Type": URLENCODED, "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        response.read()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close the connection once it has answered 413
    finally:
        connection.close()
    assert throttle_rows() == 0
