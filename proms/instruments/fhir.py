"""FHIR R4 Questionnaire export and import.

Export: one `choice` item per question (linkId = our item id, LOINC code where known), each
answer a Coding whose code is the stored value, with the value also as a number in the
ordinalValue (R4) and itemWeight (R5 name) extensions, so any FHIR client can score it. The
recall period is a leading display item; the licence notice is `copyright`; a proms extension
records where the wording came from, so re-importing our own export keeps "summary". The
translations of our summary wording go with their texts as the standard FHIR translation
extension (on `_title`, each item's `_text` and each answer's `_display`).

Import reads the same shape from any R4 Questionnaire: nested groups are flattened, display
items skipped, and each answer's value taken from ordinalValue / itemWeight (on the answer
option or its Coding), else from valueInteger, else from a numeric Coding code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from proms.instruments.errors import ImportFormatError
from proms.instruments.model import (
    ImportedForm,
    ImportedItem,
    InstrumentDefinition,
    Option,
    Wording,
    WordingSource,
)

# Our canonical base for the identifiers and extensions proms defines. Placeholder domain
# (example.org is reserved): a deployment may publish its own and keep reading this one.
CANONICAL_BASE = "https://proms.example.org/fhir"
INSTRUMENT_CODE_SYSTEM = f"{CANONICAL_BASE}/instrument-code"
WORDING_EXTENSION = f"{CANONICAL_BASE}/StructureDefinition/wording"

LOINC_SYSTEM = "http://loinc.org"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
# The R4 predecessor of ordinalValue, still common in Questionnaires in the wild.
ISO21090_CO_VALUE = "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
_VALUE_EXTENSIONS = (ORDINAL_VALUE, ITEM_WEIGHT, ISO21090_CO_VALUE)

RECALL_PERIOD_LINK_ID = "recall-period"

_CHOICE_TYPES = frozenset({"choice", "open-choice", "coding"})  # "coding" is R5's name


def _computable_name(code: str) -> str:
    name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", code))
    return name if name[:1].isalpha() else f"Q{name}"


def _loinc(code: str | None, display: str | None = None) -> list[dict[str, str]]:
    if code is None:
        return []
    coding = {"system": LOINC_SYSTEM, "code": code}
    if display:
        coding["display"] = display
    return [coding]


def _translated(texts: list[tuple[str, str]]) -> dict[str, Any]:
    """A primitive's extensions (the `_text` beside `text`) giving its text in other languages."""
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": language},
                    {"url": "content", "valueString": text},
                ],
            }
            for language, text in texts
        ]
    }


def _answer_option(option: Option, labels: list[tuple[str, str]]) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": str(option.value), "display": option.label}
    if labels:
        coding["_display"] = _translated(labels)
    return {
        "extension": [
            {"url": ORDINAL_VALUE, "valueDecimal": option.value},
            {"url": ITEM_WEIGHT, "valueDecimal": option.value},
        ],
        "valueCoding": coding,
    }


def _wording_extension(wording: Wording) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "source", "valueCode": wording.source.value},
        {"url": "reference", "valueString": wording.reference},
    ]
    if wording.imported_at is not None:
        parts.append({"url": "importedAt", "valueString": wording.imported_at})
    return {"url": WORDING_EXTENSION, "extension": parts}


def to_questionnaire(definition: InstrumentDefinition) -> dict[str, Any]:
    """The definition as a FHIR R4 Questionnaire resource (JSON-ready dict)."""
    translations = definition.translations
    items: list[dict[str, Any]] = []
    if definition.recall_period:
        recall: dict[str, Any] = {
            "linkId": RECALL_PERIOD_LINK_ID,
            "type": "display",
            "text": definition.recall_period,
        }
        recalls = [(t.language, t.recall_period) for t in translations if t.recall_period]
        if recalls:
            recall["_text"] = _translated(recalls)
        items.append(recall)
    for item in definition.items:
        entry: dict[str, Any] = {"linkId": item.id}
        if item.loinc:
            entry["code"] = _loinc(item.loinc)
        entry["text"] = item.text
        if translations:
            entry["_text"] = _translated([(t.language, t.item(item.id).text) for t in translations])
        entry["type"] = "choice"
        entry["answerOption"] = [
            _answer_option(
                option,
                [(t.language, t.item(item.id).label(option.value)) for t in translations],
            )
            for option in item.options
        ]
        items.append(entry)
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": f"{definition.code}-{definition.version}",
        "language": definition.language,
        "extension": [_wording_extension(definition.wording)],
        "url": f"{CANONICAL_BASE}/Questionnaire/{definition.code}",
        "identifier": [{"system": INSTRUMENT_CODE_SYSTEM, "value": definition.code}],
        "version": definition.version,
        "name": _computable_name(definition.code),
        "title": definition.title,
    }
    if translations:
        questionnaire["_title"] = _translated([(t.language, t.title) for t in translations])
    questionnaire |= {
        "status": "active",
        "subjectType": ["Patient"],
        "copyright": definition.licence.notice,
    }
    if definition.loinc.panel:
        questionnaire["code"] = _loinc(definition.loinc.panel, definition.title)
    questionnaire["item"] = items
    return questionnaire


def _extensions(element: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    extensions = element.get("extension", [])
    if isinstance(extensions, list):
        yield from (e for e in extensions if isinstance(e, Mapping))


def _integral(number: object) -> int | None:
    if isinstance(number, bool) or not isinstance(number, int | float | str):
        return None
    try:
        value = Decimal(str(number))
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)


def _option_value(answer: Mapping[str, Any]) -> int | None:
    coding = answer.get("valueCoding")
    coding = coding if isinstance(coding, Mapping) else {}
    for element in (answer, coding):
        for extension in _extensions(element):
            if extension.get("url") in _VALUE_EXTENSIONS:
                for key in ("valueDecimal", "valueInteger"):
                    if key in extension:
                        return _integral(extension[key])
    if "valueInteger" in answer:
        return _integral(answer["valueInteger"])
    code = coding.get("code")
    if isinstance(code, str) and re.fullmatch(r"-?[0-9]+", code.strip()):
        return int(code)
    return None


def _option_label(answer: Mapping[str, Any]) -> str:
    """The answer's display text, or "" when the file gives none (a bare valueInteger)."""
    coding = answer.get("valueCoding")
    if isinstance(coding, Mapping):
        return str(coding.get("display") or "")
    return str(answer.get("valueString") or "")


def _item_loinc(item: Mapping[str, Any]) -> str | None:
    for coding in item.get("code", []) or []:
        if isinstance(coding, Mapping) and coding.get("system") == LOINC_SYSTEM:
            code = coding.get("code")
            return str(code) if code else None
    return None


def _question(item: Mapping[str, Any]) -> ImportedItem:
    link_id = str(item["linkId"])
    text = str(item.get("text") or "")
    loinc = _item_loinc(item)
    kind = item.get("type")
    if kind not in _CHOICE_TYPES:
        return ImportedItem(link_id, text, (), loinc, f"type {kind!r} has no answer options")
    if "answerValueSet" in item and "answerOption" not in item:
        return ImportedItem(
            link_id, text, (), loinc, "answers come from a value set (answerValueSet), not listed"
        )
    options: list[Option] = []
    unreadable: list[str] = []
    for answer in item.get("answerOption", []) or []:
        if not isinstance(answer, Mapping):
            continue
        value = _option_value(answer)
        label = _option_label(answer)
        if value is None:
            coding = answer.get("valueCoding")
            code = coding.get("code") if isinstance(coding, Mapping) else None
            unreadable.append(label or str(code or "?"))
        else:
            options.append(Option(value, label))
    if unreadable:
        return ImportedItem(
            link_id,
            text,
            (),
            loinc,
            "no whole-number value (ordinalValue, itemWeight, valueInteger or a numeric code) "
            f"for answer(s) {', '.join(repr(u) for u in unreadable)}",
        )
    if not options:
        return ImportedItem(link_id, text, (), loinc, "no answer options")
    return ImportedItem(link_id, text, tuple(options), loinc)


def _walk(items: object, recall: list[str]) -> Iterator[ImportedItem]:
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, Mapping) or "linkId" not in item:
            raise ImportFormatError("every Questionnaire item needs a linkId")
        kind = item.get("type")
        if kind == "display":
            if item["linkId"] == RECALL_PERIOD_LINK_ID and item.get("text"):
                recall.append(str(item["text"]))
            continue
        if kind == "group":
            yield from _walk(item.get("item"), recall)
            continue
        yield _question(item)
        # Questions may nest follow-up questions (e.g. "specify") under themselves.
        yield from _walk(item.get("item"), recall)


def _wording(data: Mapping[str, Any]) -> Wording | None:
    for extension in _extensions(data):
        if extension.get("url") != WORDING_EXTENSION:
            continue
        parts = {
            part.get("url"): next(
                (v for k, v in part.items() if k.startswith("value")),
                None,
            )
            for part in _extensions(extension)
        }
        try:
            source = WordingSource(str(parts.get("source")))
        except ValueError:
            return None
        imported_at = parts.get("importedAt")
        return Wording(
            source=source,
            reference=str(parts.get("reference") or ""),
            imported_at=None if imported_at is None else str(imported_at),
        )
    return None


def from_questionnaire(data: object) -> ImportedForm:
    """Read a FHIR R4 Questionnaire (parsed JSON) into an ImportedForm.

    Raises ImportFormatError for anything that is not a Questionnaire.
    """
    if not isinstance(data, Mapping):
        raise ImportFormatError("not a FHIR resource: expected a JSON object")
    resource_type = data.get("resourceType")
    if resource_type != "Questionnaire":
        hint = (
            " (export the Questionnaire itself, not a Bundle)" if resource_type == "Bundle" else ""
        )
        raise ImportFormatError(
            f"not a FHIR Questionnaire: resourceType is {resource_type!r}{hint}"
        )
    recall: list[str] = []
    items = tuple(_walk(data.get("item"), recall))
    if not items:
        raise ImportFormatError("the Questionnaire has no questions")
    code = next(
        (
            str(identifier.get("value"))
            for identifier in data.get("identifier", []) or []
            if isinstance(identifier, Mapping)
            and identifier.get("system") == INSTRUMENT_CODE_SYSTEM
        ),
        None,
    )
    panel = next(
        (
            str(coding.get("code"))
            for coding in data.get("code", []) or []
            if isinstance(coding, Mapping) and coding.get("system") == LOINC_SYSTEM
        ),
        None,
    )
    name = str(data.get("name") or data.get("id") or data.get("title") or "questionnaire")
    return ImportedForm(
        file_format="fhir",
        name=name,
        title=str(data.get("title") or name),
        items=items,
        code=code,
        version=None if data.get("version") is None else str(data["version"]),
        language=None if data.get("language") is None else str(data["language"]),
        recall_period=recall[0] if recall else None,
        copyright=None if data.get("copyright") is None else str(data["copyright"]),
        publisher=None if data.get("publisher") is None else str(data["publisher"]),
        panel_loinc=panel,
        wording=_wording(data),
    )
