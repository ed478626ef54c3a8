"""Bugs the fuzzer found, each as the smallest request that showed it."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from sqlalchemy import select

from proms.care.models import StaffNote
from proms.db import db
from proms.notify.sms import valid_signature
from tests.fuzz.targets import admin
from tests.fuzz.world import FuzzWorld
from tests.helpers import csrf_token
from tests.webhooks.helpers import AUTH_TOKEN, PUBLIC_BASE_URL, inbound


@pytest.mark.parametrize("signature", ["\x80", "é" * 28, "\u00ff=="])
def test_a_non_ascii_twilio_signature_is_refused_not_a_failure(
    app: Flask, fuzz_world: FuzzWorld, signature: str
) -> None:
    """hmac.compare_digest raised TypeError on str with non-ASCII characters: a 500 for any
    request whose X-Twilio-Signature header carried a byte over 0x7f (headers are latin-1)."""
    params = inbound("+12165550123", "STOP")
    url = PUBLIC_BASE_URL + "/hooks/twilio/inbound"
    assert valid_signature(AUTH_TOKEN, url, params, signature) is False
    response = app.test_client().post(
        "/hooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "document",
    [
        {"email": -1, "password": ""},
        {"email": ["a@b.org"], "password": {"x": 1}},
        [["email", "a@b.org"]],
    ],
)
def test_a_json_body_to_a_form_is_refused_not_a_failure(
    app: Flask, fuzz_world: FuzzWorld, document: object
) -> None:
    """Flask-WTF reads a form from a JSON body when there is no form data, with the JSON's own
    types: a number where a validator expects text raised TypeError (len of an int), a 500."""
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login",
        data=json.dumps(document),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert 400 <= response.status_code < 500, response.status_code


def test_a_nul_in_a_multipart_form_is_refused_and_saves_nothing(
    app: Flask, fuzz_world: FuzzWorld
) -> None:
    """proms.security.check_text refuses control characters in urlencoded forms only; the same
    note sent as multipart/form-data reached the database: stored on SQLite, and on PostgreSQL
    a DataError ("text fields cannot contain NUL"), a 500."""
    client = admin(app, fuzz_world)
    page = f"/patients/{fuzz_world.patient.id}"
    response = client.post(
        f"{page}/notes",
        data={"text": "call back\x00", "csrf_token": csrf_token(client, page)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400, response.status_code
    assert not db.session.scalars(select(StaffNote)).all()
