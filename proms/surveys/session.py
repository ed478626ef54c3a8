"""The survey cookie: after "Start", the patient's link lives here instead of in the URL.

Signed (not stored server-side) so any worker can read it; short-lived and renewed on each
request; HttpOnly, SameSite=Lax, and `__Host-` prefixed and Secure outside development.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from flask import Flask, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import dump_cookie

SALT = "proms.survey"


@dataclass(frozen=True, slots=True)
class SurveySession:
    token_id: int
    identity_checked: bool = False
    # When the cookie was signed (None: not yet written). The cookie is renewed only once it is
    # RENEW_AFTER old: re-sending it on every page would cost a phone ~200 bytes a response.
    signed_at: dt.datetime | None = field(default=None, compare=False)

    def needs_renewal(self, now: dt.datetime, lifetime: dt.timedelta) -> bool:
        return self.signed_at is None or now - self.signed_at >= lifetime * RENEW_AFTER


# Renew the sliding expiry once a tenth of the cookie's lifetime has passed (6 of 60 minutes):
# a patient who stops for the whole lifetime still finds it expired, within 10%.
RENEW_AFTER = 0.1


def cookie_name(app: Flask) -> str:
    return "__Host-proms-survey" if app.config["SESSION_COOKIE_SECURE"] else "proms-survey"


def _serializer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)


def read(raw: str | None) -> SurveySession | None:
    """The session a cookie holds, or None when missing, tampered with or too old."""
    if not raw:
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        data, signed_at = _serializer(app).loads(
            raw, max_age=app.config["SURVEY_SESSION_MINUTES"] * 60, return_timestamp=True
        )
    except BadSignature:
        return None
    if isinstance(data, dict):  # the first format, {"t": id, "v": checked}
        data = [data.get("t"), data.get("v")]
    if (
        not isinstance(data, list)
        or len(data) != 2
        or not isinstance(data[0], int)
        or isinstance(data[0], bool)
    ):
        return None
    return SurveySession(token_id=data[0], identity_checked=bool(data[1]), signed_at=signed_at)


def write(response: Response, survey: SurveySession) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # [token id, identity checked]: a list, which is 15 bytes shorter than named fields.
    value = _serializer(app).dumps([survey.token_id, int(survey.identity_checked)])
    # Max-Age alone (no Expires, which every current browser ignores when Max-Age is there).
    cookie = dump_cookie(
        cookie_name(app),
        value,
        max_age=app.config["SURVEY_SESSION_MINUTES"] * 60,
        path="/",
        secure=app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
        sync_expires=False,
    )
    response.headers.add("Set-Cookie", cookie)
    return response


def renew(response: Response, survey: SurveySession, now: dt.datetime) -> Response:
    """Write the cookie again when it is due for renewal (sliding expiry), else leave it."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if survey.needs_renewal(now, dt.timedelta(minutes=app.config["SURVEY_SESSION_MINUTES"])):
        write(response, survey)
    return response


def clear(response: Response) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    response.delete_cookie(
        cookie_name(app),
        path="/",
        secure=app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response
