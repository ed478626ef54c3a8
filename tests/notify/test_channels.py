"""senders_for: the senders MESSAGE_TRANSPORT asks for, and a refusal naming what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proms.checks import ConfigurationError
from proms.notify.base import OutgoingMessage, Rejected
from proms.notify.channels import close_all, senders_for
from proms.notify.email import SmtpSender
from proms.notify.files import FileSender
from proms.notify.null import NullSender
from proms.notify.sms import SmsSender
from tests.notify.fake_twilio import FakeTwilio
from tests.notify.helpers import MAIL_FROM, default_config, email_message, sms_message
from tests.notify.smtp_server import SmtpServer

LIVE = {
    "MESSAGE_TRANSPORT": "live",
    "MAIL_FROM": MAIL_FROM,
    "SMTP_HOST": "127.0.0.1",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM": "+15005550006",
}


def test_files_write_to_the_instance_outbox(tmp_path: Path) -> None:
    senders = senders_for(default_config(MESSAGE_TRANSPORT="files"), str(tmp_path))

    assert set(senders) == {"email", "sms"}
    sender = senders["email"]
    assert isinstance(sender, FileSender)
    assert senders["sms"] is sender
    assert sender.directory == tmp_path / "outbox"
    senders["sms"].send(sms_message())
    assert len(list((tmp_path / "outbox").iterdir())) == 1


def test_files_go_to_outbox_dir_when_set(tmp_path: Path) -> None:
    config = default_config(MESSAGE_TRANSPORT="files", OUTBOX_DIR=str(tmp_path / "elsewhere"))
    sender = senders_for(config, str(tmp_path / "instance"))["email"]

    assert isinstance(sender, FileSender)
    assert sender.directory == tmp_path / "elsewhere"


def test_null_drops_everything(tmp_path: Path) -> None:
    senders = senders_for(default_config(MESSAGE_TRANSPORT="null"), str(tmp_path))

    assert isinstance(senders["email"], NullSender)
    assert isinstance(senders["sms"], NullSender)


def test_live_builds_smtp_and_twilio_senders(tmp_path: Path) -> None:
    senders = senders_for(default_config(**LIVE), str(tmp_path))
    try:
        email, sms = senders["email"], senders["sms"]
        assert isinstance(email, SmtpSender)
        assert (email.host, email.port, email.security) == ("127.0.0.1", 587, "starttls")
        assert isinstance(sms, SmsSender)
        assert sms.url == (
            f"https://api.twilio.com/2010-04-01/Accounts/{LIVE['TWILIO_ACCOUNT_SID']}/Messages.json"
        )
    finally:
        close_all(senders)


def test_live_senders_send_through_the_configured_servers(
    tmp_path: Path, smtp_server: SmtpServer, fake_twilio: FakeTwilio
) -> None:
    config = default_config(
        **{
            **LIVE,
            "SMTP_PORT": smtp_server.port,
            "SMTP_SECURITY": "none",
            "TWILIO_BASE_URL": fake_twilio.base_url,
            "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
            "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
            "TWILIO_FROM": "",
            "TWILIO_MESSAGING_SERVICE_SID": fake_twilio.messaging_service_sid,
        }
    )
    senders = senders_for(config, str(tmp_path))
    try:
        senders["email"].send(email_message())
        senders["sms"].send(sms_message())
    finally:
        close_all(senders)

    assert len(smtp_server.messages) == 1
    assert fake_twilio.messages[0].messaging_service_sid == fake_twilio.messaging_service_sid


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"SMTP_HOST": ""}, "PROMS_SMTP_HOST"),
        ({"TWILIO_ACCOUNT_SID": ""}, "PROMS_TWILIO_ACCOUNT_SID"),
        ({"TWILIO_AUTH_TOKEN": ""}, "PROMS_TWILIO_AUTH_TOKEN"),
        ({"TWILIO_FROM": ""}, "PROMS_TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID)"),
    ],
)
def test_live_refuses_a_missing_setting_by_name(
    tmp_path: Path, missing: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        senders_for(default_config(**{**LIVE, **missing}), str(tmp_path))

    message = str(refused.value)
    assert f"but {named} is not set" in message
    assert "\n" not in message


def test_the_defaults_are_refused_with_every_missing_setting(tmp_path: Path) -> None:
    # proms.config's defaults: live, with no sender, account or token.
    with pytest.raises(ConfigurationError) as refused:
        senders_for(default_config(), str(tmp_path))

    assert str(refused.value).startswith(
        "MESSAGE_TRANSPORT is live (email over SMTP, texts through Twilio) but PROMS_MAIL_FROM, "
        "PROMS_TWILIO_ACCOUNT_SID, PROMS_TWILIO_AUTH_TOKEN, PROMS_TWILIO_FROM (or "
        "TWILIO_MESSAGING_SERVICE_SID) are not set"
    )


@pytest.mark.parametrize(
    ("off", "channel", "setting"),
    [
        ({"MAIL_FROM": ""}, "email", "PROMS_MAIL_FROM"),
        (
            dict.fromkeys(("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"), ""),
            "sms",
            "PROMS_TWILIO_ACCOUNT_SID",
        ),
    ],
)
def test_a_channel_left_unset_refuses_its_messages_by_name(
    tmp_path: Path, off: dict[str, Any], channel: str, setting: str
) -> None:
    senders = senders_for(default_config(**{**LIVE, **off}), str(tmp_path))
    message = OutgoingMessage(1, "k", channel, "someone", "text")
    with pytest.raises(Rejected) as refused:
        senders[channel].send(message)
    assert refused.value.permanent
    assert setting in refused.value.reason
    close_all(senders)


def test_a_messaging_service_is_enough(tmp_path: Path) -> None:
    config = default_config(**{**LIVE, "TWILIO_FROM": "", "TWILIO_MESSAGING_SERVICE_SID": "MG1"})
    senders = senders_for(config, str(tmp_path))
    close_all(senders)


def test_an_unknown_smtp_security_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PROMS_SMTP_SECURITY is 'ssl'"):
        senders_for(default_config(**LIVE, SMTP_SECURITY="ssl"), str(tmp_path))


def test_an_unknown_transport_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        senders_for(default_config(MESSAGE_TRANSPORT="smtp"), str(tmp_path))

    message = str(refused.value)
    assert message.startswith(
        "PROMS_MESSAGE_TRANSPORT is 'smtp'; it must be one of live, files, null"
    )
    assert "\n" not in message


def test_close_all_closes_a_shared_sender_once() -> None:
    class Counting:
        closed = 0

        def send(self, message: Any) -> str:
            return "x"

        def close(self) -> None:
            self.closed += 1

    shared, other = Counting(), Counting()
    close_all({"email": shared, "sms": shared, "fax": other})

    assert (shared.closed, other.closed) == (1, 1)


def test_null_from_the_environment_is_the_null_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flask reads PROMS_* variables as JSON where it can: "null" arrives as None.
    from proms import create_app
    from proms.notify.channels import transport_of

    monkeypatch.setenv("PROMS_MESSAGE_TRANSPORT", "null")
    monkeypatch.setenv("PROMS_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    app = create_app(serving=False)
    assert app.config["MESSAGE_TRANSPORT"] is None
    assert transport_of(app.config) == "null"
    senders = senders_for(app.config, str(tmp_path))
    assert isinstance(senders["email"], NullSender)
