"""Browser tests: the real app on a real HTTP server, driven by Debian's Chromium.

Playwright (the Python package) drives /usr/bin/chromium; no browser is ever downloaded. axe-core
comes from npm (package.json at the repository root). When any of the three is missing the
whole folder is skipped, saying which one: CI installs them (.ci/run), a laptop may not.

The server is werkzeug's, in a thread of the test process, serving an app built by the
`make_app` fixture on the test database (so its tables are emptied after every test). Tests seed
through the services in their own app context and commit before the browser starts.

The tools' paths, the phone's profile and `LiveServer` are in tests/e2e/helpers.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from tests.e2e.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HERE,
    SCREENSHOTS,
    WIDTHS,
    LiveServer,
    QuietHandler,
    Visit,
    missing_tool,
)
from tests.helpers import in_ci

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_tool()
    if reason is None:
        return
    if in_ci():
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


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 at a free port, with the test's app context pushed."""
    # Plain HTTP: a Secure cookie would be dropped by the browser, so the survey would end
    # after "Start". Otherwise the test config.
    app = make_app(SESSION_COOKIE_SECURE=False)
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler
    )
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    # Polls for shutdown every 50 ms, not 0.5 s: shutdown() at the end waits for that.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-server", daemon=True
    )
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
def shoot(database_kind: str) -> Callable[[Page, str], None]:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png, for people to review.

    The SQLite pass saves them: the PostgreSQL pass renders the same pages, and `make test` runs
    the two side by side, which would write each file twice at once (and spend about a minute
    doing it). Nothing asserts on a screenshot.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> None:
        if database_kind == "sqlite":
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save


@pytest.fixture(params=WIDTHS)
def visit(
    request: pytest.FixtureRequest,
    live_server: LiveServer,
    browser: Browser,
    shoot: Callable[[Page, str], None],
) -> Visit:
    """The test's browser, once at a phone's width and once at a desktop's."""
    viewport, is_mobile = request.param
    context = live_server.new_context(browser, viewport=viewport, is_mobile=is_mobile)
    return Visit(
        live=live_server,
        page=context.new_page(),
        width=viewport["width"],
        label="phone" if is_mobile else "desktop",
        shoot=shoot,
        prefix=getattr(request.module, "SCREENSHOT_PREFIX", "page"),
    )
