"""Assessments, their planned messages (the outbox) and the scheduler that sends them.

`rules` is pure; `planning` writes the outbox from it; `dispatch` and `sweeps` are the jobs of
the `proms scheduler` process (`runner`), which web processes never run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the pure rules (proms.scheduling.rules) must not load Flask
    from flask import Flask


def init_app(app: Flask) -> None:
    from proms.scheduling import cli

    app.cli.add_command(cli.scheduler_command)
