"""Twilio's webhooks, fuzzed: unsigned or wrongly signed requests are refused (403) and change
nothing; signed ones with arbitrary fields never fail, and change rows only when answered 2xx.

Signed requests are signed as Twilio signs them (tests/webhooks/helpers.py): over
PUBLIC_BASE_URL plus the path, with every posted field. Werkzeug reads an invalid UTF-8 field
with replacement characters, so the signature is computed over what the app will read.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from flask import Flask
from hypothesis import given, note
from hypothesis import strategies as st

from proms.notify.sms import sign
from tests.fuzz.harness import changed_tables, fingerprint
from tests.fuzz.settings import scaled
from tests.fuzz.values import field_value, text_value
from tests.fuzz.world import PATIENT_MOBILE, FuzzWorld
from tests.webhooks.helpers import (
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    URLENCODED,
    inbound,
    status_report,
)

KEYWORDS = [
    "STOP",
    "stop ",
    "START",
    "HELP",
    "UNSTOP",
    "CANCEL",
    "INFO",
    "YES",
    "\uff33\uff34\uff2f\uff30",
]  # fullwidth STOP
STATUSES = ["queued", "sent", "delivered", "undelivered", "failed", "read", "DELIVERED"]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _fields(data: st.DataObject, path: str, fw: FuzzWorld) -> dict[str, str]:
    """Twilio's fields for `path`, some replaced, dropped or added at random."""
    if path.endswith("inbound"):
        base = inbound(PATIENT_MOBILE, data.draw(st.sampled_from(KEYWORDS), label="Body"))
    else:
        status = data.draw(st.sampled_from(STATUSES), label="MessageStatus")
        base = status_report(str(fw.sms.provider_message_id), status)
    fields: dict[str, str] = {}
    for key, value in base.items():
        how = data.draw(st.sampled_from(["keep", "keep", "fuzz", "drop"]), label=key)
        if how == "keep":
            fields[key] = value
        elif how == "fuzz":
            fields[key] = _text(data.draw(field_value, label=f"{key} value"))
    for key in data.draw(st.lists(text_value, max_size=2), label="extra fields"):
        fields[key] = _text(data.draw(field_value, label="extra value"))
    # What werkzeug will read back: NUL and other text survive; lone surrogates cannot occur.
    return {k: v for k, v in fields.items() if k}


@pytest.mark.parametrize("path", ["/hooks/twilio/inbound", "/hooks/twilio/status"])
def test_a_generated_webhook_never_fails_and_changes_nothing_unless_signed(
    app: Flask, fuzz_world: FuzzWorld, path: str
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True
    client = app.test_client()
    saved = {"rows": fingerprint()}

    @scaled(2)
    @given(data=st.data())
    def post(data: st.DataObject) -> None:
        fields = _fields(data, path, fuzz_world)
        how = data.draw(st.sampled_from(["signed", "signed", "unsigned", "wrong", "other url"]))
        headers = {}
        if how == "signed":
            headers["X-Twilio-Signature"] = sign(AUTH_TOKEN, PUBLIC_BASE_URL + path, fields)
        elif how == "wrong":
            # Any header value a client can send (no line breaks: HTTP cannot carry them).
            wrong = _text(data.draw(field_value, label="signature"))
            headers["X-Twilio-Signature"] = re.sub(r"[\r\n]", "", wrong)
        elif how == "other url":
            headers["X-Twilio-Signature"] = sign(AUTH_TOKEN, "https://evil.example" + path, fields)
        shown = {k: v if len(v) < 200 else f"{v[:50]!r}... ({len(v)})" for k, v in fields.items()}
        note(f"{how} {path} {shown!r}")
        response = client.post(
            path, data=urlencode(fields), content_type=URLENCODED, headers=headers
        )
        assert response.status_code < 500, (response.status_code, shown)
        after = fingerprint()
        changed = changed_tables(saved["rows"], after)
        if how != "signed":  # 403; or 400, 413 for a body refused before the signature check
            assert response.status_code in (400, 403, 413), (response.status_code, how)
        if how != "signed" or not 200 <= response.status_code < 300:
            assert not changed, f"{how} {response.status_code} changed {changed}: {shown!r}"
        saved["rows"] = after

    post()
