"""Care-team forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SearchField
from wtforms.validators import Length, NumberRange, Optional


class PatientSearchForm(FlaskForm):
    """The patient list filter (a GET form: no CSRF needed, it changes nothing)."""

    class Meta:
        csrf = False

    q = SearchField(
        "Search by name or MRN",
        validators=[Optional(), Length(max=100, message="Search for at most 100 characters.")],
    )
    page = IntegerField(
        "Page",
        validators=[Optional(), NumberRange(min=1, max=100_000, message="No such page.")],
    )
