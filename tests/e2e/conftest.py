"""Browser tests: the real app on a real HTTP server, driven by Debian's Chromium.

Playwright (the Python package) drives /usr/bin/chromium; no browser is ever downloaded. axe-core
comes from npm (package.json at the repository root). When any of the three is missing the
whole folder is skipped, saying which one: CI installs them (.ci/run), a laptop may not.

The server is werkzeug's, in a thread of the test process, serving an app built by the
`make_app` fixture on the test database (so its tables are emptied after every test). Tests seed
through the services in their own app context and commit before the browser starts.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request, Response

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

# Debian's Chromium, headless, with nothing that phones home (the request log must stay local).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# A phone: 390 x 844 CSS pixels (an iPhone 12-15), touch, mobile viewport rules.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "en-US",
}


def missing_tool() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not AXE_JS.is_file():
        return f"{AXE_JS.relative_to(ROOT)} is missing (npm ci at the repository root)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_tool()
    if reason is None:
        return
    if os.environ.get("CI"):
        # CI installs these (.ci/run): a missing one is a broken install, not a reason to skip.
        raise pytest.UsageError(f"browser tests cannot run in CI: {reason}")
    skip = pytest.mark.skip(reason=f"browser tests skipped: {reason}")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


class _QuietHandler(WSGIRequestHandler):
    """No access log on the test output (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class LiveServer:
    app: Flask
    url: str
    origin: str
    contexts: list[BrowserContext] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (status, path) of 4xx/5xx

    def new_context(self, browser: Browser, **options: Any) -> BrowserContext:
        """A fresh browser profile (another device): phone-sized unless told otherwise.

        Every request it makes is recorded in `requests`, to check that none leaves the site.
        """
        context = browser.new_context(**{**PHONE, **options})
        context.set_default_timeout(10_000)
        context.on("request", self._record)
        context.on("response", self._check)
        self.contexts.append(context)
        return context

    def _record(self, request: Request) -> None:
        self.requests.append(request.url)

    def _check(self, response: Response) -> None:
        if response.status >= 400:
            self.failures.append((response.status, urlsplit(response.url).path))

    def unexpected_failures(self, *expected: tuple[int, str]) -> list[tuple[int, str]]:
        """Error responses other than these and the browser's own /favicon.ico (a 404)."""
        return [
            failure
            for failure in self.failures
            if failure not in expected and failure != (404, "/favicon.ico")
        ]

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but this server (data: URLs never leave the page)."""
        return [
            url
            for url in self.requests
            if not url.startswith("data:") and _origin(url) != self.origin
        ]

    def link(self, raw_token: str) -> str:
        return f"{self.url}/s/{raw_token}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 at a free port, with the test's app context pushed."""
    # Plain HTTP: a Secure cookie would be dropped by the browser, so the survey would end
    # after "Start". Otherwise the test config.
    app = make_app(SESSION_COOKIE_SECURE=False)
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    live = LiveServer(app=app, url=url, origin=url)
    try:
        with app.app_context():
            yield live
    finally:
        for context in live.contexts:
            context.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def shoot() -> Callable[[Page, str], None]:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png, for people to review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save
