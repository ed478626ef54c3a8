"""SmtpSender against a real SMTP server on loopback: what it sends, and how each failure is
classified (Rejected: not sent, try again unless permanent; Uncertain: may have been sent)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proms.notify.base import Rejected, Uncertain
from proms.notify.email import SmtpSender
from tests.notify.helpers import MAIL_FROM, PATIENT_EMAIL, UNSUBSCRIBE, email_message
from tests.notify.smtp_server import Certificate, SmtpServer, free_port, make_certificate

MakeSender = Callable[..., SmtpSender]


@pytest.fixture
def make_sender() -> Iterator[MakeSender]:
    """SmtpSenders for a server (plain SMTP, 5 s timeout unless told), closed after the test."""
    senders: list[SmtpSender] = []

    def factory(server: SmtpServer, **options: Any) -> SmtpSender:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": server.port,
            "security": server.security,
            "username": "",
            "password": "",
            "timeout": 5.0,
            "mail_from": MAIL_FROM,
        }
        if server.certificate is not None:
            values["ssl_context"] = server.client_context()
        values.update(options)
        sender = SmtpSender(**values)
        senders.append(sender)
        return sender

    yield factory
    for sender in senders:
        sender.close()


# What is sent -----------------------------------------------------------------------------------


def test_sends_both_parts_and_the_headers(smtp_server: SmtpServer, make_sender: MakeSender) -> None:
    message = email_message()
    provider_id = make_sender(smtp_server).send(message)

    [received] = smtp_server.messages
    assert received.mail_from == "no-reply@lakeside.example"
    assert received.rcpt_tos == [PATIENT_EMAIL]
    email = received.message
    assert email["Message-ID"] == provider_id
    assert re.fullmatch(r"<[^<>@]+@lakeside\.example>", provider_id)
    assert email["From"] == MAIL_FROM
    assert email["To"] == PATIENT_EMAIL
    assert email["Subject"] == message.subject
    assert email["Date"]
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.get_content_type() == "multipart/alternative"
    plain = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content() == message.text
    assert html.get_content().rstrip("\n") == message.html


def test_no_unsubscribe_headers_without_an_unsubscribe_url(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    make_sender(smtp_server).send(email_message(unsubscribe_url=None, html=None))

    email = smtp_server.messages[0].message
    assert "List-Unsubscribe" not in email
    assert "List-Unsubscribe-Post" not in email
    assert email.get_content_type() == "text/plain"


def test_accented_text_and_lines_starting_with_a_dot_arrive_intact(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    text = "Hola, José:\n.\n.una línea con punto\n" + "x" * 300 + "\n"
    subject = "Sus preguntas de seguimiento de Clínica Lagos"
    make_sender(smtp_server).send(email_message(text=text, subject=subject, html=None))

    email = smtp_server.messages[0].message
    assert email["Subject"] == subject
    assert email.get_content() == text
    # Nothing longer than SMTP's line limit went over the wire (quoted-printable wraps).
    assert max(len(line) for line in smtp_server.messages[0].data.splitlines()) <= 998


def test_one_connection_serves_several_messages(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    sender = make_sender(smtp_server)
    ids = [sender.send(email_message(notification_id=n)) for n in range(3)]

    assert len(set(ids)) == 3
    assert len({received.peer for received in smtp_server.messages}) == 1


def test_close_quits_and_a_later_send_connects_again(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    sender = make_sender(smtp_server)
    sender.close()  # never connected: nothing to do
    sender.send(email_message())
    sender.close()
    sender.close()
    sender.send(email_message())

    assert len({received.peer for received in smtp_server.messages}) == 2


def test_a_connection_the_server_dropped_is_replaced(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    sender = make_sender(smtp_server)
    sender.send(email_message())
    smtp_server.stop()
    smtp_server.start()

    sender.send(email_message())

    assert len(smtp_server.messages) == 2
    assert len({received.peer for received in smtp_server.messages}) == 2


def test_a_421_to_mail_on_a_kept_connection_is_retried_on_a_new_one(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    # What servers say when they close an idle connection.
    sender = make_sender(smtp_server)
    sender.send(email_message())
    smtp_server.refuse("MAIL", "421 4.4.2 Idle for too long, closing")

    sender.send(email_message())

    assert len(smtp_server.messages) == 2


# Refused: Rejected ------------------------------------------------------------------------------


def test_server_down_is_rejected_for_now_then_sent_when_it_is_back(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    sender = make_sender(smtp_server)
    smtp_server.stop()

    with pytest.raises(Rejected) as refused:
        sender.send(email_message())
    assert refused.value.permanent is False
    assert "cannot connect" in refused.value.reason

    smtp_server.start()
    sender.send(email_message())
    assert len(smtp_server.messages) == 1


def test_nothing_listening_is_rejected_for_now(make_sender: MakeSender) -> None:
    nowhere = SmtpServer(port=free_port())  # never started
    with pytest.raises(Rejected) as refused:
        make_sender(nowhere).send(email_message())
    assert refused.value.permanent is False


@pytest.mark.parametrize(
    ("step", "reply", "permanent"),
    [
        ("MAIL", "451 4.3.0 Try again later", False),
        ("MAIL", "553 5.7.1 Sender address rejected", True),
        ("RCPT", "450 4.2.1 Mailbox busy", False),
        ("RCPT", "550 5.1.1 <ana.patient@example.org>: Recipient address rejected", True),
        ("DATA", "452 4.3.1 Insufficient system storage", False),
        ("DATA", "554 5.7.1 Message refused", True),
    ],
)
def test_a_refusal_is_rejected_permanent_for_5xx(
    smtp_server: SmtpServer, make_sender: MakeSender, step: str, reply: str, permanent: bool
) -> None:
    sender = make_sender(smtp_server)
    smtp_server.refuse(step, reply)

    with pytest.raises(Rejected) as refused:
        sender.send(email_message())

    assert refused.value.permanent is permanent
    assert reply[:3] in refused.value.reason
    assert PATIENT_EMAIL not in refused.value.reason  # the server quoted it; the reason must not
    assert smtp_server.messages == []
    # The connection was reset, not lost: the next message goes on it.
    sender.send(email_message())
    assert len(smtp_server.messages) == 1


def test_a_silent_server_before_data_is_rejected_for_now(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    smtp_server.hang("RCPT")
    sender = make_sender(smtp_server, timeout=0.5)

    with pytest.raises(Rejected) as refused:
        sender.send(email_message())

    assert refused.value.permanent is False
    smtp_server.release()


def test_starttls_is_required_never_skipped(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    # A plain server that offers no STARTTLS: refuse rather than send in clear.
    sender = make_sender(smtp_server, security="starttls")

    with pytest.raises(Rejected) as refused:
        sender.send(email_message())

    assert refused.value.permanent is False
    assert smtp_server.messages == []


# Maybe sent: Uncertain --------------------------------------------------------------------------


def test_no_answer_after_the_body_is_uncertain(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    smtp_server.hang("DATA")  # the whole body arrives; the final answer never does
    sender = make_sender(smtp_server, timeout=0.5)

    with pytest.raises(Uncertain) as uncertain:
        sender.send(email_message())

    assert "after the message was sent" in uncertain.value.reason
    assert smtp_server.handler.hung.is_set()
    smtp_server.release()
    # The sender starts over on a fresh connection.
    sender.send(email_message(notification_id=9))
    assert smtp_server.messages


def test_a_connection_lost_after_the_body_is_uncertain(
    smtp_server: SmtpServer, make_sender: MakeSender
) -> None:
    smtp_server.hang("DATA")
    sender = make_sender(smtp_server, timeout=10)

    def stop_once_the_body_is_in() -> None:
        if smtp_server.handler.hung.wait(10):
            smtp_server.stop()

    stopper = threading.Thread(target=stop_once_the_body_is_in)
    stopper.start()

    with pytest.raises(Uncertain):
        sender.send(email_message())

    stopper.join()
    assert smtp_server.messages == []


# TLS and login ----------------------------------------------------------------------------------


def test_starttls_with_login(tls_certificate: Certificate, make_sender: MakeSender) -> None:
    with SmtpServer(
        security="starttls", certificate=tls_certificate, auth=("proms", "s3cret")
    ) as server:
        sender = make_sender(server, username="proms", password="s3cret")
        sender.send(email_message())
        sender.close()

    assert len(server.messages) == 1
    assert server.logins == ["proms"]


def test_a_refused_login_is_rejected_for_now(
    tls_certificate: Certificate, make_sender: MakeSender
) -> None:
    with SmtpServer(
        security="starttls", certificate=tls_certificate, auth=("proms", "s3cret")
    ) as server:
        sender = make_sender(server, username="proms", password="wrong")
        with pytest.raises(Rejected) as refused:
            sender.send(email_message())

    # The account's settings are wrong, not the message: it may go once they are fixed.
    assert refused.value.permanent is False
    assert "535" in refused.value.reason
    assert server.messages == []


def test_implicit_tls(tls_certificate: Certificate, make_sender: MakeSender) -> None:
    with SmtpServer(security="tls", certificate=tls_certificate) as server:
        sender = make_sender(server)
        sender.send(email_message())
        sender.close()

    assert len(server.messages) == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_is_rejected(
    tls_certificate: Certificate, make_sender: MakeSender, tmp_path: Path, security: str
) -> None:
    other = make_certificate(tmp_path)  # the client trusts this one, the server has another
    with SmtpServer(security=security, certificate=tls_certificate) as server:
        sender = make_sender(server, ssl_context=other.client_context())
        with pytest.raises(Rejected) as refused:
            sender.send(email_message())

    assert refused.value.permanent is False
    assert "certificate" in refused.value.reason.lower()
    assert server.messages == []


def test_security_must_be_known() -> None:
    with pytest.raises(ValueError, match="starttls"):
        SmtpSender("127.0.0.1", 25, "ssl", "", "", 5, MAIL_FROM)


def test_sms_is_not_email(smtp_server: SmtpServer, make_sender: MakeSender) -> None:
    with pytest.raises(ValueError, match="email"):
        make_sender(smtp_server).send(email_message(channel="sms"))
