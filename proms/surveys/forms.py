"""Patient forms. Question forms are built from instrument definitions, once per item."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange

from proms.instruments.model import Item


class StartForm(FlaskForm):
    """No fields: the CSRF token, and a POST, so a link preview cannot start anything."""


class NewLinkForm(FlaskForm):
    pass


class SubmitAnswersForm(FlaskForm):
    pass


class IdentityForm(FlaskForm):
    day = IntegerField(
        # TRANSLATORS: Day, Month and Year label the three boxes of the date of birth.
        _l("Day"),
        validators=[
            InputRequired(_l("Enter the day you were born, for example 27.")),
            NumberRange(1, 31, _l("The day is a number from 1 to 31.")),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "bday-day"},
    )
    month = IntegerField(
        _l("Month"),
        validators=[
            InputRequired(_l("Enter the month you were born, for example 3.")),
            NumberRange(1, 12, _l("The month is a number from 1 to 12.")),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "bday-month"},
    )
    year = IntegerField(
        _l("Year"),
        validators=[
            InputRequired(_l("Enter the year you were born, for example 1957.")),
            NumberRange(1900, 2100, _l("Enter the year with four digits, for example 1957.")),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "bday-year"},
    )


class QuestionForm(FlaskForm):
    """Base of every question form: one answer, Next, and Skip."""

    answer: RadioField
    next = SubmitField(_l("Next"))
    skip = SubmitField(_l("Skip this question"))


_FORMS: dict[tuple[object, ...], type[QuestionForm]] = {}


def question_form_class(item: Item) -> type[QuestionForm]:
    """The form class of one item (its options are its choices), built once per wording."""
    key = (item.id, item.text, item.options)
    form_class = _FORMS.get(key)
    if form_class is None:
        answer = RadioField(
            item.text,
            choices=[SelectChoice(str(option.value), option.label) for option in item.options],
            # TRANSLATORS: “Skip this question” is the button of that name; keep the two the same.
            validators=[InputRequired(_l("Choose an answer, or use “Skip this question”."))],
        )
        form_class = type(f"Question_{item.id}", (QuestionForm,), {"answer": answer})
        if len(_FORMS) > 4096:
            _FORMS.clear()
        _FORMS[key] = form_class
    return form_class
