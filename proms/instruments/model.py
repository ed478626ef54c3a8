"""Instrument definitions as frozen values, and their one JSON form.

`definition_from_json` expects data the loader has already validated (schema.json plus the
semantic checks in loader.py); `InstrumentDefinition.to_json` is its exact inverse, so a
definition can be stored, exported and reloaded without loss.

A definition with our own summary wording may carry translations of it (`Translation`: the
title, recall period, item texts and option labels in another language). `translated` gives
the definition in one of those languages: the same instrument, items, values and scoring, with
only the text a patient reads changed.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from proms.instruments.errors import NotSendableError
from proms.scoring.change import Threshold
from proms.scoring.types import (
    Answer,
    Direction,
    Form,
    ItemCalibration,
    Method,
    PromisForm,
    Scale,
    SummedForm,
    UnscoredForm,
)

FORMAT_VERSION = 1

# Instruments whose wording we wrote ourselves: nobody else's official text exists to load.
OWN_INSTRUMENT_OWNER = "proms"

PRODUCTION = "production"


class WordingSource(enum.StrEnum):
    SUMMARY = "summary"  # our own plain-language summary of each item
    OFFICIAL = "official"  # the owner's wording, loaded by the clinic from a licensed file


class ScoringMethod(enum.StrEnum):
    PROMIS_TABLE = "promis_table"  # sum-score -> T table; response pattern when incomplete
    SUM = "sum"
    MEAN = "mean"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Option:
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Item:
    """One question: a stable id (the PROMIS item ID where there is one) and its answers."""

    id: str
    text: str
    options: tuple[Option, ...]
    reverse: bool = False  # values run opposite to the display order (already reversed)
    loinc: str | None = None

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(option.value for option in self.options)


@dataclass(frozen=True, slots=True)
class Wording:
    """Where the item text came from: our summary, or official wording imported from a file."""

    source: WordingSource
    reference: str
    imported_at: str | None = None  # ISO 8601 date (or date-time) of the import


@dataclass(frozen=True, slots=True)
class ItemTranslation:
    """One item's text and option labels in another language; labels by option value."""

    text: str
    labels: tuple[tuple[int, str], ...]

    def label(self, value: int) -> str:
        for option_value, label in self.labels:
            if option_value == value:
                return label
        raise KeyError(f"no translated label for the value {value}")


@dataclass(frozen=True, slots=True)
class Translation:
    """Our summary wording in another language: every text of the definition a patient sees."""

    language: str
    title: str
    recall_period: str | None
    items: tuple[tuple[str, ItemTranslation], ...]  # by item id

    def item(self, item_id: str) -> ItemTranslation:
        for translated_id, item in self.items:
            if translated_id == item_id:
                return item
        raise KeyError(f"the {self.language} translation has no item {item_id!r}")


@dataclass(frozen=True, slots=True)
class Licence:
    holder: str
    notice: str


@dataclass(frozen=True, slots=True)
class LoincCodes:
    """Instrument-level LOINC codes; only codes the reference does not mark UNCONFIRMED."""

    panel: str | None = None
    score: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ChangeThreshold:
    """A meaningful-change threshold as the definition states it, with its evidence.

    `kind`: group_mid, individual, relative (percent of baseline) or distribution (a fraction of
    an SD). Exactly one threshold of a scored instrument is `primary`: the one used to classify
    change; the others are alternatives staff can choose.
    """

    value: float
    unit: str  # "T", "points" or "percent" (proms.scoring.change.UNITS)
    kind: str
    source: str
    evidence: str  # PUBLISHED, PUBLISHED_INDIRECT, GENERIC or UNCONFIRMED
    primary: bool
    scale: str = "total"
    substantial: float | None = None
    note: str = ""

    def to_threshold(self) -> Threshold:
        """The scoring module's Threshold; its evidence reads e.g. "UNCONFIRMED: no value found"."""
        evidence = f"{self.evidence}: {self.note}" if self.note else self.evidence
        return Threshold(self.value, self.unit, self.source, evidence, self.substantial)


# How soon the care team should act on an alert, most pressing first (the inbox's order).
TIERS = ("urgent", "next_visit", "information")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Raise an alert when any item in scope (all items when `items` is empty) has this value.

    `tier` says how soon the care team should act: urgent, next_visit or information.
    """

    kind: str
    when_any_item_value: int
    items: tuple[str, ...] = ()
    tier: str = "urgent"

    @property
    def key(self) -> str:
        """The rule's stable key within the instrument (alerts are unique per key and time
        point): the kind, as each instrument has one item rule of a kind."""
        return self.kind


@dataclass(frozen=True, slots=True)
class SeverityBand:
    """A published severity range of a scale, in the score's units (T where there is one).

    `lower` and `upper` are the cut points around it; None is an open end. A score exactly at a
    cut point belongs to the worse of the two bands it separates (see `band_of`).
    """

    label: str
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class SeverityRule:
    """Raise an alert when a scale's score reaches a level, at any time point (baseline too).

    `unit` says which score is compared: "T" the T-score, "points" the raw (summed or mean)
    score. `operator` is ">=" (at or above `value`) or "<=" (at or below it).
    """

    scale: str
    operator: str
    value: float
    unit: str
    tier: str
    label: str  # what the level means, in words: "severe pain interference"
    source: str
    evidence: str  # PUBLISHED, PUBLISHED_INDIRECT, GENERIC or UNCONFIRMED
    note: str = ""

    def key(self, code: str) -> str:
        """A stable text key for alerts: severity:<code>:<scale><operator><value>."""
        return f"severity:{code}:{self.scale}{self.operator}{_number(self.value)}"

    def words(self) -> str:
        """The rule as people read it: "T ≥ 70" or "points ≥ 8"."""
        sign = "\u2265" if self.operator == ">=" else "\u2264"
        return f"{self.unit} {sign} {_number(self.value)}"

    def met_by(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.value if self.operator == ">=" else value <= self.value


def _number(value: float) -> str:
    """70.0 -> "70", 7.5 -> "7.5": the way a cut point is written."""
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class TableRow:
    raw: int
    t_score: float
    standard_error: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """Graded response model parameters of every item, from one item bank."""

    bank: str
    source: str
    items: tuple[tuple[str, ItemCalibration], ...]

    def as_mapping(self) -> dict[str, ItemCalibration]:
        return dict(self.items)


@dataclass(frozen=True, slots=True)
class Norm:
    scale: str
    mean: float
    sd: float


@dataclass(frozen=True, slots=True)
class Norms:
    source: str
    population: str
    values: tuple[Norm, ...]


@dataclass(frozen=True, slots=True)
class Scoring:
    """How an instrument is scored, with the data the method needs."""

    method: ScoringMethod
    # promis_table
    table: tuple[TableRow, ...] = ()
    table_status: str | None = None  # the reference's evidence status, e.g. "CONFIRMED"
    table_status_detail: str = ""
    table_sources: str = ""
    calibration: Calibration | None = None
    no_calibration_reason: str = ""
    # sum / mean
    scales: tuple[Scale, ...] = ()
    missing_rule: str = ""
    norms: Norms | None = None


@dataclass(frozen=True, slots=True)
class InstrumentDefinition:
    """One version of one instrument, exactly as its definition file states it."""

    code: str
    version: str
    title: str
    domain: str
    direction: Direction
    recall_period: str | None
    language: str
    owner: str  # "proms" for our own instruments
    items: tuple[Item, ...]
    scoring: Scoring
    thresholds: tuple[ChangeThreshold, ...]
    alerts: tuple[AlertRule, ...]
    wording: Wording
    licence: Licence
    loinc: LoincCodes
    notes: str = ""
    translations: tuple[Translation, ...] = ()
    # Published severity ranges of the total score (PROMIS: within normal limits, mild, moderate,
    # severe), from best to worst, with where they come from; () where none are published.
    severity_bands: tuple[SeverityBand, ...] = ()
    severity_source: str = ""
    severity_rules: tuple[SeverityRule, ...] = ()

    def __post_init__(self) -> None:
        # Translations translate our summary wording in the definition's own language. A
        # definition reworded by an import (a copy with new items and wording) keeps none that
        # no longer translate it: none once the wording is official, none into its own
        # language. Definition files with either are refused by the loader.
        if self.wording.source is WordingSource.OFFICIAL:
            kept: tuple[Translation, ...] = ()
        else:
            kept = tuple(t for t in self.translations if t.language != self.language)
        if kept != self.translations:
            object.__setattr__(self, "translations", kept)

    @property
    def key(self) -> tuple[str, str]:
        return (self.code, self.version)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(f"{self.code} {self.version} has no item {item_id!r}")

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages of its wording: its own first, then those of its translations."""
        return (self.language, *(t.language for t in self.translations))

    def translated(self, language: str) -> InstrumentDefinition:
        """This definition in `language`, from its translation; itself in its own language.

        The same code, version, items, values and scoring; only the title, recall period, item
        texts and option labels change. The result is a definition of its own (its language,
        no translations, so its own snapshot and hash); its wording is still our summary.
        Raises KeyError when there is no translation into `language`.
        """
        if language == self.language:
            return self
        for translation in self.translations:
            if translation.language == language:
                break
        else:
            known = ", ".join(self.languages)
            raise KeyError(f"{self.code} {self.version} has no {language!r} wording ({known})")
        items = []
        for item in self.items:
            text = translation.item(item.id)
            items.append(
                replace(
                    item,
                    text=text.text,
                    options=tuple(
                        Option(option.value, text.label(option.value)) for option in item.options
                    ),
                )
            )
        return replace(
            self,
            language=language,
            title=translation.title,
            recall_period=translation.recall_period,
            items=tuple(items),
            translations=(),
        )

    @property
    def table_status(self) -> str | None:
        """The evidence status of the scoring table (None when the method has no table)."""
        return self.scoring.table_status

    @property
    def primary_threshold(self) -> Threshold | None:
        for threshold in self.thresholds:
            if threshold.primary:
                return threshold.to_threshold()
        return None

    @property
    def is_own(self) -> bool:
        return self.owner == OWN_INSTRUMENT_OWNER

    @property
    def needs_official_wording(self) -> bool:
        """True while an instrument someone else owns carries only our summary wording."""
        return self.wording.source is WordingSource.SUMMARY and not self.is_own

    def check_sendable(self, env: str) -> None:
        """Refuse, in production, to send an instrument whose wording is only our summary."""
        if env == PRODUCTION and self.needs_official_wording:
            raise NotSendableError(
                f"{self.code} {self.version} ({self.title}) has only proms' plain-language "
                "summary wording, and production sends only official wording. Load the "
                "official wording you are licensed to use (licence holder: "
                f"{self.licence.holder}) with `proms instruments import FILE` (a FHIR R4 "
                "Questionnaire JSON or a REDCap data dictionary CSV)."
            )

    def alert_items(self, answers: Mapping[str, Answer]) -> tuple[str, ...]:
        """Ids of the items whose answers trigger an alert rule, in on-form order."""
        hits: set[str] = set()
        for rule in self.alerts:
            for item_id in rule.items or self.item_ids:
                value = answers.get(item_id)
                if (
                    value is not None
                    and not isinstance(value, bool)
                    and value == rule.when_any_item_value
                ):
                    hits.add(item_id)
        return tuple(item_id for item_id in self.item_ids if item_id in hits)

    def severity_band(self, value: float | None) -> SeverityBand | None:
        """The severity band a total score falls in (None without bands or a score).

        A score at a cut point belongs to the worse band: T 70 is severe and T 55 mild for a
        symptom (higher is worse); T 30 is severe and T 45 mild for a function.
        """
        if value is None:
            return None
        worse_up = self.direction is Direction.HIGHER_IS_WORSE
        for band in self.severity_bands:
            low = -math.inf if band.lower is None else band.lower
            high = math.inf if band.upper is None else band.upper
            inside = low <= value < high if worse_up else low < value <= high
            if inside:
                return band
        return None

    def severity_hits(
        self, scale: str, t_score: float | None, raw_score: float | None
    ) -> tuple[SeverityRule, ...]:
        """The severity rules a scale's score meets."""
        return tuple(
            rule
            for rule in self.severity_rules
            if rule.scale == scale and rule.met_by(t_score if rule.unit == "T" else raw_score)
        )

    def form(self) -> Form:
        """The scoring form: PromisForm, SummedForm or UnscoredForm."""
        scoring = self.scoring
        if scoring.method is ScoringMethod.PROMIS_TABLE:
            return PromisForm(
                code=self.code,
                version=self.version,
                item_ids=self.item_ids,
                item_values={item.id: frozenset(item.values) for item in self.items},
                table={row.raw: (row.t_score, row.standard_error) for row in scoring.table},
                calibration=(
                    None if scoring.calibration is None else scoring.calibration.as_mapping()
                ),
                no_calibration_reason=scoring.no_calibration_reason,
            )
        if scoring.method in (ScoringMethod.SUM, ScoringMethod.MEAN):
            return SummedForm(
                code=self.code,
                version=self.version,
                method=Method.SUM if scoring.method is ScoringMethod.SUM else Method.MEAN,
                scales=scoring.scales,
                item_values={item.id: frozenset(item.values) for item in self.items},
                missing_rule=scoring.missing_rule,
            )
        return UnscoredForm(
            code=self.code,
            version=self.version,
            item_ids=self.item_ids,
            item_values={item.id: frozenset(item.values) for item in self.items},
        )

    def to_json(self) -> dict[str, Any]:
        """The definition file's content (definition_from_json reverses it exactly)."""
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "code": self.code,
            "version": self.version,
            "title": self.title,
            "domain": self.domain,
            "direction": self.direction.value,
            "recall_period": self.recall_period,
            "language": self.language,
            "owner": self.owner,
        }
        if self.notes:
            data["notes"] = self.notes
        data["loinc"] = {
            "panel": self.loinc.panel,
            "score": self.loinc.score,
            "note": self.loinc.note,
        }
        data["licence"] = {"holder": self.licence.holder, "notice": self.licence.notice}
        data["wording"] = {
            "source": self.wording.source.value,
            "reference": self.wording.reference,
            "imported_at": self.wording.imported_at,
        }
        data["items"] = [_item_json(item) for item in self.items]
        data["scoring"] = _scoring_json(self.scoring)
        data["thresholds"] = [_threshold_json(t) for t in self.thresholds]
        data["alerts"] = [_alert_json(rule) for rule in self.alerts]
        if self.severity_bands:
            data["severity_bands"] = {
                "source": self.severity_source,
                "bands": [
                    {"label": b.label, "lower": b.lower, "upper": b.upper}
                    for b in self.severity_bands
                ],
            }
        if self.severity_rules:
            data["severity_rules"] = [_severity_rule_json(rule) for rule in self.severity_rules]
        if self.translations:
            data["translations"] = {t.language: _translation_json(t) for t in self.translations}
        return data


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "loinc": item.loinc,
        "text": item.text,
        "reverse": item.reverse,
        "options": [{"value": o.value, "label": o.label} for o in item.options],
    }


def _scoring_json(scoring: Scoring) -> dict[str, Any]:
    data: dict[str, Any] = {"method": scoring.method.value}
    if scoring.method is ScoringMethod.PROMIS_TABLE:
        data["table_status"] = scoring.table_status
        data["table_status_detail"] = scoring.table_status_detail
        data["table_sources"] = scoring.table_sources
        data["table"] = [[r.raw, r.t_score, r.standard_error] for r in scoring.table]
        if scoring.calibration is None:
            data["calibration"] = None
            data["no_calibration_reason"] = scoring.no_calibration_reason
        else:
            data["calibration"] = {
                "bank": scoring.calibration.bank,
                "source": scoring.calibration.source,
                "items": {
                    item_id: {"a": c.a, "b": list(c.thresholds)}
                    for item_id, c in scoring.calibration.items
                },
            }
    elif scoring.method in (ScoringMethod.SUM, ScoringMethod.MEAN):
        data["scales"] = [{"key": s.key, "items": list(s.item_ids)} for s in scoring.scales]
        data["missing_rule"] = scoring.missing_rule
        if scoring.norms is not None:
            data["norms"] = {
                "source": scoring.norms.source,
                "population": scoring.norms.population,
                "values": [
                    {"scale": n.scale, "mean": n.mean, "sd": n.sd} for n in scoring.norms.values
                ],
            }
    return data


def _threshold_json(threshold: ChangeThreshold) -> dict[str, Any]:
    return {
        "value": threshold.value,
        "unit": threshold.unit,
        "kind": threshold.kind,
        "scale": threshold.scale,
        "primary": threshold.primary,
        "substantial": threshold.substantial,
        "source": threshold.source,
        "evidence": threshold.evidence,
        "note": threshold.note,
    }


def _translation_json(translation: Translation) -> dict[str, Any]:
    return {
        "title": translation.title,
        "recall_period": translation.recall_period,
        "items": {
            item_id: {
                "text": item.text,
                "options": {str(value): label for value, label in item.labels},
            }
            for item_id, item in translation.items
        },
    }


def _translation_from_json(language: str, data: Mapping[str, Any]) -> Translation:
    return Translation(
        language=language,
        title=data["title"],
        recall_period=data["recall_period"],
        items=tuple(
            (
                item_id,
                ItemTranslation(
                    text=item["text"],
                    labels=tuple((int(value), label) for value, label in item["options"].items()),
                ),
            )
            for item_id, item in data["items"].items()
        ),
    )


def _alert_json(rule: AlertRule) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": rule.kind, "when_any_item_value": rule.when_any_item_value}
    if rule.items:
        data["items"] = list(rule.items)
    data["tier"] = rule.tier
    return data


def _severity_rule_json(rule: SeverityRule) -> dict[str, Any]:
    return {
        "scale": rule.scale,
        "operator": rule.operator,
        "value": rule.value,
        "unit": rule.unit,
        "tier": rule.tier,
        "label": rule.label,
        "source": rule.source,
        "evidence": rule.evidence,
        "note": rule.note,
    }


def _number_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def definition_from_json(data: Mapping[str, Any]) -> InstrumentDefinition:
    """Build a definition from validated JSON data (see loader.parse_definition)."""
    loinc = data["loinc"]
    licence = data["licence"]
    wording = data["wording"]
    return InstrumentDefinition(
        code=data["code"],
        version=data["version"],
        title=data["title"],
        domain=data["domain"],
        direction=Direction(data["direction"]),
        recall_period=data["recall_period"],
        language=data["language"],
        owner=data["owner"],
        notes=data.get("notes", ""),
        loinc=LoincCodes(panel=loinc["panel"], score=loinc["score"], note=loinc["note"]),
        licence=Licence(holder=licence["holder"], notice=licence["notice"]),
        wording=Wording(
            source=WordingSource(wording["source"]),
            reference=wording["reference"],
            imported_at=wording["imported_at"],
        ),
        items=tuple(
            Item(
                id=item["id"],
                text=item["text"],
                options=tuple(Option(o["value"], o["label"]) for o in item["options"]),
                reverse=item["reverse"],
                loinc=item["loinc"],
            )
            for item in data["items"]
        ),
        scoring=_scoring_from_json(data["scoring"]),
        thresholds=tuple(
            ChangeThreshold(
                value=float(t["value"]),
                unit=t["unit"],
                kind=t["kind"],
                scale=t["scale"],
                primary=t["primary"],
                substantial=None if t["substantial"] is None else float(t["substantial"]),
                source=t["source"],
                evidence=t["evidence"],
                note=t["note"],
            )
            for t in data["thresholds"]
        ),
        alerts=tuple(
            AlertRule(
                kind=a["kind"],
                when_any_item_value=a["when_any_item_value"],
                items=tuple(a.get("items", ())),
                tier=a.get("tier", "urgent"),
            )
            for a in data["alerts"]
        ),
        severity_bands=tuple(
            SeverityBand(b["label"], _number_or_none(b["lower"]), _number_or_none(b["upper"]))
            for b in data.get("severity_bands", {}).get("bands", ())
        ),
        severity_source=data.get("severity_bands", {}).get("source", ""),
        severity_rules=tuple(
            SeverityRule(
                scale=r["scale"],
                operator=r["operator"],
                value=float(r["value"]),
                unit=r["unit"],
                tier=r["tier"],
                label=r["label"],
                source=r["source"],
                evidence=r["evidence"],
                note=r["note"],
            )
            for r in data.get("severity_rules", ())
        ),
        translations=tuple(
            _translation_from_json(language, translation)
            for language, translation in data.get("translations", {}).items()
        ),
    )


def _scoring_from_json(data: Mapping[str, Any]) -> Scoring:
    method = ScoringMethod(data["method"])
    if method is ScoringMethod.PROMIS_TABLE:
        calibration = data["calibration"]
        return Scoring(
            method=method,
            table=tuple(TableRow(int(r[0]), float(r[1]), float(r[2])) for r in data["table"]),
            table_status=data["table_status"],
            table_status_detail=data["table_status_detail"],
            table_sources=data["table_sources"],
            calibration=None
            if calibration is None
            else Calibration(
                bank=calibration["bank"],
                source=calibration["source"],
                items=tuple(
                    (
                        item_id,
                        ItemCalibration(
                            a=float(params["a"]),
                            thresholds=tuple(float(b) for b in params["b"]),
                        ),
                    )
                    for item_id, params in calibration["items"].items()
                ),
            ),
            no_calibration_reason=data.get("no_calibration_reason", ""),
        )
    if method in (ScoringMethod.SUM, ScoringMethod.MEAN):
        norms = data.get("norms")
        return Scoring(
            method=method,
            scales=tuple(Scale(s["key"], tuple(s["items"])) for s in data["scales"]),
            missing_rule=data["missing_rule"],
            norms=None
            if norms is None
            else Norms(
                source=norms["source"],
                population=norms["population"],
                values=tuple(
                    Norm(n["scale"], float(n["mean"]), float(n["sd"])) for n in norms["values"]
                ),
            ),
        )
    return Scoring(method=method)


@dataclass(frozen=True, slots=True)
class ImportedItem:
    """A question read from a FHIR Questionnaire or REDCap data dictionary.

    `problem` says why the item's answers could not be read (e.g. a free-text field, or answer
    codes without numeric values); its options are then empty. An option label is "" when the
    file gives the answer no text of its own (a bare FHIR valueInteger).
    """

    id: str
    text: str
    options: tuple[Option, ...]
    loinc: str | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class ImportedForm:
    """A form read from a file to import: its items with wording, and what the file says of it."""

    file_format: str  # "fhir" or "redcap"
    name: str
    title: str
    items: tuple[ImportedItem, ...]
    code: str | None = None  # a proms instrument code, when the file carries one (our export)
    version: str | None = None
    language: str | None = None
    recall_period: str | None = None
    copyright: str | None = None
    publisher: str | None = None
    panel_loinc: str | None = None
    wording: Wording | None = None  # the wording record of a proms export
