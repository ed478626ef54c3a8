"""Forms of enrollment, its changes, infusion days and paper answers."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from proms.admin.courses import SIDE_EFFECTS, check_anchor_on
from proms.admin.errors import AdminError
from proms.admin.paper import SOURCES, PaperQuestion

DATE_MESSAGE = "Enter the date as a calendar date, for example 2026-03-02."


class IsoDateField(DateField):
    """A date as YYYY-MM-DD (what a date input sends), with our message when it is not one."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(DATE_MESSAGE) from exc


def plausible_anchor(form: FlaskForm, field: DateField) -> None:
    """A first infusion day whose year can be right (the schedule is built from it)."""
    if field.data is not None:
        try:
            check_anchor_on(field.data)
        except AdminError as exc:
            raise ValidationError(str(exc)) from exc


class EnrollForm(FlaskForm):
    protocol = SelectField("Protocol", coerce=int, validators=[InputRequired("Choose a protocol.")])
    anchor_on = IsoDateField(
        "First infusion day (day 0)",
        validators=[InputRequired(DATE_MESSAGE), plausible_anchor],
    )
    baseline = RadioField(
        "Baseline",
        default="own",
        validators=[InputRequired("Choose how this course gets its baseline.")],
    )
    preview = SubmitField("Preview")
    save = SubmitField("Save enrollment")


class AnchorForm(FlaskForm):
    anchor_on = IsoDateField(
        "New first infusion day", validators=[InputRequired(DATE_MESSAGE), plausible_anchor]
    )
    preview = SubmitField("Preview the change")
    save = SubmitField("Move the course")


class WithdrawForm(FlaskForm):
    reason = TextAreaField(
        "Reason",
        validators=[
            InputRequired("Give the reason for withdrawing."),
            Length(max=500, message="Use at most 500 characters."),
        ],
    )
    save = SubmitField("Withdraw from follow-up")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SessionForm(FlaskForm):
    outcome = RadioField(
        "Infusion",
        choices=[SelectChoice("given", "Given"), SelectChoice("missed", "Missed")],
        validators=[InputRequired("Choose given or missed.")],
    )
    missed_reason = StringField(
        "If missed, why",
        validators=[Optional(), Length(max=200, message="Use at most 200 characters.")],
    )
    side_effects = MultiCheckboxField(
        "Side effects noted",
        choices=[SelectChoice(k, v) for k, v in SIDE_EFFECTS.items()],
        validate_choice=True,
    )
    notes = TextAreaField(
        "Notes", validators=[Optional(), Length(max=2000, message="Use at most 2,000 characters.")]
    )
    save = SubmitField("Save day")


class NewLinkActionForm(FlaskForm):
    """No fields: a POST with its CSRF token."""


def chosen(form: FlaskForm, field: RadioField) -> None:
    """One option picked, "Not answered" (an empty value) included: nothing left unmarked."""
    if not field.raw_data:
        raise StopValidation("Choose an answer, or “Not answered”.")


def _current(question: PaperQuestion) -> str | None:
    """The draft's answer to prefill: "" when deliberately skipped, None when not reached."""
    if not question.is_answered:
        return None
    return "" if question.value is None else str(question.value)


def paper_form_class(questions: list[PaperQuestion]) -> type[FlaskForm]:
    """A form with every question of the assessment, each answerable or left unanswered."""
    fields: dict[str, object] = {
        "source": RadioField(
            "Where the answers come from",
            choices=[SelectChoice(k, v) for k, v in SOURCES.items()],
            validators=[InputRequired("Choose where the answers come from.")],
        ),
        "save": SubmitField("Save and score the answers"),
    }
    for question in questions:
        fields[f"q{question.number}"] = RadioField(
            f"{question.number}. {question.item.text}",
            choices=[
                *(SelectChoice(str(o.value), o.label) for o in question.item.options),
                SelectChoice("", "Not answered"),
            ],
            validators=[chosen],
            default=_current(question),
        )
    return type("PaperForm", (FlaskForm,), fields)
