"""The clinic settings form."""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    StringField,
    TelField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from proms.admin.errors import AdminError
from proms.admin.patients import clean_phone
from proms.admin.services import check_time_zone
from proms.forms import strip

# The continents of the tz database: what a clinic can be in (not "posix/...", "Etc/GMT+5").
REGIONS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]  # browsers send seconds when the control has a step


@functools.cache
def time_zone_names() -> list[str]:
    """The IANA names offered in the time zone list, sorted, and UTC."""
    names = (name for name in available_timezones() if name.split("/")[0] in REGIONS)
    return [*sorted(names), "UTC"]


class ClinicForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[strip],
        validators=[
            DataRequired("Enter the clinic's name."),
            Length(max=200, message="Use at most 200 characters."),
        ],
    )
    time_zone = StringField(
        "Time zone",
        filters=[strip],
        validators=[DataRequired("Enter the clinic's time zone, like America/New_York.")],
        render_kw={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"},
    )
    contact_phone = TelField(
        "Contact phone",
        filters=[strip],
        validators=[Optional(), Length(max=32, message="Use at most 32 characters.")],
        render_kw={"autocomplete": "off"},
    )
    contact_email = EmailField(
        "Contact email",
        filters=[strip, lambda value: value.lower() if isinstance(value, str) else value],
        validators=[
            Optional(),
            Length(max=254, message="An email address has at most 254 characters."),
            Email(
                "Enter a valid email address, like clinic@example.org.",
                check_deliverability=False,
            ),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )
    show_patient_scores = BooleanField("Patients see their scores after they answer")
    requires_mfa = BooleanField("Require two-step sign-in for all staff")
    quiet_hours_start = TimeField(
        "No messages from",
        format=TIME_FORMATS,
        validators=[InputRequired("Enter the time quiet hours start, like 21:00.")],
        invalid_value_message="Enter a time of day as hours and minutes, like 21:00.",
    )
    quiet_hours_end = TimeField(
        "Until",
        format=TIME_FORMATS,
        validators=[InputRequired("Enter the time quiet hours end, like 08:00.")],
        invalid_value_message="Enter a time of day as hours and minutes, like 08:00.",
    )
    alert_email = EmailField(
        "Care team mailbox for urgent alerts",
        filters=[strip, lambda value: value.lower() if isinstance(value, str) else value],
        validators=[
            Optional(),
            Length(max=254, message="An email address has at most 254 characters."),
            Email(
                "Enter a valid email address, like care-team@example.org.",
                check_deliverability=False,
            ),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )
    next_steps_en = TextAreaField(
        "What happens next, in English",
        filters=[strip],
        validators=[Optional(), Length(max=1000, message="Use at most 1,000 characters.")],
        render_kw={"rows": 3, "maxlength": 1000},
    )
    next_steps_es = TextAreaField(
        "What happens next, in Spanish",
        filters=[strip],
        validators=[Optional(), Length(max=1000, message="Use at most 1,000 characters.")],
        render_kw={"rows": 3, "maxlength": 1000, "lang": "es"},
    )
    baseline_reuse_days = IntegerField(
        "Reuse a baseline answered up to this many days before a new course",
        validators=[
            InputRequired("Enter a number of days from 0 to 365."),
            NumberRange(0, 365, "Enter a number of days from 0 to 365."),
        ],
        invalid_value_message="Enter a whole number of days from 0 to 365.",
    )

    def validate_time_zone(self, field: StringField) -> None:
        try:
            check_time_zone(field.data or "")
        except AdminError as exc:
            raise ValidationError(str(exc)) from exc

    def validate_contact_phone(self, field: TelField) -> None:
        if field.data:
            try:
                # Read in the country of the time zone given (the clinic's, once saved).
                field.data = clean_phone(field.data, self.time_zone.data or "")
            except AdminError as exc:
                raise ValidationError(str(exc)) from exc

    def validate_quiet_hours_end(self, field: TimeField) -> None:
        if field.data is not None and field.data == self.quiet_hours_start.data:
            raise ValidationError(
                "Quiet hours must end at a different time than they start "
                "(they may run past midnight, like 21:00 to 08:00)."
            )
