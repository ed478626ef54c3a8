"""Patient forms: add, edit, opt out and back in.

The forms carry what was typed; `proms.admin.patients` checks every field and says what is
wrong, so the page and the enrollment import refuse the same values with the same words.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, SelectField, StringField, TelField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from proms.admin.models import Channel, Clinic
from proms.admin.patients import (
    CHANNEL_LABELS,
    EMAIL_MAX,
    LANGUAGES,
    MRN_MAX,
    NAME_MAX,
    TIME_ZONE_MAX,
    PatientDetails,
)


class IsoDateField(DateField):
    """A date typed or picked as YYYY-MM-DD, with a message that says so."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:  # not sent at all: the stored date stays, as text fields' values do
            return
        raw = valuelist[0].strip()
        if not raw:
            self.data = None
            return
        try:
            self.data = dt.date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            self.data = None
        if self.data is None:
            raise ValueError("Enter the date as YYYY-MM-DD, such as 1960-05-17.")


def clinic_choices(clinics: list[Clinic]) -> list[SelectChoice]:
    return [SelectChoice(str(clinic.id), clinic.name) for clinic in clinics]


def _text(max_length: int, **render_kw: Any) -> dict[str, Any]:
    return {"render_kw": {"maxlength": max_length, **render_kw}}


class PatientForm(FlaskForm):
    """A patient's details; `clinic_id` is shown only to someone coordinating several clinics."""

    clinic_id = SelectField("Clinic", coerce=int, validate_choice=True)
    mrn = StringField("MRN", **_text(MRN_MAX, autocomplete="off", spellcheck="false"))
    given_name = StringField("Given name", **_text(NAME_MAX, autocomplete="off"))
    family_name = StringField("Family name", **_text(NAME_MAX, autocomplete="off"))
    birth_on = IsoDateField("Date of birth (optional)", validators=[Optional()])
    email = EmailField("Email (optional)", **_text(EMAIL_MAX, autocomplete="off"))
    phone = TelField("Mobile phone (optional)", **_text(40, autocomplete="off"))
    preferred_channel = SelectField(
        "Send links by",
        choices=[SelectChoice(channel.value, label) for channel, label in CHANNEL_LABELS.items()],
        default=Channel.EMAIL.value,
    )
    time_zone = StringField("Time zone", **_text(TIME_ZONE_MAX, spellcheck="false"))
    language = SelectField(
        "Language",
        choices=[SelectChoice(code, label) for code, label in LANGUAGES.items()],
        default="en",
    )

    def details(self) -> PatientDetails:
        return PatientDetails(
            mrn=self.mrn.data or "",
            given_name=self.given_name.data or "",
            family_name=self.family_name.data or "",
            birth_on=self.birth_on.data,
            email=self.email.data,
            phone=self.phone.data,
            preferred_channel=self.preferred_channel.data or "",
            time_zone=self.time_zone.data,
            language=self.language.data or "",
        )

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put the service's messages next to their fields."""
        for name, message in errors.items():
            self[name].errors = [*self[name].errors, message]


class OptOutForm(FlaskForm):
    reason = StringField(
        "Reason the patient opted out",
        validators=[
            DataRequired(message="Give the reason the patient opted out."),
            Length(max=500, message="Say it in at most 500 characters."),
        ],
        render_kw={"maxlength": 500, "autocomplete": "off"},
    )


class OptInForm(FlaskForm):
    """No fields: "Opt back in" is a POST with its CSRF token."""
