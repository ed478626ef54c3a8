"""The survey cookie: after "Start", the patient's link lives here instead of in the URL.

Signed (not stored server-side) so any worker can read it; short-lived and renewed on each
request; HttpOnly, SameSite=Lax, and `__Host-` prefixed and Secure outside development.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "proms.survey"


@dataclass(frozen=True, slots=True)
class SurveySession:
    token_id: int
    identity_checked: bool = False


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
        data = _serializer(app).loads(raw, max_age=app.config["SURVEY_SESSION_MINUTES"] * 60)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), int):
        return None
    return SurveySession(token_id=data["t"], identity_checked=bool(data.get("v")))


def write(response: Response, survey: SurveySession) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    value = _serializer(app).dumps({"t": survey.token_id, "v": survey.identity_checked})
    response.set_cookie(
        cookie_name(app),
        value,
        max_age=app.config["SURVEY_SESSION_MINUTES"] * 60,
        path="/",
        secure=app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
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
