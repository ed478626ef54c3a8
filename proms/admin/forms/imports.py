"""The enrollment import's forms: the upload, and the confirmation that carries the file."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired


class UploadForm(FlaskForm):
    """A CSV file for one clinic (the select shows only to someone coordinating several)."""

    clinic_id = SelectField("Clinic", coerce=int, validate_choice=True)
    file = FileField(
        "CSV file",
        validators=[FileRequired("Choose the CSV file to import.")],
        render_kw={"accept": ".csv,text/csv"},
    )


class ConfirmForm(FlaskForm):
    """The checked file, signed: the server keeps nothing between the preview and the import."""

    payload = HiddenField(validators=[DataRequired("Upload the file again.")])
