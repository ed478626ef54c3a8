"""The instrument catalogue of this deployment: bundled definitions plus imported wording.

Below the blueprints: patient pages, scoring and staff pages all look instruments up here.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.catalog import cli
    from proms.instruments.registry import bundled_registry

    # Validate every bundled instrument definition now: a broken file stops the start with an
    # error naming the file and the field, instead of failing a patient's survey later.
    bundled_registry()

    app.cli.add_command(cli.instruments)
