"""The `proms` command: Flask's CLI with the commands of every capability."""

from __future__ import annotations

from flask.cli import FlaskGroup

from proms import ConfigurationError, create_app

cli = FlaskGroup(create_app=lambda: create_app(), help="proms: patient-reported outcomes.")


def main() -> None:
    try:
        cli(prog_name="proms")
    except ConfigurationError as exc:
        raise SystemExit(f"proms: {exc}") from None
