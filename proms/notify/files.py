"""The development channel: each message becomes a file in the outbox folder, nothing is sent.

`make run` uses it, so a newcomer reads the messages proms would send and clicks their links:
an email is the whole MIME message (`.eml`, which a mail client opens), a text message a short
`.txt` with its recipient, segment count and body. The outbox holds names and links, so the
files are readable by their owner only, like the rest of instance/.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from proms.notify import gsm
from proms.notify.base import OutgoingMessage
from proms.notify.email import build_email

DEVELOPMENT_SENDER = "proms (development outbox) <outbox@localhost>"


class FileSender:
    """Writes each message as one file under `directory`; the provider id is `file:<name>`."""

    def __init__(self, directory: str | os.PathLike[str], *, mail_from: str = "") -> None:
        self.directory = Path(directory)
        self.mail_from = mail_from or DEVELOPMENT_SENDER

    def send(self, message: OutgoingMessage) -> str:
        if message.channel == "email":
            content, suffix = self._email(message), "eml"
        elif message.channel == "sms":
            content, suffix = self._sms(message), "txt"
        else:
            raise ValueError(f"FileSender writes email or sms, not {message.channel!r}")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{message.notification_id}-{message.channel}.{suffix}"
        _write_atomically(self.directory / name, content)
        return f"file:{name}"

    def close(self) -> None:
        """Nothing stays open between messages."""

    def _email(self, message: OutgoingMessage) -> bytes:
        return build_email(message, self.mail_from).as_bytes(policy=SMTP_POLICY)

    def _sms(self, message: OutgoingMessage) -> bytes:
        encoding, count = gsm.segments(message.text)
        lines = [f"To: {message.to}", f"Segments: {count} ({encoding})"]
        if message.status_callback_url:
            lines.append(f"Status-Callback: {message.status_callback_url}")
        return ("\n".join([*lines, "", message.text]) + "\n").encode("utf-8")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write a temporary file beside `path`, then rename it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
