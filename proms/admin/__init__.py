"""Coordinator capability: clinics, patients, protocols, enrollment, treatment courses."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.admin import cli, patients
    from proms.admin.forms.patients import OptOutForm
    from proms.admin.views import bp
    from proms.db import db

    app.register_blueprint(bp)
    app.cli.add_command(cli.clinic)
    app.cli.add_command(cli.import_)
    # For templates/admin/patients/_contact_actions.html, included in other blueprints' pages.
    # formdata=None: a form built for display never reads the request body.
    app.add_template_global(lambda: OptOutForm(formdata=None), "opt_out_form")
    app.add_template_global(lambda user_id: patients.staff_name(db.session, user_id), "staff_name")
