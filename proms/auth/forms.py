"""Login and logout forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from proms.auth.passwords import MAX_PASSWORD_LENGTH


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
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
