"""Care-team capability: patient list, patient detail and trends, alerts, reports, exports."""

from __future__ import annotations

from flask import Flask, redirect, url_for
from flask.typing import ResponseReturnValue


def init_app(app: Flask) -> None:
    from proms.care import views

    app.register_blueprint(views.bp)

    @app.route("/")
    def index() -> ResponseReturnValue:
        return redirect(url_for("care.patients"))
