"""The protocol editor: the protocol's fields and a list of time-point rows, without JavaScript.

"Add a time point" and each row's "Remove" are submit buttons: the page comes back with one
row more or less, nothing saved. Instruments are typed one per line as `code@version` (or just
`code` for the catalogue's current version), in the order patients answer them: the same on a
phone as on a desk. Structure is checked here; the rules between fields (overlaps, the
catalogue, the horizon) by `proms.admin.protocol_editing.validate`.
"""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from proms.admin.protocol_editing import (
    MAX_TIMEPOINTS,
    InstrumentSpec,
    ProtocolSpec,
    TimepointSpec,
)
from proms.forms import strip
from proms.instruments.registry import Registry

CHANNEL_CHOICES = [
    SelectChoice("email,sms", "Email, or a text message without an email address"),
    SelectChoice("sms,email", "Text message, or email without a mobile number"),
    SelectChoice("email", "Email only"),
    SelectChoice("sms", "Text message only"),
]
DAYS = NumberRange(min=-3650, max=3650, message="Give a number of days from -3650 to 3650.")
WINDOW_DAYS = NumberRange(min=0, max=3650, message="Give a number of days from 0 to 3650.")


def parse_reminders(text: str) -> list[int]:
    """ "2, 5" -> [2, 5]; ValueError for anything else."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    if not all(re.fullmatch(r"-?\d{1,4}", part) for part in parts):
        raise ValueError(text)
    return [int(part) for part in parts]


def parse_instruments(text: str) -> list[tuple[str, str | None]]:
    """One `code@version` (or `code`) per line, in order; ValueError naming a bad line."""
    entries: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        code, _, version = line.partition("@")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", code.strip()) or len(version) > 20:
            raise ValueError(line)
        entries.append((code.strip(), version.strip() or None))
    return entries


class TimepointForm(Form):
    """One row of the editor (a subform: the page's CSRF token covers it)."""

    key = StringField(
        "Key",
        validators=[InputRequired("Give a key, e.g. month_3."), Length(max=32)],
        filters=[strip],
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    label = StringField(
        "Label", validators=[InputRequired("Give a label."), Length(max=100)], filters=[strip]
    )
    offset_days = IntegerField(
        "Day (from day 0)", validators=[InputRequired("Give the day."), DAYS]
    )
    window_before_days = IntegerField(
        "Opens this many days before",
        default=0,
        validators=[InputRequired("Give 0 or more."), WINDOW_DAYS],
    )
    window_after_days = IntegerField(
        "Closes this many days after",
        default=7,  # room for the default reminders (2, 5): a new row saves as it comes
        validators=[InputRequired("Give 0 or more."), WINDOW_DAYS],
    )
    send_time_local = StringField(
        "Send time (patient's local time)",
        default="10:00",
        validators=[InputRequired("Give a time such as 10:00."), Length(max=8)],
        filters=[strip],
        render_kw={"inputmode": "numeric", "placeholder": "10:00"},
    )
    reminders = StringField(
        "Reminders (days after the invitation)",
        default="2, 5",
        validators=[Optional(), Length(max=100)],
        filters=[strip],
        render_kw={"inputmode": "numeric"},
    )
    instruments = TextAreaField(
        "Questionnaires, one per line, in order",
        validators=[InputRequired("Choose at least one questionnaire."), Length(max=2000)],
        render_kw={"rows": 5, "autocapitalize": "none", "spellcheck": "false"},
    )
    remove = SubmitField("Remove this time point")

    def validate_reminders(self, field: StringField) -> None:
        try:
            parse_reminders(field.data or "")
        except ValueError:
            raise ValidationError(
                "Give whole numbers of days separated by commas, e.g. 2, 5."
            ) from None

    def validate_instruments(self, field: TextAreaField) -> None:
        try:
            parse_instruments(field.data or "")
        except ValueError as exc:
            raise ValidationError(
                f"Write each questionnaire as code@version, e.g. promis-pi-4a@1.0 (not {exc})."
            ) from None


class ProtocolForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[InputRequired("Give the protocol a name."), Length(max=200)],
        filters=[strip],
    )
    description = TextAreaField(
        "Description", validators=[Optional(), Length(max=5000)], render_kw={"rows": 4}
    )
    anchor_label = StringField(
        "Day 0 is",
        default="First infusion day",
        validators=[InputRequired("Say what day 0 is."), Length(max=100)],
        filters=[strip],
    )
    horizon_days = IntegerField(
        "Horizon (days after day 0)",
        default=180,
        validators=[
            InputRequired("Give the horizon in days."),
            NumberRange(min=1, max=3650, message="Give 1 to 3650 days."),
        ],
    )
    channels = SelectField("Messages go by", choices=CHANNEL_CHOICES, default="email,sms")
    requires_identity_check = BooleanField("Patients confirm their date of birth first")
    timepoints = FieldList(FormField(TimepointForm), min_entries=0, max_entries=MAX_TIMEPOINTS)
    add_timepoint = SubmitField("Add a time point")
    save = SubmitField("Save")

    def removed_row(self) -> int | None:
        """The index of the row whose "Remove" button was pressed, if any."""
        return next((n for n, entry in enumerate(self.timepoints) if entry.form.remove.data), None)

    def spec(self, slug: str, registry: Registry) -> ProtocolSpec:
        """The spec the form holds (after `validate()`); unpinned codes get the current version."""
        return ProtocolSpec(
            slug=slug,
            name=self.name.data or "",
            description=(self.description.data or "").strip(),
            anchor_label=self.anchor_label.data or "",
            channels=(self.channels.data or "").split(","),
            horizon_days=self.horizon_days.data or 0,
            requires_identity_check=bool(self.requires_identity_check.data),
            timepoints=[_timepoint_spec(entry.form, registry) for entry in self.timepoints],
        )


class NewProtocolForm(ProtocolForm):
    slug = StringField(
        "Short name (lowercase letters, digits and hyphens; it never changes)",
        validators=[InputRequired("Give a short name, e.g. ketamine-course."), Length(max=64)],
        filters=[strip],
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )


def _timepoint_spec(form: TimepointForm, registry: Registry) -> TimepointSpec:
    return TimepointSpec(
        key=form.key.data or "",
        label=form.label.data or "",
        offset_days=form.offset_days.data or 0,
        window_before_days=form.window_before_days.data or 0,
        window_after_days=form.window_after_days.data or 0,
        send_time_local=form.send_time_local.data or "",
        reminder_offsets_days=parse_reminders(form.reminders.data or ""),
        instruments=[
            InstrumentSpec(code, version or _current_version(registry, code))
            for code, version in parse_instruments(form.instruments.data or "")
        ],
    )


def _current_version(registry: Registry, code: str) -> str:
    try:
        return registry.get(code).version
    except KeyError:
        return "?"  # validation names the code as missing from the catalogue


def form_data(spec: ProtocolSpec) -> dict[str, Any]:
    """A spec as the editor's initial data."""
    return {
        "name": spec.name,
        "description": spec.description,
        "anchor_label": spec.anchor_label,
        "horizon_days": spec.horizon_days,
        "channels": ",".join(spec.channels),
        "requires_identity_check": spec.requires_identity_check,
        "slug": spec.slug,
        "timepoints": [
            {
                "key": tp.key,
                "label": tp.label,
                "offset_days": tp.offset_days,
                "window_before_days": tp.window_before_days,
                "window_after_days": tp.window_after_days,
                "send_time_local": tp.send_time_local,
                "reminders": ", ".join(map(str, tp.reminder_offsets_days)),
                "instruments": "\n".join(map(str, tp.instruments)),
            }
            for tp in spec.timepoints
        ],
    }


class MoveForm(FlaskForm):
    """Move one enrollment (its id) or, with none, every active enrollment of the version."""

    enrollment = HiddenField("Enrollment")

    def validate_enrollment(self, field: HiddenField) -> None:
        raw = field.data or ""
        if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
            raise ValidationError("There is no such enrollment.")


class InstallForm(FlaskForm):
    """No fields: "Start from the bundled protocol" is a POST with its CSRF token."""
