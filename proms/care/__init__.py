"""Care-team capability: patient list, patient detail and trends, alerts, reports, exports."""

from __future__ import annotations

from flask import Flask, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from proms.auth.roles import ANY_STAFF, CARE_TEAM, COORDINATION, requires


def init_app(app: Flask) -> None:
    # export_views and inbox (the alerts) add their routes to views.bp before it is registered.
    from proms.care import export_cli, export_views, inbox, report_cli, reports, views  # noqa: F401

    app.register_blueprint(views.bp)
    app.cli.add_command(export_cli.export_command)
    app.cli.add_command(report_cli.report)

    @app.route("/")
    @requires(ANY_STAFF)
    def index() -> ResponseReturnValue:
        """Coordinators start at their worklist, clinicians at the patient list, analysts at the
        cohort report."""
        held = {m.role for m in current_user.memberships}
        if held & COORDINATION:
            return redirect(url_for("admin.worklist"))
        if held & CARE_TEAM:
            return redirect(url_for("care.patients"))
        return redirect(url_for("care.cohort"))
