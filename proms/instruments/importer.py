"""Apply an imported form (FHIR Questionnaire or REDCap dictionary) to the instrument registry.

A form that matches a known instrument (by the proms code it carries, else by PROMIS item ID or
LOINC code) must match it exactly: every item present, no extra items, the same answer values.
The result is that instrument with the file's wording and the scoring untouched. Any mismatch
raises DefinitionImportError listing all of them, and nothing changes. A form that matches no
instrument becomes a new one (sum, mean or unscored), validated like a bundled file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from proms.instruments import fhir, redcap
from proms.instruments.errors import DefinitionImportError, ImportFormatError
from proms.instruments.loader import parse_definition
from proms.instruments.model import (
    ImportedForm,
    ImportedItem,
    InstrumentDefinition,
    Item,
    Licence,
    LoincCodes,
    Option,
    Scoring,
    ScoringMethod,
    Wording,
    WordingSource,
)
from proms.instruments.registry import Registry
from proms.scoring.types import Direction, Scale

NEW_METHODS = ("sum", "mean", "none")
NEW_DOMAIN = "other"


def read_import_file(path: Path, *, form_name: str | None = None) -> ImportedForm:
    """Read a FHIR R4 Questionnaire (.json) or a REDCap data dictionary (.csv)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"{path.name}: cannot be read: {exc}") from exc
    return parse_import_text(text, filename=path.name, form_name=form_name)


def parse_import_text(text: str, *, filename: str, form_name: str | None = None) -> ImportedForm:
    """Read import text; JSON is taken for a FHIR Questionnaire, anything else for REDCap CSV."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if filename.lower().endswith(".json") or stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(
                f"{filename}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
            ) from exc
        return fhir.from_questionnaire(data)
    return redcap.parse_data_dictionary(text, form_name)


def _id_matches(item_id: str, imported: ImportedItem) -> bool:
    """PAININ9 matches painin9, PAININ9 and REDCap-style prefixed names like promis_painin9."""
    key = imported.id.strip().lower()
    target = item_id.lower()
    return key == target or key.endswith("_" + target)


def _item_matches(item: Item, imported: ImportedItem) -> bool:
    if _id_matches(item.id, imported):
        return True
    return item.loinc is not None and item.loinc == imported.loinc


def _match_count(definition: InstrumentDefinition, imported: ImportedForm) -> tuple[int, int]:
    """(items of the definition the file matches, mismatched items on either side)."""
    matched = sum(
        1 for item in definition.items if any(_item_matches(item, i) for i in imported.items)
    )
    matched_imported = sum(
        1 for i in imported.items if any(_item_matches(item, i) for item in definition.items)
    )
    return matched, (len(definition.items) - matched) + (len(imported.items) - matched_imported)


def find_match(registry: Registry, imported: ImportedForm) -> InstrumentDefinition | None:
    """The instrument an imported form is meant to be, or None when it matches none."""
    if imported.code is not None and imported.code in registry:
        versions = registry.versions(imported.code)
        return registry.get(
            imported.code, imported.version if imported.version in versions else None
        )
    best: tuple[tuple[int, int, str], InstrumentDefinition] | None = None
    for definition in registry.latest():
        matched, mismatched = _match_count(definition, imported)
        if matched == 0:
            continue
        rank = (-matched, mismatched, definition.code)
        if best is None or rank < best[0]:
            best = (rank, definition)
    return None if best is None else best[1]


def _pair_items(
    definition: InstrumentDefinition, imported: ImportedForm
) -> tuple[dict[str, ImportedItem], list[str]]:
    name = f"{definition.code} {definition.version}"
    problems: list[str] = []
    paired: dict[str, ImportedItem] = {}
    for candidate in imported.items:
        hits = [item for item in definition.items if _item_matches(item, candidate)]
        if not hits:
            problems.append(f"extra item {candidate.id!r}: in the file, not in {name}")
        elif len(hits) > 1:
            ids = ", ".join(item.id for item in hits)
            problems.append(f"item {candidate.id!r} in the file matches several items ({ids})")
        elif hits[0].id in paired:
            problems.append(
                f"items {paired[hits[0].id].id!r} and {candidate.id!r} in the file both match "
                f"{hits[0].id}"
            )
        else:
            paired[hits[0].id] = candidate
    for item in definition.items:
        found = paired.get(item.id)
        if found is None:
            problems.append(f"missing item {item.id}: in {name}, not in the file")
            continue
        where = item.id if found.id == item.id else f"{item.id} (file: {found.id!r})"
        if found.problem:
            problems.append(f"item {where}: {found.problem}")
            continue
        file_values = [option.value for option in found.options]
        if len(set(file_values)) != len(file_values):
            problems.append(f"item {where}: the file repeats an answer value ({file_values})")
        elif set(file_values) != set(item.values):
            problems.append(
                f"item {where}: answer values {sorted(file_values)} in the file, "
                f"{sorted(item.values)} in {name}"
            )
        elif file_values != list(item.values):
            # Same values in another order: the file's labels would land on other values and
            # flip the scoring (a reverse-coded item read as a plain one, or the other way).
            problems.append(
                f"item {where}: answers in the order {file_values} in the file, "
                f"{list(item.values)} in {name}; check the item's reverse coding"
            )
        if not found.text.strip():
            problems.append(f"item {where}: no question text in the file")
        if found.loinc and item.loinc and found.loinc != item.loinc:
            problems.append(
                f"item {where}: LOINC {found.loinc} in the file, {item.loinc} in {name}"
            )
    return paired, problems


def _wording(imported: ImportedForm, source: str, imported_at: str) -> Wording:
    # A proms export says where its wording came from (our own summary stays a summary).
    if imported.wording is not None:
        return imported.wording
    return Wording(source=WordingSource.OFFICIAL, reference=source, imported_at=imported_at)


def _reworded(
    definition: InstrumentDefinition,
    imported: ImportedForm,
    *,
    source: str,
    imported_at: str,
) -> InstrumentDefinition:
    paired, problems = _pair_items(definition, imported)
    if problems:
        raise DefinitionImportError(
            f"the file matches {definition.code} {definition.version} but not exactly", problems
        )
    items = []
    for item in definition.items:
        found = paired[item.id]
        labels = {option.value: option.label for option in found.options}
        items.append(
            dataclasses.replace(
                item,
                text=found.text.strip(),
                options=tuple(
                    Option(option.value, labels.get(option.value) or option.label)
                    for option in item.options
                ),
                loinc=item.loinc or found.loinc,
            )
        )
    return dataclasses.replace(
        definition,
        items=tuple(items),
        recall_period=imported.recall_period or definition.recall_period,
        language=imported.language or definition.language,
        wording=_wording(imported, source, imported_at),
    )


def slugify(text: str) -> str:
    """An instrument code from a form name: "PROMIS Pain 4a" -> "promis-pain-4a"."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")
    return slug or "imported-instrument"


def _item_id(raw: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw.strip()).strip("_")
    return cleaned if cleaned[:1].isalpha() else f"q{cleaned}"


def _new_definition(
    registry: Registry,
    imported: ImportedForm,
    *,
    source: str,
    imported_at: str,
    method: str,
    direction: Direction,
) -> InstrumentDefinition:
    code = slugify(imported.code or imported.name or imported.title)
    version = imported.version or "1.0"
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", version):
        version = "1.0"
    problems: list[str] = []
    if code in registry and version in registry.versions(code):
        problems.append(f"instrument {code} version {version} already exists")
    items: list[Item] = []
    for found in imported.items:
        if found.problem:
            problems.append(f"item {found.id!r}: {found.problem}")
            continue
        items.append(
            Item(
                id=_item_id(found.id),
                text=found.text.strip() or found.id,
                options=tuple(Option(o.value, o.label or str(o.value)) for o in found.options),
                loinc=found.loinc,
            )
        )
    if problems:
        raise DefinitionImportError(
            "the file matches no known instrument and cannot become a new one", problems
        )
    scoring_method = ScoringMethod(method)
    scales = (
        (Scale("total", tuple(item.id for item in items)),)
        if scoring_method in (ScoringMethod.SUM, ScoringMethod.MEAN)
        else ()
    )
    holder = imported.publisher or "unknown"
    definition = InstrumentDefinition(
        code=code,
        version=version,
        title=imported.title or code,
        domain=NEW_DOMAIN,
        direction=direction,
        recall_period=imported.recall_period,
        language=imported.language or "en",
        owner=holder,
        items=tuple(items),
        scoring=Scoring(
            method=scoring_method,
            scales=scales,
            missing_rule=(
                "complete answers required (imported instrument; no missing-item rule given)"
                if scales
                else ""
            ),
        ),
        thresholds=(),
        alerts=(),
        wording=_wording(imported, source, imported_at),
        licence=Licence(
            holder=holder,
            notice=imported.copyright
            or f"Imported from {source}; the deploying clinic is responsible for its licence.",
        ),
        loinc=LoincCodes(panel=imported.panel_loinc, note=f"imported from {source}"),
        notes=f"Imported from {source} ({imported.file_format}); scored by {method}.",
    )
    return definition


def apply_import(
    registry: Registry,
    imported: ImportedForm,
    *,
    source: str,
    imported_at: str,
    new_method: str | None = None,
    new_direction: Direction = Direction.HIGHER_IS_WORSE,
) -> InstrumentDefinition:
    """The definition an imported form yields; the registry itself is not changed.

    `source` names the file (recorded as the wording's reference), `imported_at` is the ISO
    date of the import. A matched instrument keeps its scoring, thresholds and codes and takes
    the file's wording ("official", unless the file is a proms export that says otherwise). An
    unmatched form becomes a new instrument scored by `new_method` ("sum", "mean" or "none";
    None means "none"). Raises DefinitionImportError listing every mismatch, or DefinitionError
    if the result is not a valid definition.
    """
    if new_method is not None and new_method not in NEW_METHODS:
        raise ValueError(f"new_method must be one of {', '.join(NEW_METHODS)}, not {new_method!r}")
    match = find_match(registry, imported)
    if match is not None:
        result = _reworded(match, imported, source=source, imported_at=imported_at)
    else:
        result = _new_definition(
            registry,
            imported,
            source=source,
            imported_at=imported_at,
            method=new_method or "none",
            direction=new_direction,
        )
    # Validate exactly as a definition file would be at startup.
    return parse_definition(result.to_json(), filename=f"{result.code}.json (from {source})")
