"""Question forms are built from instrument definitions without deprecated WTForms API.

The suite turns warnings into errors, and WTForms 3.3 deprecates (value, label) tuples as
choices: a question page that builds its form that way fails under test, and will break when
WTForms 3.4 removes them.
"""

from __future__ import annotations

import warnings

from flask import Flask

from proms.instruments.registry import bundled_registry
from proms.surveys.forms import question_form_class
from tests.surveys.helpers import END_OF_COURSE_CODES


def test_question_forms_use_no_deprecated_wtforms_api(app: Flask) -> None:
    registry = bundled_registry()
    with app.test_request_context("/s/q/1"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for code in END_OF_COURSE_CODES:
            for item in registry.get(code).items:
                form = question_form_class(item)(formdata=None, data={"answer": None})
                assert [choice.data for choice in form.answer] == [
                    str(option.value) for option in item.options
                ]


def test_a_question_form_offers_exactly_the_items_options(app: Flask) -> None:
    item = bundled_registry().get("promis-pi-4a").items[0]
    with app.test_request_context("/s/q/1"), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Passing SelectField choices as tuples", DeprecationWarning
        )
        form = question_form_class(item)(formdata=None, data={"answer": "3"})
        labels = [str(choice.label.text) for choice in form.answer]
        assert labels == [option.label for option in item.options]
        assert [choice.checked for choice in form.answer] == [False, False, True, False, False]
