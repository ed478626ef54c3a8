"""Staff forms: invite, roles, and the actions on one staff member."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from proms.auth.models import Role
from proms.forms import strip

ROLE_LABELS = {
    Role.ADMIN: "Administrator: staff and clinic settings, and everything a coordinator does",
    Role.COORDINATOR: "Coordinator: patients, enrollment, protocols, links and the worklist",
    Role.CLINICIAN: "Clinician: reads patients and their results",
}


class RoleChoices(SelectMultipleField):
    """Checkboxes, one per role; the chosen roles as `Role` values."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, label: str = "Roles", **kwargs: object) -> None:
        super().__init__(
            label,
            choices=[SelectChoice(role.value, text) for role, text in ROLE_LABELS.items()],
            validators=[DataRequired("Choose at least one role.")],
            **kwargs,  # type: ignore[arg-type]
        )

    def pre_validate(self, form: FlaskForm) -> None:
        allowed = {role.value for role in Role}
        if any(value not in allowed for value in self.data or []):
            raise ValidationError("Choose roles from the list.")

    @property
    def roles(self) -> list[Role]:
        chosen = set(self.data or [])
        return [role for role in Role if role.value in chosen]


class InviteForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[
            DataRequired("Enter the staff member's email address."),
            Length(max=254, message="An email address has at most 254 characters."),
            Email(
                "Enter a valid email address, like name@example.org.", check_deliverability=False
            ),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )
    full_name = StringField(
        "Full name",
        filters=[strip],
        validators=[
            DataRequired("Enter the staff member's full name."),
            Length(max=200, message="Use at most 200 characters."),
        ],
        render_kw={"autocomplete": "off"},
    )
    roles = RoleChoices()
    # Set by the second step, once the admin has read that the address has an account.
    add_to_existing = BooleanField("Give these roles to the existing account")


class RolesForm(FlaskForm):
    roles = RoleChoices()


class StaffActionForm(FlaskForm):
    """No fields: the CSRF token; the action is the value of the button pressed."""
