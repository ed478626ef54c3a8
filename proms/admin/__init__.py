"""Coordinator capability: clinics, staff, protocols, enrollment, treatment courses."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.admin import cli
    from proms.instruments.registry import bundled_registry

    # Validate every bundled instrument definition now: a broken file stops the start with an
    # error naming the file and the field, instead of failing a patient's survey later.
    bundled_registry()

    app.cli.add_command(cli.clinic)
    app.cli.add_command(cli.instruments)
