"""The `proms` command: Flask's CLI with the commands of every capability."""

from __future__ import annotations

from flask.cli import FlaskGroup

from proms import create_app

cli = FlaskGroup(create_app=lambda: create_app(), help="proms: patient-reported outcomes.")


def main() -> None:
    cli(prog_name="proms")
