"""Stored outcomes: scores of submitted responses, change from baseline, alerts, rescoring.

Below the blueprints: the patient side records a submission here and the care team reads it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from proms.outcomes import cli

    app.cli.add_command(cli.score_command)
    app.cli.add_command(cli.rescore_command)
