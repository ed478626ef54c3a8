"""Patient capability: token links, questionnaires built from definitions, save and resume."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.surveys import cli, unsubscribe, views  # noqa: F401 - unsubscribe adds /u/ routes

    app.register_blueprint(views.bp)
    app.cli.add_command(cli.link_command)
