"""`proms instruments ...`: list, show, export and import questionnaires."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from proms.auth.services import cli_actor, record_event
from proms.catalog.services import deployment_registry, store_import
from proms.db import db, utcnow
from proms.instruments.errors import DefinitionError, DefinitionImportError, ImportFormatError
from proms.instruments.fhir import to_questionnaire
from proms.instruments.importer import apply_import, read_import_file


@click.group(help="Questionnaires: list, show, export as FHIR, import licensed wording.")
def instruments() -> None:
    pass


def _definition_or_fail(code: str, version: str | None):  # type: ignore[no-untyped-def]
    registry = deployment_registry(db.session)
    try:
        return registry.get(code, version)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from exc


@instruments.command("list")
def list_instruments() -> None:
    """Every instrument version, with where its wording came from."""
    for definition in deployment_registry(db.session):
        wording = definition.wording.source.value
        flag = "  needs official wording" if definition.needs_official_wording else ""
        status = definition.table_status or "-"
        click.echo(
            f"{definition.code:<26} {definition.version:<6} {wording:<8} {status:<34}"
            f" {definition.title}{flag}"
        )


@instruments.command("show")
@click.argument("code")
@click.option("--version", default=None, help="A version (default: the latest).")
def show_instrument(code: str, version: str | None) -> None:
    """One instrument: items, answers, scoring, thresholds, wording and licence."""
    definition = _definition_or_fail(code, version)
    click.echo(f"{definition.title} ({definition.code} {definition.version})")
    click.echo(f"domain: {definition.domain}; {definition.direction.value.replace('_', ' ')}")
    if definition.recall_period:
        click.echo(f"recall period: {definition.recall_period}")
    click.echo(f"wording: {definition.wording.source.value} ({definition.wording.reference})")
    click.echo(
        f"scoring: {definition.scoring.method.value}"
        + (f", table {definition.table_status}" if definition.table_status else "")
    )
    for threshold in definition.thresholds:
        mark = "*" if threshold.primary else " "
        click.echo(
            f" {mark} change threshold {threshold.value:g} {threshold.unit} "
            f"({threshold.evidence}): {threshold.source}"
        )
    for item in definition.items:
        answers = ", ".join(f"{option.value}={option.label}" for option in item.options)
        reverse = " (reverse-coded)" if item.reverse else ""
        click.echo(f"  {item.id}{reverse}: {item.text}  [{answers}]")
    click.echo(f"licence: {definition.licence.notice}")


@instruments.command("export")
@click.argument("code")
@click.option("--version", default=None, help="A version (default: the latest).")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["fhir", "json"]),
    default="fhir",
    show_default=True,
    help="fhir: an R4 Questionnaire; json: the proms definition.",
)
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-")
def export_instrument(code: str, version: str | None, format_: str, output) -> None:  # type: ignore[no-untyped-def]
    """Write an instrument as a FHIR R4 Questionnaire (or as its proms definition)."""
    definition = _definition_or_fail(code, version)
    data = to_questionnaire(definition) if format_ == "fhir" else definition.to_json()
    output.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@instruments.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--form",
    "form_name",
    default=None,
    help="REDCap: the form (instrument) to take when the dictionary holds several.",
)
@click.option(
    "--method",
    type=click.Choice(["sum", "mean", "none"]),
    default=None,
    help="Scoring of a NEW instrument (one that matches none we know).",
)
@click.option(
    "--language", default=None, help="Language of the wording, e.g. es (FHIR files say it)."
)
def import_instrument(
    path: Path, form_name: str | None, method: str | None, language: str | None
) -> None:
    """Load licensed wording (FHIR R4 Questionnaire JSON or REDCap data dictionary CSV)."""
    registry = deployment_registry(db.session)
    try:
        imported = read_import_file(path, form_name=form_name)
        if language:
            imported = dataclasses.replace(imported, language=language)
        definition = apply_import(
            registry,
            imported,
            source=path.name,
            imported_at=utcnow().date().isoformat(),
            new_method=method,
        )
    except (ImportFormatError, DefinitionImportError, DefinitionError) as exc:
        raise click.ClickException(str(exc)) from exc
    known = definition.key in {d.key for d in registry}
    store_import(db.session, definition)
    record_event(
        db.session,
        "instrument.imported",
        actor_email=cli_actor(),
        detail={
            "code": definition.code,
            "version": definition.version,
            "file": path.name,
            "wording": definition.wording.source.value,
        },
    )
    db.session.commit()
    if known:
        click.echo(
            f"{definition.code} {definition.version}: wording replaced "
            f"({definition.wording.source.value}, from {path.name}); scoring unchanged."
        )
    else:
        click.echo(
            f"New instrument {definition.code} {definition.version} "
            f"({len(definition.items)} items, scoring: {definition.scoring.method.value})."
        )
