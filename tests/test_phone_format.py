"""The `phone` template filter: a stored E.164 number as people write it where the clinic is."""

from __future__ import annotations

import pytest
from flask import Flask, render_template_string

from proms.templating import phone


@pytest.mark.parametrize(
    ("number", "zone", "shown"),
    [
        # The clinic's own country: national format.
        ("+12165550100", "America/New_York", "(216) 555-0100"),
        ("+12165550100", "America/Los_Angeles", "(216) 555-0100"),
        ("+34912345678", "Europe/Madrid", "912 34 56 78"),
        ("+442079460000", "Europe/London", "020 7946 0000"),
        # +1 is one numbering plan: a Canadian number reads (and dials) the same from the US.
        ("+14165550100", "America/Chicago", "(416) 555-0100"),
        ("+12165550100", "America/Toronto", "(216) 555-0100"),
        # Another country: international format, with the calling code.
        ("+12165550100", "Europe/Madrid", "+1 216-555-0100"),
        ("+34912345678", "America/New_York", "+34 912 34 56 78"),
        # No known country for the clinic: international.
        ("+12165550100", None, "+1 216-555-0100"),
        ("+12165550100", "UTC", "+1 216-555-0100"),
        ("+12165550100", "Not/AZone", "+1 216-555-0100"),
    ],
)
def test_a_number_is_national_at_home_and_international_abroad(
    number: str, zone: str | None, shown: str
) -> None:
    assert phone(number, zone) == shown


@pytest.mark.parametrize("number", ["", None])
def test_no_number_is_nothing(number: str | None) -> None:
    assert phone(number, "America/New_York") == ""


@pytest.mark.parametrize("number", ["not a number", "+1216555", "2165550100", "+999123"])
def test_what_is_not_a_possible_number_is_shown_as_stored(number: str) -> None:
    assert phone(number, "America/New_York") == number


def test_the_filter_formats_the_text_and_the_link_keeps_e164(app: Flask) -> None:
    template = '<a href="tel:{{ n }}">{{ n|phone(zone) }}</a>'
    with app.test_request_context():
        html = render_template_string(template, n="+12165550100", zone="America/New_York")
    assert html == '<a href="tel:+12165550100">(216) 555-0100</a>'
