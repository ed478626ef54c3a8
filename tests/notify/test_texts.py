"""What messages say, in English and Spanish: who asks, the link, until when, how to stop, and
nothing about the patient's health; text messages in as few segments as their words allow."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from typing import Any

import pytest
from flask import Flask

from proms.notify.texts import CHANNELS, KINDS, MessageContext, Rendered, render
from tests.notify.helpers import HEALTH_WORDS

LANGUAGES = ("en", "es")
# A typical message: a 20-character clinic name, a 10-character first name, and a link of a
# 30-character base address with a 43-character token (secrets.token_urlsafe(32)).
CLINIC = "Lakeside Family Care"
FIRST_NAME = "Alexandrin"
BASE = "https://proms.lakeside.example"
LINK = f"{BASE}/s/{'T' * 43}"
UNSUBSCRIBE = f"{BASE}/u/{'U' * 43}"
CLOSES_ON = dt.date(2027, 3, 12)  # a Friday


def _context(**overrides: Any) -> MessageContext:
    context = MessageContext(
        kind="invite",
        language="en",
        first_name=FIRST_NAME,
        clinic_name=CLINIC,
        clinic_phone="+12165550100",
        link=LINK,
        closes_on=CLOSES_ON,
        unsubscribe_url=UNSUBSCRIBE,
    )
    return dataclasses.replace(context, **overrides)


def _parts(rendered: Rendered) -> list[str]:
    return [part for part in (rendered.subject, rendered.text, rendered.html) if part]


def test_typical_sizes_are_what_the_comment_says() -> None:
    assert (len(CLINIC), len(FIRST_NAME), len(BASE), len(LINK)) == (20, 10, 30, 76)


# No health information --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "kind", "channel"), list(itertools.product(LANGUAGES, KINDS, CHANNELS))
)
def test_no_health_words(message_app: Flask, language: str, kind: str, channel: str) -> None:
    rendered = render(_context(language=language, kind=kind), channel)

    for part in _parts(rendered):
        words = set(re.findall(r"\w+", part.lower()))
        assert not words & set(HEALTH_WORDS), (language, kind, channel, words & set(HEALTH_WORDS))


@pytest.mark.parametrize(("language", "kind"), list(itertools.product(LANGUAGES, KINDS)))
def test_the_subject_is_generic(message_app: Flask, language: str, kind: str) -> None:
    rendered = render(_context(language=language, kind=kind), "email")

    assert rendered.subject is not None
    assert CLINIC in rendered.subject
    assert FIRST_NAME not in rendered.subject  # a subject shows on a locked phone's screen
    assert LINK not in rendered.subject


# Emails -----------------------------------------------------------------------------------------


def test_an_english_invitation_email(message_app: Flask) -> None:
    rendered = render(_context(), "email")

    assert rendered.subject == f"Your follow-up questions from {CLINIC}"
    assert rendered.text == (
        f"Hello {FIRST_NAME},\n\n"
        f"{CLINIC} would like to know how you have been. Your answers help the people looking "
        "after you.\n\n"
        f"Answer the questions:\n{LINK}\nOpen until Friday, March 12.\n\n"
        "This link is for you alone. Please do not share it.\n\n"
        f"Questions? Contact {CLINIC}: +1 216-555-0100.\n\n"
        f"Don't want these emails? Unsubscribe: {UNSUBSCRIBE}\n\n"
        "This email was sent automatically. Replies are not read.\n"
    )
    assert rendered.segments is None
    assert rendered.encoding is None


def test_a_spanish_invitation_email(message_app: Flask) -> None:
    rendered = render(_context(language="es"), "email")

    assert rendered.subject == f"Sus preguntas de seguimiento de {CLINIC}"
    assert rendered.text.startswith(f"Hola, {FIRST_NAME}:\n\n{CLINIC} quiere saber cómo ha estado.")
    assert "Disponible hasta el viernes, 12 de marzo." in rendered.text
    assert f"¿Tiene preguntas? Comuníquese con {CLINIC}: +1 216-555-0100." in rendered.text
    assert f"¿No desea recibir estos correos? Darse de baja: {UNSUBSCRIBE}" in rendered.text
    assert rendered.html is not None
    assert '<html lang="es">' in rendered.html
    assert "Responder las preguntas</a>" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_html_has_the_button_the_address_and_the_unsubscribe_link(
    message_app: Flask, language: str
) -> None:
    rendered = render(_context(language=language, kind="reminder"), "email")

    html = rendered.html
    assert html is not None
    assert html.count(f'<a href="{LINK}"') == 2  # the button, and the address written out
    assert f">{LINK}</a>" in html
    assert f'<a href="{UNSUBSCRIBE}"' in html
    assert f'<html lang="{language}">' in html
    assert "<title>" in html
    assert "<script" not in html


def test_each_kind_says_what_it_is(message_app: Flask) -> None:
    reminder = render(_context(kind="reminder"), "email")
    new_link = render(_context(kind="new_link"), "email")

    assert reminder.subject == f"Reminder: your follow-up questions from {CLINIC}"
    assert "A reminder:" in reminder.text
    assert new_link.subject == f"Your new link from {CLINIC}"
    assert "Here is the new link you asked for." in new_link.text


def test_without_a_name_a_phone_or_an_unsubscribe_address(message_app: Flask) -> None:
    rendered = render(_context(first_name=None, clinic_phone=None, unsubscribe_url=None), "email")

    assert rendered.text.startswith("Hello,\n\n")
    assert "Questions?" not in rendered.text
    assert "Unsubscribe" not in rendered.text
    assert rendered.html is not None
    assert "Unsubscribe" not in rendered.html


def test_values_are_escaped_in_html_and_kept_on_one_line(message_app: Flask) -> None:
    rendered = render(
        _context(clinic_name="Smith & Jones <Clinic>", first_name="Ana\nRosa"), "email"
    )

    assert rendered.html is not None
    assert "Smith &amp; Jones &lt;Clinic&gt;" in rendered.html
    assert "<Clinic>" not in rendered.html
    assert rendered.text.startswith("Hello Ana Rosa,\n")


def test_a_formatted_phone_number_is_shown_as_given(message_app: Flask) -> None:
    rendered = render(_context(clinic_phone="(216) 555-0100"), "email")

    assert f"Questions? Contact {CLINIC}: (216) 555-0100." in rendered.text


# Text messages ----------------------------------------------------------------------------------

# Segment counts of the typical message (the figures in the report of issue 10).
SEGMENTS = {
    ("en", "invite"): 1,
    ("en", "reminder"): 1,
    ("en", "new_link"): 1,
    ("es", "invite"): 2,
    ("es", "reminder"): 2,
    ("es", "new_link"): 2,
}


@pytest.mark.parametrize(("language", "kind"), list(SEGMENTS))
def test_typical_texts_fit_their_segments_in_gsm7(
    message_app: Flask, language: str, kind: str
) -> None:
    rendered = render(_context(language=language, kind=kind), "sms")

    assert (rendered.encoding, rendered.segments) == ("GSM-7", SEGMENTS[(language, kind)])
    assert rendered.subject is None
    assert rendered.html is None
    assert FIRST_NAME in rendered.text
    assert CLINIC in rendered.text
    assert f" {LINK} " in rendered.text  # spaces around it: a phone makes it a link


def test_the_english_text(message_app: Flask) -> None:
    rendered = render(_context(), "sms")

    assert rendered.text == (
        f"{CLINIC}: {FIRST_NAME}, how are you? {LINK} Answer by Mar 12. Reply STOP to stop"
    )
    assert len(rendered.text) == 160


def test_the_spanish_text(message_app: Flask) -> None:
    rendered = render(_context(language="es"), "sms")

    assert rendered.text == (
        f"{CLINIC}: {FIRST_NAME}, ¿qué tal se encuentra? {LINK} Puede contestar hasta el "
        "12 mar. Responda PARAR para darse de baja"
    )


@pytest.mark.parametrize(("language", "kind"), list(SEGMENTS))
def test_every_text_says_how_to_stop(message_app: Flask, language: str, kind: str) -> None:
    text = render(_context(language=language, kind=kind), "sms").text

    assert text.endswith(
        "Reply STOP to stop" if language == "en" else "Responda PARAR para darse de baja"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_name_goes_when_it_would_cost_a_segment(message_app: Flask, kind: str) -> None:
    long_name = render(_context(kind=kind, first_name="Maximiliana-Josefina"), "sms")
    not_gsm = render(_context(kind=kind, first_name="María"), "sms")  # "í" would force UCS-2

    for rendered in (long_name, not_gsm):
        assert (rendered.encoding, rendered.segments) == ("GSM-7", 1)
        assert CLINIC in rendered.text
        assert LINK in rendered.text
    assert "Maximiliana" not in long_name.text
    assert "María" not in not_gsm.text


def test_the_name_stays_when_the_text_takes_two_segments_anyway(message_app: Flask) -> None:
    rendered = render(_context(language="es", first_name="Maximiliana-Josefina"), "sms")

    assert "Maximiliana-Josefina" in rendered.text
    assert rendered.segments == 2


def test_no_name_no_greeting(message_app: Flask) -> None:
    rendered = render(_context(first_name="  "), "sms")

    assert rendered.text.startswith(f"{CLINIC}: how are you? {LINK}")


# Refusals and the real app ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "channel", "match"),
    [
        ({"kind": "survey"}, "sms", "unknown message kind"),
        ({}, "fax", "unknown channel"),
        ({"language": "fr"}, "email", "unknown language"),
    ],
)
def test_unknown_values_are_refused(
    message_app: Flask, overrides: dict[str, str], channel: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        render(_context(**overrides), channel)


def test_renders_in_the_whole_app_whatever_the_surrounding_language(app: Flask) -> None:
    with app.test_request_context("/s/x", headers={"Accept-Language": "es"}):
        english = render(_context(), "email")
        spanish = render(_context(language="es"), "sms")

    assert english.subject == f"Your follow-up questions from {CLINIC}"
    assert "Responda PARAR" in spanish.text
