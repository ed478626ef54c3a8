"""Email over SMTP, one connection kept open across sends, failures told apart by where they happen.

What the dispatcher may do after a failure depends on whether the server could have the message
(proms/notify/base.py). SMTP makes that answerable: nothing is delivered until the server has the
whole body and answers 250 to the final dot. So the transaction is run step by step here
(smtplib's `sendmail` would hide which step failed):

- connecting, TLS, login, MAIL FROM, RCPT TO and the DATA command itself: any failure, refusal or
  lost connection there means the body was never sent -> `Rejected` (permanent for a 5xx reply);
- once the server said 354 and the body went out, a timeout or a dropped connection before its
  answer -> `Uncertain`; an explicit 4xx or 5xx answer to the body -> `Rejected`.

Reasons carry SMTP codes and the server's words with email addresses taken out: they are stored
and shown to staff, and must not name a patient.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr

from proms.notify.base import OutgoingMessage, Rejected, Uncertain

SECURITIES = ("starttls", "tls", "none")

_ADDRESS = re.compile(r"[^\s<>\"'()\[\],;:]+@[^\s<>\"'()\[\],;:]+")
_LINE_START_DOT = re.compile(rb"(?m)^\.")
_REASON_LENGTH = 200


def build_email(message: OutgoingMessage, mail_from: str) -> EmailMessage:
    """The MIME message: a plain-text part and, when given, an HTML alternative.

    Quoted-printable keeps every line short and 7-bit, so any server (and a mail client opening
    the development outbox's .eml) reads it; headers with accents are encoded by the policy.
    """
    email = EmailMessage()
    email["From"] = mail_from
    email["To"] = message.to
    email["Subject"] = message.subject or ""
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = make_msgid(domain=_domain(mail_from))
    # RFC 3834: tells autoresponders (out-of-office replies) not to answer.
    email["Auto-Submitted"] = "auto-generated"
    if message.unsubscribe_url:
        # RFC 2369 and RFC 8058: the mail client's own "Unsubscribe" button, in one click.
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(message.text, subtype="plain", cte="quoted-printable")
    if message.html:
        email.add_alternative(message.html, subtype="html", cte="quoted-printable")
    return email


class SmtpSender:
    """Sends email through one SMTP server, reusing the connection until it drops.

    `ssl_context` defaults to the system's verifying context; tests pass one that trusts their
    own certificate. (smtplib's default for STARTTLS verifies nothing, so one is always given.)
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        username: str,
        password: str,
        timeout: float,
        mail_from: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITIES:
            raise ValueError(f"SMTP security must be one of {SECURITIES}, not {security!r}")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.mail_from = mail_from
        self.envelope_from = parseaddr(mail_from)[1]
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        """Send one email; its Message-ID is the provider id."""
        if message.channel != "email":
            raise ValueError(f"SmtpSender sends email, not {message.channel!r}")
        email = build_email(message, self.mail_from)
        payload = email.as_bytes(policy=SMTP_POLICY)
        with self._lock:
            self._transmit(message.to, payload)
        return str(email["Message-ID"])

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            self._disconnect(polite=True)

    # The transaction ----------------------------------------------------------------------------

    def _transmit(self, recipient: str, payload: bytes) -> None:
        reused = self._connection is not None
        connection = self._connect()
        try:
            self._envelope(connection, recipient)
        except _Dropped as dropped:
            if not reused:
                raise Rejected(dropped.reason) from None
            # A kept connection the server has since closed (idle timeout): nothing was sent
            # on it, so open a new one and start again, once.
            connection = self._connect()
            try:
                self._envelope(connection, recipient)
            except _Dropped as again:
                raise Rejected(again.reason) from None
        self._data(connection, payload)

    def _envelope(self, connection: smtplib.SMTP, recipient: str) -> None:
        """MAIL FROM, then RCPT TO."""
        self._command("MAIL FROM", lambda: connection.mail(self.envelope_from))
        self._command("RCPT TO", lambda: connection.rcpt(recipient))

    def _command(self, step: str, command: Callable[[], tuple[int, bytes]]) -> None:
        """One envelope command: a refusal is Rejected, a lost connection _Dropped."""
        try:
            code, reply = command()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._disconnect()
            raise _Dropped(f"SMTP connection lost at {step}: {_clean(str(error))}") from None
        if code == 421 and step == "MAIL FROM":
            # The server is closing this (idle) connection: the same as a lost one.
            self._disconnect()
            raise _Dropped(f"SMTP {step}: {code} {_clean(reply)}")
        if code not in (250, 251):
            self._after_refusal(code)
            raise _refusal(step, code, reply)

    def _data(self, connection: smtplib.SMTP, payload: bytes) -> None:
        try:
            code, reply = connection.docmd("DATA")
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._disconnect()
            raise Rejected(f"SMTP connection lost at DATA: {_clean(str(error))}") from None
        if code != 354:
            self._after_refusal(code)
            raise _refusal("DATA", code, reply)
        # From here on the server may have the message.
        try:
            connection.send(_dot_terminated(payload))
            code, reply = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._disconnect()
            raise Uncertain(
                f"SMTP connection lost after the message was sent, before the server's answer: "
                f"{_clean(str(error))}"
            ) from None
        if code != 250:
            self._after_refusal(code)
            raise _refusal("end of DATA", code, reply)

    def _after_refusal(self, code: int) -> None:
        """Leave the connection ready for the next message (RSET), or drop it after a 421."""
        if code == 421 or self._connection is None:
            self._disconnect()
            return
        try:
            self._connection.rset()
        except (smtplib.SMTPException, OSError):
            self._disconnect()

    # The connection -----------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        """The open connection, or a new one: greeted, secured, logged in. Failures: Rejected."""
        if self._connection is not None:
            return self._connection
        where = f"{self.host}:{self.port}"
        connection: smtplib.SMTP | None = None
        try:
            # Connecting in the constructor: it is what makes STARTTLS check the host name.
            if self.security == "tls":
                connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            connection.ehlo()
            if self.security == "starttls":
                connection.starttls(context=self.ssl_context)
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as error:
            _close(connection)
            # Our credentials, not this message: trying again after they are fixed can work.
            raise Rejected(
                f"SMTP login to {where} refused: {error.smtp_code} {_clean(error.smtp_error)}"
            ) from None
        except smtplib.SMTPResponseException as error:
            _close(connection)
            raise Rejected(
                f"SMTP server {where} refused the connection: {error.smtp_code} "
                f"{_clean(error.smtp_error)}"
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            _close(connection)
            kind = type(error).__name__
            raise Rejected(
                f"cannot connect to SMTP server {where} ({kind}): {_clean(str(error))}"
            ) from None
        except BaseException:
            _close(connection)
            raise
        self._connection = connection
        return connection

    def _disconnect(self, *, polite: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if polite:
                connection.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            connection.close()


class _Dropped(Exception):
    """The connection was lost before the body was sent (the message can be sent again)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _close(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        connection.close()


def _refusal(step: str, code: int, reply: bytes | str) -> Rejected:
    return Rejected(f"SMTP {step} refused: {code} {_clean(reply)}", permanent=500 <= code < 600)


def _clean(reply: bytes | str) -> str:
    """A server's words, on one line, without email addresses, not too long."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(_ADDRESS.sub("<address>", text).split())
    return text[:_REASON_LENGTH]


def _dot_terminated(payload: bytes) -> bytes:
    """The body as DATA sends it (RFC 5321 4.5.2): leading dots doubled, ending CRLF.CRLF."""
    body = _LINE_START_DOT.sub(b"..", payload)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _domain(mail_from: str) -> str | None:
    """The sender's domain, for Message-IDs (None: the host name, as make_msgid does)."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or None
