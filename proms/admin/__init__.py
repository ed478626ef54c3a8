"""Coordinator capability: clinics, patients, protocols, enrollment, treatment courses."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.admin import cli

    app.cli.add_command(cli.clinic)
