"""The senders the configuration asks for: live (SMTP and Twilio), files (development) or null.

MESSAGE_TRANSPORT picks them (proms/config.py, "Messages"). A live transport with a setting
missing is refused before anything is sent, in one line naming the PROMS_* variable to set, so
the scheduler does not start and then fail message after message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from proms.checks import ConfigurationError
from proms.notify.base import OutgoingMessage, Rejected, Sender
from proms.notify.email import SECURITIES, SmtpSender
from proms.notify.files import FileSender
from proms.notify.null import NullSender
from proms.notify.sms import SmsSender

TRANSPORTS = ("live", "files", "null")


def senders_for(config: Mapping[str, Any], instance_path: str) -> dict[str, Sender]:
    """One sender per channel, "email" and "sms", for config["MESSAGE_TRANSPORT"]."""
    transport = transport_of(config)
    if transport == "files":
        outbox = config.get("OUTBOX_DIR") or os.path.join(instance_path, "outbox")
        files = FileSender(outbox, mail_from=str(config.get("MAIL_FROM") or ""))
        return {"email": files, "sms": files}
    if transport == "null":
        null = NullSender()
        return {"email": null, "sms": null}
    if transport != "live":
        raise ConfigurationError(
            f"PROMS_MESSAGE_TRANSPORT is {transport!r}; it must be one of "
            f"{', '.join(TRANSPORTS)} (live sends email and texts, files writes them to "
            "the outbox folder, null drops them)."
        )
    email_on, sms_on = _check_live(config)
    return {
        "email": _smtp(config) if email_on else Unconfigured("email", "PROMS_MAIL_FROM"),
        "sms": _twilio(config) if sms_on else Unconfigured("texts", "PROMS_TWILIO_ACCOUNT_SID"),
    }


class Unconfigured:
    """A channel this deployment has not set up: every message to it fails at once, with a
    reason a coordinator can act on (reach the patient another way)."""

    def __init__(self, what: str, setting: str) -> None:
        self.reason = f"{what} are not set up on this server ({setting} is not set)"
        if what == "email":
            self.reason = f"email is not set up on this server ({setting} is not set)"

    def send(self, message: OutgoingMessage) -> str:
        raise Rejected(self.reason, permanent=True)

    def close(self) -> None:
        pass


def transport_of(config: Mapping[str, Any]) -> str:
    """MESSAGE_TRANSPORT, or its default: files in development, live everywhere else."""
    value = config.get("MESSAGE_TRANSPORT", "")
    if value is None:  # PROMS_MESSAGE_TRANSPORT=null: Flask reads the variable as JSON's null
        return "null"
    return str(value) or ("files" if config.get("ENV") == "development" else "live")


def close_all(senders: Mapping[str, Sender]) -> None:
    """Close every sender once (one sender may serve both channels)."""
    unique = {id(sender): sender for sender in senders.values()}
    for sender in unique.values():
        sender.close()


TWILIO_SETTINGS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
)


def _check_live(config: Mapping[str, Any]) -> tuple[bool, bool]:
    """Which channels are set up: email when MAIL_FROM is set, texts when any Twilio setting
    is. A channel set up must be set up completely, and one of the two at least."""
    email_on = bool(config.get("MAIL_FROM"))
    sms_on = any(config.get(name) for name in TWILIO_SETTINGS)
    missing = []
    if email_on or not sms_on:
        missing += [name for name in ("MAIL_FROM", "SMTP_HOST") if not config.get(name)]
    if sms_on or not email_on:
        missing += [
            name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not config.get(name)
        ]
        if not (config.get("TWILIO_FROM") or config.get("TWILIO_MESSAGING_SERVICE_SID")):
            missing.append("TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID)")
    if missing:
        names = ", ".join(f"PROMS_{name}" for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigurationError(
            f"MESSAGE_TRANSPORT is live (email over SMTP, texts through Twilio) but {names} "
            f"{verb} not set; set it, or PROMS_MESSAGE_TRANSPORT=files to write the messages "
            "to the outbox folder instead."
        )
    security = config.get("SMTP_SECURITY", "starttls")
    if security not in SECURITIES:
        raise ConfigurationError(
            f"PROMS_SMTP_SECURITY is {security!r}; it must be one of {', '.join(SECURITIES)}."
        )
    return email_on, sms_on


def _smtp(config: Mapping[str, Any]) -> SmtpSender:
    return SmtpSender(
        host=str(config["SMTP_HOST"]),
        port=int(config.get("SMTP_PORT", 587)),
        security=str(config.get("SMTP_SECURITY", "starttls")),
        username=str(config.get("SMTP_USERNAME") or ""),
        password=str(config.get("SMTP_PASSWORD") or ""),
        timeout=float(config.get("SMTP_TIMEOUT_SECONDS", 30)),
        mail_from=str(config["MAIL_FROM"]),
    )


def _twilio(config: Mapping[str, Any]) -> SmsSender:
    return SmsSender(
        str(config.get("TWILIO_BASE_URL") or "https://api.twilio.com"),
        str(config["TWILIO_ACCOUNT_SID"]),
        str(config["TWILIO_AUTH_TOKEN"]),
        from_number=str(config.get("TWILIO_FROM") or ""),
        messaging_service_sid=str(config.get("TWILIO_MESSAGING_SERVICE_SID") or ""),
        timeout=float(config.get("TWILIO_TIMEOUT_SECONDS", 15)),
    )
