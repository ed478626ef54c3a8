"""What the browser tests build on: where the tools are, a phone's profile, the live server.

`missing_tool` says why the browser tests cannot run here (tests/e2e/conftest.py skips them, or
under CI fails the run). `LiveServer` is the app on a real HTTP server, as the `live_server`
fixture starts it: it records every request and error response of the browser contexts it opens.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from proms.admin.models import Clinic
from proms.admin.services import create_clinic
from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.db import db
from tests.helpers import PASSWORD, enrol_if_required, next_code

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, Response

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE_REPORTS = ROOT / "artifacts" / "axe"
# axe-core findings that fail a test; the others are saved in AXE_REPORTS for people to read.
BLOCKING_IMPACTS = ("serious", "critical")

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


class QuietHandler(WSGIRequestHandler):
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


def check_axe(page: Page, name: str) -> None:
    """Run axe-core on the page; fail on serious or critical violations, save all of them."""
    page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    violations = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]],
        }
        for v in result["violations"]
    ]
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    report = {"page": name, "url": page.url, "axe": result["testEngine"], "violations": violations}
    (AXE_REPORTS / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe on {name} ({page.url}):\n" + json.dumps(blocking, indent=2)


# The elements and text that reach past `width` px: what makes a page scroll sideways.
WIDER_THAN_VIEWPORT = """(width) => {
  const right = (r) => Math.round(r.getBoundingClientRect().right);
  const name = (e) => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '');
  const wide = [...document.body.querySelectorAll('*')].filter((e) => right(e) > width);
  const found = wide.filter((e) => !wide.some((o) => o !== e && e.contains(o))).map(
    (e) => `${name(e)} "${(e.textContent || '').trim().slice(0, 30)}" (${right(e)})`);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    if (node.textContent.trim() && right(range) > width) {
      found.push(`text in ${name(node.parentElement)} "${node.textContent.trim().slice(0, 30)}"`
        + ` (${right(range)})`);
    }
  }
  return found;
}"""


def sideways_overflow(page: Page, width: int) -> str | None:
    """Why the page scrolls sideways in a `width` px viewport (what reaches past it), or None."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if scroll_width <= width:
        return None
    culprits = page.evaluate(WIDER_THAN_VIEWPORT, width)
    return f"{scroll_width} px wide in a {width} px viewport; too wide: {culprits}"


# A staff member's browser at one width -------------------------------------------------------

# Phone (390 x 844, a touch device) and desktop widths; the `visit` fixture runs a test at both.
WIDTHS = [
    pytest.param(({"width": 390, "height": 844}, True), id="phone"),
    pytest.param(({"width": 1280, "height": 800}, False), id="desktop"),
]


@dataclass
class Visit:
    """One browser at one width: `look` checks and photographs the page it is on.

    Screenshots are named <prefix>-<page>-<phone|desktop>.png; set `prefix` per test module.
    """

    live: LiveServer
    page: Page
    width: int
    label: str
    shoot: Callable[[Page, str], None]
    prefix: str = "page"
    overflowing: list[str] = field(default_factory=list)

    def look(self, name: str) -> None:
        # The caller waits for the page it expects; this only lets a load under way finish.
        self.page.wait_for_load_state("load")
        if problem := sideways_overflow(self.page, self.width):
            self.overflowing.append(f"{name}: {problem}")
        check_axe(self.page, f"{self.prefix}-{name}-{self.label}")
        self.shoot(self.page, f"{self.prefix}-{name}-{self.label}")

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        """The password, then the code from the phone when two-step sign-in asks for one."""
        enrol_if_required(email)
        self.page.goto(f"{self.live.url}/login")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Sign in").click()
        if urlsplit(self.page.url).path == "/login/code":
            self.page.get_by_label("Code").fill(next_code(email))
            self.page.get_by_role("button", name="Sign in").click()

    def heading(self) -> Locator:
        return self.page.get_by_role("heading", level=1)

    def flash(self) -> Locator:
        return self.page.locator(".flash")

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()

    def done(self, *expected: tuple[int, str]) -> None:
        """Nothing overflowed, and no error responses but the `expected` ones (bad input)."""
        assert not self.overflowing, "\n".join(self.overflowing)
        assert not self.live.unexpected_failures(*expected), self.live.failures


def seed_clinic(
    live: LiveServer, email: str, role: Role, time_zone: str = "America/New_York"
) -> Clinic:
    """Riverside Pain Clinic (the bundled protocol installed) and one staff member."""
    clinic = create_clinic(
        db.session, slug="riverside", name="Riverside Pain Clinic", time_zone=time_zone
    )
    create_staff(
        db.session,
        hasher_from_config(live.app.config),
        email=email,
        full_name="Rosa Ramirez-Castellanos",
        password=PASSWORD,
        clinic=clinic,
        role=role,
    )
    return clinic
