"""What the webhook tests share: the app's Twilio settings, signed posts, outbox rows.

Requests are signed the way Twilio signs them (proms.notify.sms.sign: the public URL Twilio
called, then every posted field, sorted), over PUBLIC_BASE_URL, while the test client posts to
http://localhost: as behind a proxy, the URL this process sees is not the one Twilio signed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from proms.admin.models import Channel, Patient
from proms.auth.models import AuditEvent
from proms.db import db, utcnow
from proms.notify.sms import sign
from proms.scheduling.models import Notification, NotificationKind, NotificationStatus

AUTH_TOKEN = "a" * 32  # the shape of a Twilio auth token
PUBLIC_BASE_URL = "https://proms.example.org"
ACCOUNT_SID = "AC" + "0" * 32
OUR_NUMBER = "+15005550006"
URLENCODED = "application/x-www-form-urlencoded"


def post_signed(
    client: FlaskClient,
    path: str,
    params: Mapping[str, str],
    *,
    token: str = AUTH_TOKEN,
    signed_url: str | None = None,
    signature: str | None = None,
) -> TestResponse:
    """POST the form as Twilio does, signed for `signed_url` (the public URL of `path`)."""
    url = signed_url or PUBLIC_BASE_URL + path
    header = signature if signature is not None else sign(token, url, params)
    return client.post(path, data=dict(params), headers={"X-Twilio-Signature": header})


def inbound(sender: str, body: str, **extra: str) -> dict[str, str]:
    """The fields of Twilio's incoming-message webhook (a subset; all are signed)."""
    sid = "SM" + secrets.token_hex(16)
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": sender,
        "FromCountry": "US",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": OUR_NUMBER,
        "ToCountry": "US",
        **extra,
    }


def status_report(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    """The fields of a status callback."""
    fields = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": OUR_NUMBER,
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+12165550123",
    }
    if error_code is not None:
        fields["ErrorCode"] = error_code
    return fields


def add_sent_text(patient: Patient, **fields: Any) -> Notification:
    """A text message the dispatcher handed to Twilio (its sid in provider_message_id)."""
    now = utcnow()
    values: dict[str, Any] = {
        "idempotency_key": f"test:{secrets.token_hex(8)}",
        "patient_id": patient.id,
        "kind": NotificationKind.INVITE,
        "channel": Channel.SMS,
        "send_after": now - dt.timedelta(minutes=5),
        "status": NotificationStatus.SENT,
        "sent_at": now - dt.timedelta(minutes=1),
        "attempts": 1,
        "provider_message_id": "SM" + secrets.token_hex(16),
    }
    values.update(fields)
    row = Notification(**values)
    db.session.add(row)
    db.session.flush()
    return row


def audit_actions(patient: Patient) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.patient_id == patient.id)
            .order_by(AuditEvent.id)
        )
    )


def count(model: type[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0
