"""Patient links: random tokens stored only as hashes (the scheduler mints one per message,
staff make one by hand). What a link can do is the patient side's (proms.surveys.links).

Services: flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from proms.auth.models import StaffUser
from proms.checks import public_base_url
from proms.scheduling.models import Assessment, Notification
from proms.surveys.models import AccessToken

TOKEN_BYTES = 32  # 256 bits


def link_url(config: Mapping[str, Any], raw: str) -> str:
    """The address a patient opens: <public base URL>/s/<token> (proms.checks.public_base_url).

    Raises ConfigurationError in production without an https PUBLIC_BASE_URL.
    """
    return f"{public_base_url(config)}/s/{raw}"


def link_max_age(config: Mapping[str, Any]) -> dt.timedelta:
    return dt.timedelta(days=config["SURVEY_LINK_MAX_AGE_DAYS"])


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8")).digest()


def token_hint(raw: str) -> str:
    """What logs may say about a token: the first characters of its hash."""
    return hash_token(raw).hex()[:8]


def mint_token(
    session: Session,
    assessment: Assessment,
    *,
    now: dt.datetime,
    max_age: dt.timedelta,
    notification: Notification | None = None,
    created_by: StaffUser | None = None,
) -> str:
    """A new link for an assessment; returns the raw token (shown once, never stored)."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        AccessToken(
            token_hash=hash_token(raw),
            assessment=assessment,
            notification_id=notification.id if notification else None,
            created_by_id=created_by.id if created_by else None,
            created_at=now,
            expires_at=min(now + max_age, assessment.closes_at),
        )
    )
    session.flush()
    return raw
