"""This deployment's instruments: the bundled definitions plus what the clinic imported.

The pure `proms.instruments` package knows files and formats; this service keeps imported
definitions (official wording, new instruments) in the database, so every web worker, host and
scheduler process sees the same set. Flush, never commit.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from proms.catalog.models import Instrument, InstrumentSource
from proms.db import utcnow
from proms.instruments.loader import parse_definition
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import Registry, bundled_registry


def definition_sha256(definition: InstrumentDefinition) -> str:
    canonical = json.dumps(definition.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Parsed definitions by content hash: rows never change, so neither does what they parse to.
_PARSED: dict[str, InstrumentDefinition] = {}
_PARSED_LIMIT = 512


def stored_definition(row: Instrument) -> InstrumentDefinition:
    """The definition a stored row holds (validated once per process and content)."""
    definition = _PARSED.get(row.definition_sha256)
    if definition is None:
        definition = parse_definition(
            row.definition, filename=f"{row.source.value} {row.code} {row.version}, row {row.id}"
        )
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        _PARSED[row.definition_sha256] = definition
    return definition


def scoring_definition(registry: Registry, instrument: Instrument) -> InstrumentDefinition:
    """How to score a stored response (and judge its change and alerts): the current release's
    definition of the version the patient answered.

    Scoring data (tables, calibrations) come from this release, so a corrected table reaches old
    responses through `proms rescore`; a version this release no longer ships is scored from the
    definition stored with the response. (What the patient read is `stored_definition`.)
    """
    try:
        return registry.get(instrument.code, instrument.version)
    except KeyError:
        return stored_definition(instrument)


def _latest_imports(session: Session) -> dict[tuple[str, str, str], Instrument]:
    """The import in use per code, version and language (the last one imported)."""
    latest: dict[tuple[str, str, str], Instrument] = {}
    rows = session.scalars(
        select(Instrument)
        .where(Instrument.source == InstrumentSource.IMPORTED)
        .options(undefer(Instrument.definition))
        .order_by(Instrument.created_at, Instrument.id)
    )
    for row in rows:
        latest[(row.code, row.version, str(row.definition.get("language", "en")))] = row
    return latest


def deployment_registry(session: Session) -> Registry:
    """Bundled definitions, each replaced by the latest import of the same code and version.

    Only an import in the bundled definition's own language replaces it; other languages are
    versions of the wording that `localized` picks for the patients who read them. An
    instrument proms does not ship is registered in the language imported last.
    """
    bundled = bundled_registry()
    base_language = {definition.key: definition.language for definition in bundled}
    chosen: dict[tuple[str, str], Instrument] = {}
    for (code, version, language), row in _latest_imports(session).items():
        base = base_language.get((code, version))
        if base is None:
            current = chosen.get((code, version))
            if current is None or current.created_at <= row.created_at:
                chosen[(code, version)] = row
        elif base == language:
            chosen[(code, version)] = row
    if not chosen:
        return bundled
    return bundled.with_definitions(*map(stored_definition, chosen.values()))


def localized(
    session: Session, definition: InstrumentDefinition, language: str
) -> InstrumentDefinition:
    """The definition in the patient's language, as well as this deployment has it.

    In order: the official wording imported in that language; else the definition's own
    translation of our summary wording (the bundled files carry one); else the definition as
    is. A definition whose wording is official has no translations of the summary, so a
    patient whose language has no official import reads the official wording there is rather
    than our summary (which production would refuse to send).
    """
    if language == definition.language:
        return definition
    row = _latest_imports(session).get((definition.code, definition.version, language))
    if row is not None:
        return stored_definition(row)
    if language in definition.languages:
        return definition.translated(language)
    return definition


def snapshot(
    session: Session,
    definition: InstrumentDefinition,
    source: InstrumentSource = InstrumentSource.BUNDLED,
) -> Instrument:
    """The row holding exactly this definition, created on first use (responses point at it)."""
    digest = definition_sha256(definition)
    row = session.scalar(
        select(Instrument).where(
            Instrument.code == definition.code,
            Instrument.version == definition.version,
            Instrument.definition_sha256 == digest,
        )
    )
    if row is None:
        fresh = Instrument(
            code=definition.code,
            version=definition.version,
            title=definition.title,
            source=source,
            definition=definition.to_json(),
            definition_sha256=digest,
        )
        try:
            # Two patients starting the same new questionnaire at once (PostgreSQL; SQLite's
            # writers take turns) both find no row: the second waits on the first's insert,
            # then hits the unique key. It takes the first's row instead of failing with a 500.
            with session.begin_nested():
                session.add(fresh)
        except IntegrityError:
            row = session.scalars(
                select(Instrument).where(
                    Instrument.code == definition.code,
                    Instrument.version == definition.version,
                    Instrument.definition_sha256 == digest,
                )
            ).one()
        else:
            row = fresh
    elif source is InstrumentSource.IMPORTED:
        # Imported again (perhaps after another file): it becomes the one in use. For imported
        # rows created_at is when they were last imported; the definition itself never changes.
        row.source = InstrumentSource.IMPORTED
        row.created_at = utcnow()
        session.flush()
    return row


def store_import(session: Session, definition: InstrumentDefinition) -> Instrument:
    """Keep an imported definition; from now on it replaces the bundled one of its version."""
    return snapshot(session, definition, InstrumentSource.IMPORTED)
