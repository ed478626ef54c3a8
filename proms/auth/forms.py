"""Login, logout and password forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from proms.auth.passwords import MAX_PASSWORD_LENGTH, password_problem
from proms.forms import strip


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="An email address has at most 254 characters."),
            Email(
                "Enter a valid email address, like name@example.org.", check_deliverability=False
            ),
        ],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Enter your password."),
            Length(max=MAX_PASSWORD_LENGTH, message="That password is too long."),
        ],
        render_kw={"autocomplete": "current-password"},
    )


class LogoutForm(FlaskForm):
    """No fields: the CSRF token alone, so another site cannot log staff out."""


def _new_password_problem(form: FlaskForm, field: PasswordField) -> None:
    if problem := password_problem(field.data or ""):
        raise ValidationError(problem)


class NewPasswordForm(FlaskForm):
    """A new password, typed twice (a one-time link, or "choose a new password")."""

    new_password = PasswordField(
        "New password",
        validators=[DataRequired("Enter a new password."), _new_password_problem],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "New password again",
        validators=[
            DataRequired("Enter the new password a second time."),
            EqualTo("new_password", "The two passwords are not the same. Type them again."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class ChangePasswordForm(NewPasswordForm):
    """The current password first: a session left open is not enough to take the account."""

    current_password = PasswordField(
        "Current password",
        validators=[
            DataRequired("Enter your current password."),
            Length(max=MAX_PASSWORD_LENGTH, message="That password is too long."),
        ],
        render_kw={"autocomplete": "current-password"},
    )

    def validate_new_password(self, field: PasswordField) -> None:
        if field.data and field.data == self.current_password.data:
            raise ValidationError("Choose a password different from your current one.")


class CodeForm(FlaskForm):
    """The second step of a sign-in: a code from the phone app, or a recovery code."""

    code = StringField(
        "Code",
        filters=[strip],
        validators=[
            DataRequired("Enter the 6-digit code from your authenticator app."),
            Length(max=40, message="That is longer than any code. Check it and try again."),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "spellcheck": "false",
            "autocapitalize": "none",
            "autocorrect": "off",
        },
    )


class EnrolForm(FlaskForm):
    """Set up two-step sign-in: a code from the app proves it has the secret."""

    code = StringField(
        "Code from the app",
        filters=[strip],
        validators=[
            DataRequired("Enter the 6-digit code your app shows for proms."),
            Length(max=40, message="A code has 6 digits. Check it and try again."),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "spellcheck": "false",
            "autocorrect": "off",
        },
    )


class ButtonForm(FlaskForm):
    """A button that changes something: the CSRF token alone."""
