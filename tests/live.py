"""A real HTTP server for the app under test, and a small cookie-keeping client for it.

The race tests send requests at the same moment from several threads to a server that runs
each in a thread of its own, as gunicorn's threads or a second worker would: the test client
cannot show what happens when two requests really overlap in the database.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

T = TypeVar("T")

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class _QuietHandler(WSGIRequestHandler):
    """No access log on the test output (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def location(self) -> str:
        """The path and query a redirect points at."""
        parts = urlsplit(self.headers["Location"])
        return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Browser:
    """One browser: its own cookies, the CSRF token of the last form page it read."""

    host: str
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, method: str, path: str, form: Mapping[str, Any] | None = None) -> Reply:
        headers = {}
        with self.lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode({k: str(v) for k, v in form.items()})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read().decode())
        finally:
            connection.close()
        self._keep_cookies(reply.headers.get_all("Set-Cookie") or [])
        match = CSRF_RE.search(reply.body)
        if match:
            self.csrf = match.group(1)
        return reply

    def _keep_cookies(self, set_cookies: Sequence[str]) -> None:
        with self.lock:
            for header in set_cookies:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if "max-age=0" in header.lower() or not value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: Mapping[str, Any] | None = None) -> Reply:
        return self.request("POST", path, {"csrf_token": self.csrf, **(form or {})})


@dataclass
class Server:
    app: Flask
    host: str
    port: int
    _delay: list[float]

    def browser(self) -> Browser:
        return Browser(self.host, self.port)

    @contextmanager
    def slow_database(self, seconds: float = 0.01) -> Iterator[None]:
        """Every SQL statement waits a little first: requests overlap as under real load."""
        self._delay[0] = seconds
        try:
            yield
        finally:
            self._delay[0] = 0.0


@contextmanager
def serve(app: Flask) -> Iterator[Server]:
    """The app on 127.0.0.1 at a free port, one thread per request."""
    delay = [0.0]
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine

    def maybe_wait(*_args: Any) -> None:
        if delay[0]:
            time.sleep(delay[0])

    sa.event.listen(engine, "before_cursor_execute", maybe_wait)
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    # Polls for shutdown every 50 ms, not 0.5 s: shutdown() at the end waits for that.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-server", daemon=True
    )
    thread.start()
    try:
        yield Server(app, "127.0.0.1", server.server_port, delay)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        sa.event.remove(engine, "before_cursor_execute", maybe_wait)


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together; their results in order (errors re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException | None] = [None] * len(calls)
    finished = [False] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = calls[index]()
        except BaseException as exc:  # re-raised in the test's thread below
            results[index] = exc
        finished[index] = True

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(finished), "a request did not finish"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
