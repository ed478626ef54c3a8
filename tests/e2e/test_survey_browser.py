"""A patient answers the baseline questionnaire on a phone, in a real browser.

Debian's Chromium at 390 x 844 with touch completes the baseline of the ketamine protocol
(PROMIS pain interference, physical function and sleep disturbance, PASS-20, PEG): it goes back
to change an answer, stops halfway and resumes on another device, changes an answer from the
review page and sends; the stored answers and scores are then read from the database. The same
again with JavaScript off. axe-core checks every page type (no serious or critical violation),
and every page type is photographed to artifacts/screenshots/ for people to review.

axe is evaluated through the DevTools protocol (page.evaluate), not added as a <script> tag:
the app's Content-Security-Policy (script-src 'self') rightly refuses an inline script, and
bypassing the CSP for the test would also stop checking that the pages work under it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from proms.admin.models import Clinic, Enrollment, Protocol
from proms.admin.services import (
    bundled_protocol,
    create_clinic,
    enroll_patient,
    install_protocol,
    withdraw_enrollment,
)
from proms.db import db, utcnow
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Score
from proms.scheduling.models import Assessment, AssessmentStatus
from proms.scoring.types import Method, PromisForm, SummedForm
from proms.surveys import links
from proms.surveys.models import ResponseStatus, SurveyResponse
from tests.e2e.helpers import LiveServer, check_axe, sideways_overflow
from tests.helpers import add_patient

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

# Skips the module when Playwright is missing (the conftest says so for every test too).
expect = pytest.importorskip("playwright.sync_api").expect

Shoot = Callable[["Page", str], None]

BIRTH_ON = dt.date(1960, 5, 17)  # add_patient's default date of birth
TIME_ZONE = "America/New_York"  # add_patient's default time zone


# Seeding ----------------------------------------------------------------------------------------


@dataclass
class Site:
    clinic: Clinic
    protocol: Protocol  # the bundled ketamine protocol
    checked_protocol: Protocol  # the same, with the date-of-birth check


@dataclass
class Link:
    raw: str
    assessment_id: int
    enrollment: Enrollment


def seed_site() -> Site:
    clinic = create_clinic(
        db.session,
        slug="e2e",
        name="Riverside Pain Clinic",
        time_zone=TIME_ZONE,
        contact_phone="+12165550100",
        contact_email="pain@example.org",
    )
    clinic.show_patient_scores = True
    spec = bundled_protocol("ketamine-infusion-course")
    checked = {**spec, "slug": "ketamine-checked", "requires_identity_check": True}
    site = Site(
        clinic=clinic,
        protocol=install_protocol(db.session, clinic, spec),
        checked_protocol=install_protocol(db.session, clinic, checked),
    )
    db.session.flush()
    return site


def seed_link(
    site: Site, mrn: str, *, anchor_in_days: int = 1, identity_check: bool = False
) -> Link:
    """A patient enrolled with the first infusion `anchor_in_days` from today, and a link to
    the baseline questionnaire (open now with the default: it opens 14 days before)."""
    patient = add_patient(site.clinic, mrn, time_zone=TIME_ZONE, birth_on=BIRTH_ON)
    today = dt.datetime.now(ZoneInfo(TIME_ZONE)).date()
    protocol = site.checked_protocol if identity_check else site.protocol
    enrollment = enroll_patient(
        db.session, patient, protocol, today + dt.timedelta(days=anchor_in_days)
    )
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    raw = links.mint_token(db.session, baseline, now=utcnow(), max_age=dt.timedelta(days=30))
    return Link(raw, baseline.id, enrollment)


# The baseline questionnaire ---------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    number: int
    definition: InstrumentDefinition
    item_id: str
    text: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]


def baseline_questions(link: Link) -> list[Asked]:
    """The questions the patient should see, in order, from the bundled definitions."""
    registry = bundled_registry()
    assessment = db.session.get(Assessment, link.assessment_id)
    assert assessment is not None
    asked: list[Asked] = []
    for code in assessment.timepoint.instrument_codes:
        definition = registry.get(code)
        for item in definition.items:
            asked.append(
                Asked(
                    number=len(asked) + 1,
                    definition=definition,
                    item_id=item.id,
                    text=item.text,
                    values=tuple(o.value for o in item.options),
                    labels=tuple(o.label for o in item.options),
                )
            )
    return asked


# Browser helpers --------------------------------------------------------------------------------


def expect_question(page: Page, number: int, total: int) -> None:
    expect(page.locator("#progress")).to_have_text(f"Question {number} of {total}")


def question_count(page: Page) -> int:
    """N of "Question n of N" on the page."""
    text = page.locator("#progress").inner_text()
    match = re.fullmatch(r"Question \d+ of (\d+)", text.strip())
    assert match, text
    return int(match.group(1))


def choose(page: Page, index: int) -> None:
    """Tap the option's label (the whole box is the target), as a thumb would."""
    page.locator("label.option").nth(index).tap()
    expect(page.get_by_role("radio").nth(index)).to_be_checked()


def tap_next(page: Page) -> None:
    page.get_by_role("button", name="Next", exact=True).tap()


def answer(page: Page, asked: Asked, total: int, index: int) -> None:
    expect_question(page, asked.number, total)
    expect(page.locator("legend .item-text")).to_have_text(asked.text)
    choose(page, index)
    tap_next(page)


def look(page: Page, name: str, js: bool, shoot: Shoot) -> None:
    """The checks every page type gets: axe (where scripts run), and a screenshot."""
    if js:
        check_axe(page, name)
    shoot(page, f"{name}-{'js' if js else 'nojs'}")


def new_phone(live: LiveServer, browser: Browser, js: bool, **options: Any) -> BrowserContext:
    return live.new_context(browser, java_script_enabled=js, **options)


def watch_console(page: Page, errors: list[str]) -> None:
    """Collect console errors and uncaught exceptions (a CSP refusal is one).

    "Failed to load resource" is the console's echo of an HTTP error status: those are checked
    with LiveServer.unexpected_failures instead.
    """

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))


# 1 and 2: the whole baseline, with JavaScript on and off ----------------------------------------

JS_MODES = [pytest.param(True, id="js"), pytest.param(False, id="nojs")]


@pytest.mark.parametrize("js", JS_MODES)
def test_a_patient_completes_the_baseline_on_a_phone(
    live_server: LiveServer, browser: Browser, shoot: Shoot, js: bool
) -> None:
    site = seed_site()
    link = seed_link(site, "E2E1")
    questions = baseline_questions(link)
    db.session.commit()

    # Every item gets its third option (second without JavaScript, for other scores); then
    # one answer is changed with Back and one from the review page.
    default = 2 if js else 1
    chosen = {q.number: default for q in questions}
    back_changed, review_changed = 3, 5
    console: list[str] = []

    # First device: start, answer 10 questions (changing one on the way back), stop.
    context = new_phone(live_server, browser, js)
    page = context.new_page()
    watch_console(page, console)
    page.goto(live_server.link(link.raw))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your health questionnaire")
    expect(page.get_by_text(f"{len(questions)} questions")).to_be_visible()
    look(page, "welcome", js, shoot)
    page.get_by_role("button", name="Start").tap()
    expect_question(page, 1, len(questions))
    total = question_count(page)
    assert total == len(questions) == 35  # PI 4 + PF 4 + sleep 4 + PASS-20 20 + PEG 3
    look(page, "question", js, shoot)

    for asked in questions[:3]:
        answer(page, asked, total, chosen[asked.number])
    expect_question(page, 4, total)
    page.get_by_role("link", name="Back", exact=True).tap()
    expect_question(page, 3, total)
    expect(page.get_by_role("radio").nth(chosen[3])).to_be_checked()
    chosen[back_changed] = 3
    choose(page, chosen[back_changed])
    look(page, "question-answered", js, shoot)
    tap_next(page)
    for asked in questions[3:10]:
        answer(page, asked, total, chosen[asked.number])
    expect_question(page, 11, total)
    page.close()
    context.close()

    # Another device: the link resumes at the first unanswered question.
    context = new_phone(live_server, browser, js)
    page = context.new_page()
    watch_console(page, console)
    page.goto(live_server.link(link.raw))
    page.get_by_role("button", name="Start").tap()
    expect_question(page, 11, total)

    # Next without an answer: the page says what to do, once, tied to the answers; nothing is
    # stored.
    tap_next(page)
    expect(page.get_by_role("alert")).to_contain_text("Choose an answer")
    expect(page.get_by_text("Choose an answer")).to_have_count(1)
    expect(page.get_by_role("group")).to_have_accessible_description(
        re.compile("^Choose an answer")
    )
    expect(page).to_have_title(re.compile(r"^Error: Question 11 of 35 · "))
    expect_question(page, 11, total)
    look(page, "question-error", js, shoot)
    eleventh = questions[10]
    db.session.rollback()
    stored = db.session.scalars(
        select(SurveyResponse).where(SurveyResponse.assessment_id == link.assessment_id)
    ).all()
    assert sum(len(r.answers) for r in stored) == 10
    assert all(eleventh.item_id not in r.answers for r in stored)

    for asked in questions[10:]:
        answer(page, asked, total, chosen[asked.number])

    # Review: a summary that sends without scrolling, and each questionnaire's answers one tap
    # away; every answer is shown there. Change one and come back to that list.
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    expect(page.get_by_text(f"You answered {total} of {total} questions.")).to_be_visible()
    send = page.get_by_role("button", name="Send my answers")
    expect(send).to_have_count(1)
    expect(send).to_be_in_viewport(ratio=1)
    look(page, "review", js, shoot)
    # One part per questionnaire, at most ten questions a part (PASS-20 is two).
    parts: list[list[Asked]] = []
    for asked in questions:
        if not parts or parts[-1][-1].definition is not asked.definition or len(parts[-1]) == 10:
            parts.append([])
        parts[-1].append(asked)
    part_links = page.locator("ul.parts a")
    expect(part_links).to_have_count(len(parts))
    for index, part in enumerate(parts):
        title = part[0].definition.title
        expect(part_links.nth(index)).to_have_text(title)
        part_links.nth(index).tap()
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        answers_shown = page.locator(".answers dd")
        expect(answers_shown).to_have_count(len(part))
        for row, asked in enumerate(part):
            expect(answers_shown.nth(row)).to_contain_text(asked.labels[chosen[asked.number]])
        if any(asked.number == review_changed for asked in part):
            look(page, "review-part", js, shoot)
            changed_part = (index, part)
        page.get_by_role("link", name="Back to your answers").first.tap()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    index, part = changed_part
    title = part[0].definition.title
    part_links.nth(index).tap()
    page.get_by_role("link", name=f"Change answer {review_changed}", exact=True).tap()
    expect_question(page, review_changed, total)
    expect(page.get_by_role("radio").nth(chosen[review_changed])).to_be_checked()
    expect(page.get_by_role("link", name="Back to your answers")).to_be_visible()
    look(page, "question-from-review", js, shoot)
    chosen[review_changed] = 0
    choose(page, chosen[review_changed])
    tap_next(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    changed = questions[review_changed - 1]
    position = [asked.number for asked in part].index(review_changed)
    expect(page.locator(".answers dd").nth(position)).to_contain_text(changed.labels[0])
    page.get_by_role("link", name="Back to your answers").first.tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")

    send.tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, your answers were sent")
    look(page, "done", js, shoot)
    thank_you = page.locator("main").inner_text()

    # The link now says it is done.
    page.goto(live_server.link(link.raw))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you, this questionnaire is done"
    )
    look(page, "state-completed", js, shoot)

    # Stored: one submitted response per instrument, the answers chosen, the expected scores.
    db.session.rollback()
    assessment = db.session.get(Assessment, link.assessment_id)
    assert assessment is not None
    assert assessment.status is AssessmentStatus.COMPLETED
    responses = {r.instrument.code: r for r in assessment.responses}
    assert sorted(responses) == sorted(assessment.timepoint.instrument_codes)
    assert all(r.status is ResponseStatus.SUBMITTED for r in responses.values())
    expected_answers: dict[str, dict[str, Any]] = {}
    for asked in questions:
        value = asked.values[chosen[asked.number]]
        expected_answers.setdefault(asked.definition.code, {})[asked.item_id] = value
    for code, response in responses.items():
        assert response.answers == expected_answers[code], code

    scores = db.session.scalars(select(Score).where(Score.assessment_id == assessment.id)).all()
    found = {(s.instrument_code, s.scale): s for s in scores}
    expected = expected_scores(questions, expected_answers)
    assert sorted(found) == sorted(expected)
    for key, (method, raw, t_score, se) in expected.items():
        score = found[key]
        assert score.method == method, key
        assert score.raw_score == pytest.approx(raw), key
        assert score.n_answered > 0, key
        if t_score is None:
            assert score.t_score is None, key
        else:
            assert (score.t_score, score.standard_error) == pytest.approx((t_score, se)), key
    # This clinic shows patients their scores: the thank-you page had the stored ones.
    title = bundled_registry().get("promis-pi-4a").title
    assert f"{title}: T {found[('promis-pi-4a', 'total')].t_score}" in thank_you

    assert not console, console
    # The one error status: Next without an answer (400).
    assert live_server.unexpected_failures((400, "/s/q/11")) == []
    assert live_server.foreign_requests() == []


def expected_scores(
    questions: list[Asked], answers: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], tuple[str, float, float | None, float | None]]:
    """(code, scale) -> (method, raw score, T, SE), computed by hand from the definitions."""
    definitions = {q.definition.code: q.definition for q in questions}
    expected: dict[tuple[str, str], tuple[str, float, float | None, float | None]] = {}
    for code, definition in definitions.items():
        form = definition.form()
        given = answers[code]
        if isinstance(form, PromisForm):
            raw = sum(given.values())
            t_score, se = form.table[raw]
            expected[(code, "total")] = ("table", raw, t_score, se)
        else:
            assert isinstance(form, SummedForm)
            for scale in form.scales:
                values = [given[item_id] for item_id in scale.item_ids]
                total = sum(values)
                raw = total / len(values) if form.method is Method.MEAN else total
                expected[(code, scale.key)] = (form.method.value, raw, None, None)
    return expected


# Every other page type: link states, the date-of-birth check, an error page -------------------


@pytest.mark.parametrize("js", JS_MODES)
def test_every_link_state_and_the_identity_check(
    live_server: LiveServer, browser: Browser, shoot: Shoot, js: bool
) -> None:
    site = seed_site()
    expired = seed_link(site, "E2E-OLD", anchor_in_days=-3)  # the baseline window has closed
    not_yet = seed_link(site, "E2E-SOON", anchor_in_days=30)  # it opens in 16 days
    withdrawn = seed_link(site, "E2E-GONE")
    withdraw_enrollment(db.session, withdrawn.enrollment, now=utcnow(), reason="e2e")
    stale = seed_link(site, "E2E-STALE")  # this link expired; the questionnaire is still open
    token = links.find_token(db.session, stale.raw)
    assert token is not None
    token.expires_at = utcnow() - dt.timedelta(minutes=1)
    checked = seed_link(site, "E2E-DOB", identity_check=True)
    db.session.commit()
    unknown = secrets.token_urlsafe(32)

    console: list[str] = []
    context = new_phone(live_server, browser, js)
    page = context.new_page()
    watch_console(page, console)

    def visit(path: str, status: int, heading: str, name: str) -> None:
        response = page.goto(live_server.url + path)
        assert response is not None
        assert response.status == status, (name, response.status)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        look(page, name, js, shoot)

    visit(f"/s/{unknown}", 404, "We could not find this link", "state-unknown")
    visit(f"/s/{expired.raw}", 410, "This link has expired", "state-expired")
    # The clinic's number as people write it in the clinic's country; the link dials E.164.
    phone = page.get_by_role("link", name="(216) 555-0100", exact=True)
    expect(phone).to_have_attribute("href", "tel:+12165550100")
    expect(page.get_by_role("button")).to_have_count(0)  # too late for a new link
    visit(f"/s/{not_yet.raw}", 200, "This questionnaire is not open yet", "state-not-yet-open")
    expect(page.get_by_text("It opens on")).to_be_visible()
    visit(f"/s/{withdrawn.raw}", 410, "This questionnaire is no longer needed", "state-withdrawn")
    visit(f"/s/{stale.raw}", 410, "This link has expired", "state-expired-new-link")
    page.get_by_role("button", name="Send me a new link").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("A new link is on its way")
    look(page, "new-link-sent", js, shoot)
    # Survey pages without the survey cookie (it lapsed, or another browser).
    visit("/s/review", 403, "Please open your link again", "session-ended")
    visit("/s/q/first", 404, "Not found", "error-not-found")

    # The date-of-birth check, on a protocol that asks for it.
    page.goto(live_server.link(checked.raw))
    page.get_by_role("button", name="Start").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("First, check it is you")
    look(page, "identity", js, shoot)
    page.get_by_role("button", name="Continue").tap()
    expect(page.get_by_role("alert")).to_have_text("Please check your date of birth.")
    expect(page.get_by_label("Day")).to_have_attribute("aria-invalid", "true")
    look(page, "identity-error", js, shoot)
    fill_birth_date(page, BIRTH_ON.replace(year=BIRTH_ON.year + 1))
    expect(page.get_by_role("alert")).to_contain_text("does not match our records")
    look(page, "identity-mismatch", js, shoot)
    fill_birth_date(page, BIRTH_ON)
    expect_question(page, 1, 35)

    assert not console, console
    assert (
        live_server.unexpected_failures(
            (404, f"/s/{unknown}"),
            (410, f"/s/{expired.raw}"),
            (410, f"/s/{withdrawn.raw}"),
            (410, f"/s/{stale.raw}"),
            (403, "/s/review"),
            (404, "/s/q/first"),
            (400, "/s/check"),
        )
        == []
    )
    assert live_server.foreign_requests() == []


def fill_birth_date(page: Page, born: dt.date) -> None:
    page.get_by_label("Day").fill(str(born.day))
    page.get_by_label("Month").fill(str(born.month))
    page.get_by_label("Year").fill(str(born.year))
    page.get_by_role("button", name="Continue").tap()


# 3: touch targets, 320 px screens and 200% zoom ------------------------------------------------

MIN_TARGET = 44  # CSS px: WCAG 2.5.5 (AAA) and Apple's guideline; proms.css promises it
MIN_TEXT_TARGET_WIDTH = 24  # CSS px: WCAG 2.5.8 (AA), for one-word links such as "Back"


def test_touch_targets_are_at_least_44_px(live_server: LiveServer, browser: Browser) -> None:
    """Options and Next are 44 px or more both ways; Skip and Back are 44 px tall."""
    site = seed_site()
    link = seed_link(site, "E2E-TAP")
    db.session.commit()
    page = new_phone(live_server, browser, True).new_page()
    page.goto(live_server.link(link.raw))
    page.get_by_role("button", name="Start").tap()
    expect_question(page, 1, 35)

    small: list[str] = []

    def measure(what: str, locator: Any, min_width: int = MIN_TARGET) -> None:
        assert locator.count() > 0, what
        for index in range(locator.count()):
            box = locator.nth(index).bounding_box()
            assert box is not None, what
            if box["height"] < MIN_TARGET or box["width"] < min_width:
                small.append(f"{page.url} {what} #{index + 1}: {box['width']}x{box['height']}")

    for number in (1, 33):  # five short options; the 0-10 scale of PEG (eleven)
        page.goto(f"{live_server.url}/s/q/{number}")
        expect_question(page, number, 35)
        measure("option", page.locator("label.option"))
        measure("Next", page.get_by_role("button", name="Next", exact=True))
        skip = page.get_by_role("button", name="Skip this question")
        measure("Skip", skip, MIN_TEXT_TARGET_WIDTH)
        if number > 1:
            back = page.get_by_role("link", name="Back", exact=True)
            measure("Back", back, MIN_TEXT_TARGET_WIDTH)
    assert not small, "\n".join(small)
    assert live_server.foreign_requests() == []


# What sticks out of the viewport: the innermost elements, and text lines wider than their box,
# as 'tag.class "text" (right edge)'.

REFLOW = [
    # A small phone; and 200% zoom of the 390 x 844 phone, which lays out like 195 x 422.
    pytest.param({"width": 320, "height": 568}, True, id="320px"),
    pytest.param({"width": 195, "height": 422}, False, id="zoom200"),
]


@pytest.mark.parametrize(("viewport", "is_mobile"), REFLOW)
def test_no_page_scrolls_sideways_on_a_small_screen_or_at_200_percent_zoom(
    live_server: LiveServer,
    browser: Browser,
    shoot: Shoot,
    viewport: dict[str, int],
    is_mobile: bool,
) -> None:
    """Every page type fits the width, and the questionnaire can be finished there."""
    site = seed_site()
    link = seed_link(site, "E2E-NARROW", identity_check=True)
    db.session.commit()
    width = viewport["width"]
    page = new_phone(
        live_server, browser, True, viewport=viewport, is_mobile=is_mobile, has_touch=True
    ).new_page()
    label = "320px" if width == 320 else "zoom200"
    overflowing: list[str] = []

    def fits(name: str) -> None:
        if problem := sideways_overflow(page, width):
            overflowing.append(f"{name}: {problem}")
        shoot(page, f"{name}-{label}")

    page.goto(live_server.link(link.raw))
    fits("welcome")
    page.get_by_role("button", name="Start").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("First, check it is you")
    fits("identity")
    page.get_by_role("button", name="Continue").tap()
    expect(page.get_by_role("alert")).to_be_visible()
    fits("identity-error")
    fill_birth_date(page, BIRTH_ON)
    expect_question(page, 1, 35)
    fits("question")
    tap_next(page)
    expect(page.get_by_role("alert")).to_be_visible()
    fits("question-error")
    choose(page, 4)
    tap_next(page)
    expect_question(page, 2, 35)
    for number in (16, 33):  # the longest item text (PASS-20), the eleven options of PEG
        page.goto(f"{live_server.url}/s/q/{number}")
        expect_question(page, number, 35)
        fits(f"question-{number}")
    page.goto(f"{live_server.url}/s/review")
    fits("review")
    page.get_by_role("button", name="Send my answers").last.tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, your answers were sent")
    fits("done")
    page.goto(live_server.link(link.raw))
    fits("state-completed")
    page.goto(live_server.link(secrets.token_urlsafe(32)))
    fits("state-unknown")

    assert not overflowing, "\n".join(overflowing)
    assert live_server.foreign_requests() == []
