"""The cohort report in a real browser: an analyst lands on it; it fits a phone and a desktop.

The demo cohort (a fifth of it: patients who improve, stay or worsen, answers thinning out over
time, side effects, messages by email and text in two languages) gives the table and the charts
real shapes. It is loaded once and read at both widths. Screenshots: report-phone and
report-desktop (artifacts/screenshots/).
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from proms.db import db, utcnow
from proms.demo import load_demo
from tests.e2e.helpers import WIDTHS, LiveServer, Visit, check_axe, sideways_overflow

ANALYST, PASSWORD = "analyst@demo.example.org", "proms-demo-analyst"


def test_an_analyst_reads_the_cohort_report(
    live_server: LiveServer, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    load_demo(db.session, now=utcnow(), size=0.2)
    db.session.commit()
    for width in WIDTHS:
        viewport, is_mobile = width.values[0]  # type: ignore[misc]
        context = live_server.new_context(browser, viewport=viewport, is_mobile=is_mobile)
        visit = Visit(
            live=live_server,
            page=context.new_page(),
            width=viewport["width"],
            label="phone" if is_mobile else "desktop",
            shoot=shoot,
        )
        page = visit.page
        visit.sign_in(ANALYST, PASSWORD)
        # An analyst's start page is the report, showing the clinic's protocol straight away.
        expect(visit.heading()).to_have_text("Cohort report")
        expect(page.get_by_role("heading", name="Pain interference", level=3)).to_be_visible()
        chart = "Share meaningfully improved and worsened, pain interference"
        expect(page.get_by_role("img", name=chart)).to_be_visible()
        expect(page.get_by_role("heading", name="Messages")).to_be_visible()
        page.get_by_label("Courses starting on or after").fill("2025-01-01")
        page.get_by_role("button", name="Show the report").click()
        expect(page.locator(".report-scope")).to_contain_text("courses starting from 2025-01-01")
        # Each domain's full table opens under its heading (no script: a details element).
        page.get_by_text("Response, improved, worsened and mean change by time point").first.click()
        expect(page.get_by_role("row", name="End of course").first).to_be_visible()
        name = f"report-{visit.label}"
        problem = sideways_overflow(page, visit.width)
        check_axe(page, name)
        shoot(page, name)
        assert problem is None, problem
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        assert download.value.suggested_filename.startswith("cohort-ketamine-infusion-course-")
        visit.done()
