"""What the patient pages say and how, at phone size: one error message, sending from the top of
the review, the clinic's phone number as people write it, the notice of an unsaved change.

tests/e2e checks the same in a real browser (accessible names and descriptions, the viewport).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask, g, render_template
from markupsafe import escape

from proms.scheduling.models import Assessment, AssessmentStatus
from tests.helpers import World
from tests.surveys.helpers import BASELINE_CODES, CLINIC_PHONE, Survey

CHOOSE_AN_ANSWER = "Choose an answer, or use “Skip this question”."
SEND_FORM = re.compile(r'<form method="post" action="/s/submit">\s*(.*?)</form>', re.S)


def test_next_without_an_answer_says_so_once_tied_to_the_answers(survey: Survey) -> None:
    survey.started()
    survey.question(1)
    response = survey.post_question(1, {"next": "Next"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert body.count(str(escape(CHOOSE_AN_ANSWER))) == 1
    assert body.count('role="alert"') == 1
    message = re.search(r'<p class="error-summary" role="alert" id="answer-error">[^<]+</p>', body)
    assert message, body
    assert '<fieldset class="question" aria-describedby="answer-error">' in body
    # Between the question and its answers, so it is seen on a phone without scrolling.
    assert body.index("</legend>") < message.start() < body.index('<div class="options">')
    assert "<title>Error: Question 1 of " in body


def test_a_question_without_an_error_has_no_message(survey: Survey) -> None:
    survey.started()
    body = survey.question(1).get_data(as_text=True)
    assert "aria-describedby" not in body
    assert 'role="alert"' not in body
    assert "<title>Question 1 of " in body


def test_the_review_can_be_sent_from_its_top(survey: Survey, baseline: Assessment) -> None:
    """The send button comes first, before anything to look over (a summary, not 35 answers)."""
    survey.started()
    survey.skip(1)
    survey.answer_all(BASELINE_CODES, start_at=2, read_pages=False)
    body = survey.review().get_data(as_text=True)
    forms = SEND_FORM.findall(body)
    assert len(forms) == 1
    assert body.index("Send my answers") < body.index("Questions without an answer")
    assert body.index("Send my answers") < body.index("Look over or change your answers")
    assert body.count('id="csrf_token"') == 0
    for form in forms:
        assert re.search(r'<input name="csrf_token" type="hidden" value="[^"]+">', form), form
        assert "Send my answers" in form
    assert "You answered 34 of 35 questions." in body
    top_token = re.search(r'value="([^"]+)"', forms[0])
    assert top_token
    sent = survey.client.post("/s/submit", data={"csrf_token": top_token.group(1)})
    assert sent.status_code == 303
    assert sent.headers["Location"].endswith("/s/done")
    assert baseline.status is AssessmentStatus.COMPLETED


def test_the_review_counts_skipped_questions(survey: Survey) -> None:
    survey.started()
    survey.skip(1)
    survey.answer_all(BASELINE_CODES, start_at=2, read_pages=False)
    body = survey.review().get_data(as_text=True)
    assert "You answered 34 of 35 questions." in body


def test_the_clinics_phone_number_is_written_for_reading_and_dialled_as_stored(
    survey: Survey, world: World
) -> None:
    """Clinic A is in America/New_York: its +1 number is shown as in the US."""
    body = survey.open().get_data(as_text=True)
    assert f'<a href="tel:{CLINIC_PHONE}">(216) 555-0100</a>' in body


@pytest.mark.parametrize(
    ("language", "notice"),
    [
        ("en", "Your answers had already been sent, so your last change was not saved."),
        ("es", "Sus respuestas ya se habían enviado, así que su último cambio no se guardó."),
    ],
)
def test_the_thank_you_page_says_when_a_last_change_was_not_saved(
    app: Flask, world: World, language: str, notice: str
) -> None:
    clinic = world.clinic_a

    def render(**context: object) -> str:
        with app.test_request_context("/s/done"):
            g.patient_language = language
            return render_template("surveys/done.html", scores=[], titles={}, **context)

    assert notice in render(clinic=clinic, unsaved_change=True)
    assert notice not in render(clinic=clinic)
    assert notice not in render(clinic=clinic, unsaved_change=False)


def test_a_clinic_abroad_shows_its_number_in_international_form(
    world: World, browser: Callable[[str], Survey], link: str
) -> None:
    world.clinic_a.time_zone = "Europe/Madrid"
    body = browser(link).open().get_data(as_text=True)
    assert f'<a href="tel:{CLINIC_PHONE}">+1 216-555-0100</a>' in body
