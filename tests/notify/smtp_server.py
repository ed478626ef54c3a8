"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for any test module.

    with SmtpServer() as server:                 # plain SMTP on 127.0.0.1:<free port>
        sender = SmtpSender("127.0.0.1", server.port, "none", "", "", 5, "a@b.example")
        ...
        server.messages[0].message["Subject"]

It refuses a step on demand (`refuse("RCPT", "550 5.1.1 No such user")`), stays silent at a
step until `release()` (`hang("DATA")`: the body is in, the answer never comes), and stops and
starts again on the same port (`stop()`, `start()`) to test a server that goes away and comes
back. `SmtpServer(security="starttls" | "tls", certificate=...)` speaks TLS with a certificate
made for the test (`make_certificate`, with the openssl command), and `auth=(user, password)`
requires a login (after STARTTLS, as aiosmtpd insists).

Import the fixtures `smtp_server` and `tls_certificate` into a conftest.py to use them as
fixtures, or use the class directly.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

LOOPBACK = "127.0.0.1"
STEPS = ("MAIL", "RCPT", "DATA")


@dataclass(frozen=True, slots=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this certificate only."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(directory: Path) -> Certificate:
    """A fresh certificate, made with the openssl command (a missing command fails the test)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert=cert, key=key)


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int]  # the client's address and port: one port per connection

    @property
    def message(self) -> EmailMessage:
        """The message as a mail client reads it (the wire's CRLF line ends as newlines)."""
        parsed = message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Refusal:
    reply: str
    times: int | None  # None: every time


@dataclass
class Handler:
    """aiosmtpd's handler: records accepted messages, refuses or hangs at a step on demand."""

    messages: list[Received] = field(default_factory=list)
    refusals: dict[str, _Refusal] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    hung: threading.Event = field(default_factory=threading.Event)  # set once a step hangs
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refused = await self._step("MAIL")
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refused = await self._step("RCPT")
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        # Called once the whole body has arrived: a hang here is "sent, no answer".
        refused = await self._step("DATA")
        if refused:
            return refused
        content = envelope.original_content or b""
        with self.lock:
            self.messages.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(content),
                    _peer(session),
                )
            )
        return "250 2.0.0 Message accepted for delivery"

    async def _step(self, step: str) -> str | None:
        if step in self.hanging:
            self.hung.set()
            while not self.released.is_set():
                await asyncio.sleep(0.01)
        with self.lock:
            refusal = self.refusals.get(step)
            if refusal is None:
                return None
            if refusal.times is not None:
                refusal.times -= 1
                if refusal.times <= 0:
                    del self.refusals[step]
            return refusal.reply


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in a thread; the port (and what was received) survive a restart."""

    def __init__(
        self,
        *,
        security: str = "none",
        certificate: Certificate | None = None,
        auth: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"unknown security {security!r}")
        if security != "none" and certificate is None:
            raise ValueError(f"{security} needs a certificate (make_certificate)")
        if auth and security != "starttls":
            raise ValueError("aiosmtpd takes a login only after STARTTLS")
        self.security = security
        self.certificate = certificate
        self.auth = auth
        self.port = port or free_port()
        self.handler = Handler()
        self.logins: list[str] = []
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate."""
        assert self.certificate is not None
        return self.certificate.client_context()

    def start(self) -> None:
        assert self._controller is None, "already running"
        self.handler.hung.clear()
        self._controller = Controller(self.handler, **self._controller_options())
        self._controller.start()

    def stop(self) -> None:
        """Stop listening and drop every connection; a hanging step ends without an answer."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def refuse(self, step: str, reply: str, *, times: int | None = 1) -> None:
        """Answer `reply` (e.g. "550 5.1.1 No such user") at MAIL, RCPT or DATA."""
        assert step in STEPS, step
        with self.handler.lock:
            self.handler.refusals[step] = _Refusal(reply, times)

    def hang(self, step: str) -> None:
        """Say nothing at `step` until `release()` (or `stop()`, which answers nothing)."""
        assert step in STEPS, step
        self.handler.released.clear()
        self.handler.hanging.add(step)

    def release(self) -> None:
        self.handler.hanging.clear()
        self.handler.released.set()

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _controller_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "hostname": LOOPBACK,
            "port": self.port,
            "server_hostname": "smtp.test.localhost",
            "ready_timeout": 10,
        }
        if self.security == "tls":
            assert self.certificate is not None
            options["ssl_context"] = self.certificate.server_context()
        elif self.security == "starttls":
            assert self.certificate is not None
            options["tls_context"] = self.certificate.server_context()
            options["require_starttls"] = True
        if self.auth:
            options["authenticator"] = self._authenticate
            options["auth_required"] = True
        return options

    def _authenticate(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert self.auth is not None
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.auth
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


def _peer(session: Session) -> tuple[str, int]:
    peer = session.peer
    assert isinstance(peer, tuple)
    return str(peer[0]), int(peer[1])


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback for the test."""
    with SmtpServer() as server:
        yield server
