"""The development outbox (one readable file per message) and the null channel."""

from __future__ import annotations

import re
import stat
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from proms.notify.files import FileSender
from proms.notify.null import NullSender
from tests.notify.helpers import (
    LINK,
    MAIL_FROM,
    PATIENT_EMAIL,
    UNSUBSCRIBE,
    email_message,
    sms_message,
)

NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-(?P<id>\d+)-(?P<channel>email|sms)\.(?P<suffix>eml|txt)")


def _only_file(outbox: Path) -> Path:
    [path] = list(outbox.iterdir())  # no temporary file is left behind either
    return path


def test_an_email_is_a_whole_mime_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"  # made on first use
    provider_id = FileSender(outbox, mail_from=MAIL_FROM).send(email_message(notification_id=12))

    path = _only_file(outbox)
    assert provider_id == f"file:{path.name}"
    match = NAME.fullmatch(path.name)
    assert match is not None
    assert match.group("id", "channel", "suffix") == ("12", "email", "eml")
    email = message_from_bytes(path.read_bytes().replace(b"\r\n", b"\n"), policy=default_policy)
    assert isinstance(email, EmailMessage)
    assert email["From"] == MAIL_FROM
    assert email["To"] == PATIENT_EMAIL
    assert email["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert email["Message-ID"]
    plain, html = email.get_body(("plain",)), email.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert LINK in plain.get_content()
    assert LINK in html.get_content()


def test_an_sms_is_a_short_text_file(tmp_path: Path) -> None:
    message = sms_message(notification_id=13, status_callback_url="http://127.0.0.1:5000/hooks")
    provider_id = FileSender(tmp_path).send(message)

    path = _only_file(tmp_path)
    assert provider_id == f"file:{path.name}"
    assert path.name.endswith("-13-sms.txt")
    assert path.read_text("utf-8") == (
        f"To: {message.to}\n"
        "Segments: 1 (GSM-7)\n"
        "Status-Callback: http://127.0.0.1:5000/hooks\n"
        "\n"
        f"{message.text}\n"
    )


def test_files_are_for_their_owner_only_and_sort_by_time(tmp_path: Path) -> None:
    sender = FileSender(tmp_path)
    names = [sender.send(sms_message(notification_id=n)).removeprefix("file:") for n in (3, 1, 2)]

    assert sorted(path.name for path in tmp_path.iterdir()) == names
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # names and links of patients


def test_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="email or sms"):
        FileSender(tmp_path).send(sms_message(channel="fax"))
    assert list(tmp_path.iterdir()) == []


def test_the_null_channel_takes_everything() -> None:
    sender = NullSender()
    assert sender.send(email_message(notification_id=5)) == "null:5"
    assert sender.send(sms_message(notification_id=6)) == "null:6"
    sender.close()
