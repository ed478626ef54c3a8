"""The audit log's filters: a GET form (they name no one: a patient by id only)."""

from __future__ import annotations

import datetime as dt

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional, ValidationError

from proms.admin.audit import action_choices

ID_RANGE = NumberRange(min=1, max=2**31 - 1, message="There is no such record.")
# Audit events exist from the first deployment on; a year outside this is a typing slip.
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2999, 12, 31)


def _optional_id(raw: str | int | None) -> int | None:
    """A select's id: "" for none; also coerces the choices' own values (ints)."""
    if raw in (None, ""):
        return None
    if isinstance(raw, int):
        return raw
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise ValueError("There is no such record.")
    return int(raw)


class AuditFilterForm(FlaskForm):
    """`?clinic=&action=&staff=&patient=&from_on=&to_on=&upto=&page=`, all optional."""

    class Meta:
        csrf = False

    # The view checks the clinic (404 outside the user's clinics, 403 where not an admin).
    clinic = SelectField(
        "Clinic",
        coerce=_optional_id,
        validate_choice=False,
        invalid_value_message="There is no such clinic.",
    )
    action = SelectField(
        "What", default="", invalid_choice_message="Choose one of the kinds of event in the list."
    )
    staff = SelectField(
        "Staff member",
        coerce=_optional_id,
        default=None,
        invalid_value_message="Choose one of the clinic's staff.",
        invalid_choice_message="Choose one of the clinic's staff.",
    )
    patient = IntegerField("Patient", validators=[Optional(), ID_RANGE])
    from_on = DateField("From", validators=[Optional()])
    to_on = DateField("To (inclusive)", validators=[Optional()])
    # The newest event of the first page's moment: the pages hold still while they are read,
    # though each reading adds an event (and others' work adds more) at the top.
    upto = IntegerField("Up to event", validators=[Optional(), ID_RANGE])
    page = IntegerField(
        "Page",
        validators=[Optional(), NumberRange(min=1, max=100_000, message="There is no such page.")],
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.action.choices = [SelectChoice("", "Everything"), *action_choices()]

    def set_places(self, clinics: list[tuple[int, str]], staff: list[tuple[int, str]]) -> None:
        """The clinics the user administers and the chosen clinic's staff, as choices."""
        self.clinic.choices = [SelectChoice(value, label) for value, label in clinics]
        self.staff.choices = [SelectChoice("", "Anyone")] + [
            SelectChoice(value, label) for value, label in staff
        ]

    def validate_from_on(self, field: DateField) -> None:
        if field.data is not None and not EARLIEST <= field.data <= LATEST:
            raise ValidationError("Choose a date between 2000 and 2999.")

    def validate_to_on(self, field: DateField) -> None:
        if field.data is None:
            return
        if not EARLIEST <= field.data <= LATEST:
            raise ValidationError("Choose a date between 2000 and 2999.")
        if self.from_on.data is not None and field.data < self.from_on.data:
            raise ValidationError("The end date comes before the start date.")
