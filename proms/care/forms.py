"""Care-team forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SearchField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from proms.care.models import NOTE_MAX_LENGTH
from proms.care.services import FILTERS
from proms.forms import strip

FILTER_CHOICES = [SelectChoice("", "Everyone")] + [SelectChoice(k, v) for k, v in FILTERS.items()]
PAGE_VALIDATORS = [Optional(), NumberRange(min=1, max=100_000, message="There is no such page.")]


class PatientPageForm(FlaskForm):
    """`?page=N` of the plain patient list: no names in the URL, so a GET is fine."""

    class Meta:
        csrf = False

    page = IntegerField("Page", validators=PAGE_VALIDATORS)
    filter = SelectField("Show", choices=FILTER_CHOICES, default="")


class PatientSearchForm(FlaskForm):
    """Search by name or MRN. A POST, so names and MRNs never sit in URLs, history or logs."""

    q = SearchField(
        "Search by name or MRN",
        validators=[Optional(), Length(max=100, message="Search for at most 100 characters.")],
        filters=[strip],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    page = HiddenField("Page")
    filter = SelectField("Show", choices=FILTER_CHOICES, default="")

    def validate_page(self, field: HiddenField) -> None:
        raw = field.data or "1"
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= 100_000):
            raise ValidationError("There is no such page.")


class LinkForm(FlaskForm):
    """No fields: "Create a link" is a POST with its CSRF token."""


def unix_newlines(value: object) -> object:
    """Browsers send a textarea's line breaks as CR LF but count each as one character."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


class NoteForm(FlaskForm):
    """A staff note on the patient page: plain text, kept as written, never edited."""

    text = TextAreaField(
        "Add a note",
        validators=[
            DataRequired(message="Write the note first."),
            Length(
                max=NOTE_MAX_LENGTH,
                message=f"A note holds at most {NOTE_MAX_LENGTH:,} characters.",
            ),
        ],
        filters=[unix_newlines, strip],
        render_kw={"rows": 4, "maxlength": NOTE_MAX_LENGTH},
    )
