"""Load and validate instrument definition files.

Validation has two layers: schema.json (JSON Schema draft 2020-12, checked with `jsonschema`)
for shape and types, then the checks a schema cannot express: unique item ids and option
values, a scoring table with exactly one row for every possible raw sum, a calibration for
every item with ordered thresholds and one fewer than the answer options, scales and alerts that
name real items, translations that translate every item and option and nothing else. Every
problem is reported with the file name and the JSON path of the field.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema  # no type information: pyproject.toml ignores its missing imports

from proms.instruments.errors import DefinitionError
from proms.instruments.model import InstrumentDefinition, definition_from_json

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "schema.json"
DEFINITIONS_DIR = HERE / "definitions"

Problem = tuple[str, str]  # (JSON path, message)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_SHOWN = 200  # characters of an offending value quoted in a schema message


@functools.cache
def schema() -> dict[str, Any]:
    """The definition schema (schema.json)."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


@functools.cache
def _validator() -> Any:
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


def json_path(parts: Iterable[str | int]) -> str:
    """items[2].options[1].value from ("items", 2, "options", 1, "value")."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


def _schema_message(error: Any) -> tuple[list[str | int], str]:
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return [*path, missing[0]], "required field is missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in allowed)
        if extra:
            return [*path, extra[0]], "unknown field (not in schema.json)"
    message = str(error.message)
    if len(message) > _MAX_SHOWN:
        message = message[:_MAX_SHOWN] + "..."
    return path, message


def schema_problems(data: Any) -> list[Problem]:
    """What schema.json says is wrong with `data`, one problem per field, in path order."""
    found: dict[str, str] = {}
    for error in _validator().iter_errors(data):
        path, message = _schema_message(error)
        found.setdefault(json_path(path), message)
    return sorted(found.items())


def _possible_sums(value_sets: Sequence[set[int]]) -> set[int]:
    sums = {0}
    for values in value_sets:
        sums = {s + v for s in sums for v in values}
    return sums


def _ranges(numbers: Sequence[int]) -> str:
    """'3, 7-9' from [3, 7, 8, 9]."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _table_problems(scoring: Mapping[str, Any], value_sets: Sequence[set[int]]) -> list[Problem]:
    problems: list[Problem] = []
    possible = _possible_sums(value_sets)
    first_row: dict[int, int] = {}
    for k, row in enumerate(scoring["table"]):
        raw = row[0]
        if raw in first_row:
            problems.append(
                (
                    f"scoring.table[{k}][0]",
                    f"raw score {raw} appears twice (also scoring.table[{first_row[raw]}])",
                )
            )
            continue
        first_row[raw] = k
        if raw not in possible:
            problems.append(
                (
                    f"scoring.table[{k}][0]",
                    f"raw score {raw} is not a possible sum of the item values "
                    f"({min(possible)}-{max(possible)})",
                )
            )
    missing = sorted(possible - first_row.keys())
    if missing:
        problems.append(("scoring.table", f"no row for raw score {_ranges(missing)}"))
    rows = sorted(scoring["table"], key=lambda r: r[0])
    for lower, upper in itertools.pairwise(rows):
        if upper[0] != lower[0] and upper[1] <= lower[1]:
            problems.append(
                (
                    "scoring.table",
                    f"T-scores must rise with the raw score: raw {upper[0]} has T {upper[1]}, "
                    f"raw {lower[0]} has T {lower[1]}",
                )
            )
    return problems


def _calibration_problems(
    calibration: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> list[Problem]:
    problems: list[Problem] = []
    index = {item["id"]: i for i, item in enumerate(items)}
    params = calibration["items"]
    for item in items:
        if item["id"] not in params:
            problems.append(("scoring.calibration.items", f"no calibration for item {item['id']}"))
    for item_id, item_params in params.items():
        path = json_path(["scoring", "calibration", "items", item_id])
        if item_id not in index:
            problems.append((path, "not an item of this instrument"))
            continue
        i = index[item_id]
        values = sorted(option["value"] for option in items[i]["options"])
        k = len(values)
        b = item_params["b"]
        if len(b) != k - 1:
            problems.append(
                (
                    f"{path}.b",
                    f"{len(b)} thresholds for an item with {k} answer options (expected {k - 1})",
                )
            )
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(b)):
            problems.append((f"{path}.b", f"thresholds must increase, not {b}"))
        if values != list(range(1, k + 1)):
            problems.append(
                (
                    f"items[{i}].options",
                    f"a calibrated item's values are its graded-response categories 1..{k}, "
                    f"not {values}",
                )
            )
    return problems


def _scale_problems(scoring: Mapping[str, Any], item_ids: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    keys: dict[str, int] = {}
    for s, scale in enumerate(scoring["scales"]):
        if scale["key"] in keys:
            problems.append(
                (
                    f"scoring.scales[{s}].key",
                    f"{scale['key']!r} repeats scales[{keys[scale['key']]}]",
                )
            )
        keys.setdefault(scale["key"], s)
        seen: set[str] = set()
        for j, item_id in enumerate(scale["items"]):
            if item_id not in item_ids:
                problems.append(
                    (
                        f"scoring.scales[{s}].items[{j}]",
                        f"{item_id!r} is not an item of this instrument",
                    )
                )
            elif item_id in seen:
                problems.append((f"scoring.scales[{s}].items[{j}]", f"{item_id!r} is listed twice"))
            seen.add(item_id)
    norms = scoring.get("norms")
    if norms is not None:
        for n, norm in enumerate(norms["values"]):
            if norm["scale"] not in keys:
                problems.append(
                    (f"scoring.norms.values[{n}].scale", f"{norm['scale']!r} is not a scale")
                )
    return problems


def _threshold_problems(data: Mapping[str, Any], scale_keys: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    thresholds = data["thresholds"]
    if data["scoring"]["method"] == "none" and thresholds:
        return [("thresholds", "an unscored instrument has no meaningful-change thresholds")]
    primaries: dict[str, int] = {}
    for t, threshold in enumerate(thresholds):
        if threshold["scale"] not in scale_keys:
            problems.append(
                (
                    f"thresholds[{t}].scale",
                    f"{threshold['scale']!r} is not a scale ({', '.join(sorted(scale_keys))})",
                )
            )
        if threshold["primary"]:
            if threshold["scale"] in primaries:
                problems.append(
                    (
                        f"thresholds[{t}].primary",
                        f"a second primary threshold for scale {threshold['scale']!r} "
                        f"(also thresholds[{primaries[threshold['scale']]}])",
                    )
                )
            primaries.setdefault(threshold["scale"], t)
        substantial = threshold["substantial"]
        if substantial is not None and (
            threshold["unit"] != "percent" or substantial < threshold["value"]
        ):
            problems.append(
                (
                    f"thresholds[{t}].substantial",
                    "a substantial-improvement cut is a percent at least the threshold value",
                )
            )
    scales_with_thresholds = {t["scale"] for t in thresholds}
    for scale in sorted(scales_with_thresholds - primaries.keys()):
        problems.append(("thresholds", f"no primary threshold for scale {scale!r}"))
    return problems


def _alert_problems(data: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    values = {item["id"]: {o["value"] for o in item["options"]} for item in data["items"]}
    for a, rule in enumerate(data["alerts"]):
        scope = rule.get("items", list(values))
        for j, item_id in enumerate(scope):
            if item_id not in values:
                problems.append(
                    (f"alerts[{a}].items[{j}]", f"{item_id!r} is not an item of this instrument")
                )
        if not any(rule["when_any_item_value"] in values.get(item_id, ()) for item_id in scope):
            problems.append(
                (
                    f"alerts[{a}].when_any_item_value",
                    f"no item in scope can take the value {rule['when_any_item_value']}",
                )
            )
    return problems


def _severity_problems(data: Mapping[str, Any], scale_keys: set[str]) -> list[Problem]:
    """Bands that tile the whole scale from best to worst; rules on real scales and scores."""
    problems: list[Problem] = []
    method = data["scoring"]["method"]
    bands = data.get("severity_bands", {}).get("bands", [])
    if bands and method == "none":
        problems.append(("severity_bands", "an unscored instrument has no severity bands"))
    if bands:
        # Best to worst: upwards when higher is worse, downwards when higher is better.
        upwards = data["direction"] == "higher_is_worse"
        first, last = ("lower", "upper") if upwards else ("upper", "lower")
        if bands[0][first] is not None:
            problems.append((f"severity_bands.bands[0].{first}", "the best band is open-ended"))
        if bands[-1][last] is not None:
            problems.append(
                (f"severity_bands.bands[{len(bands) - 1}].{last}", "the worst band is open-ended")
            )
        for b, (band, following) in enumerate(itertools.pairwise(bands)):
            if band[last] is None or band[last] != following[first]:
                problems.append(
                    (
                        f"severity_bands.bands[{b + 1}].{first}",
                        f"must be {band[last]}, where the band before it ends",
                    )
                )
        for b, band in enumerate(bands):
            low, high = band["lower"], band["upper"]
            if low is not None and high is not None and low >= high:
                problems.append((f"severity_bands.bands[{b}]", "lower must be below upper"))
    keys: dict[str, int] = {}
    for r, rule in enumerate(data.get("severity_rules", [])):
        where = f"severity_rules[{r}]"
        if rule["scale"] not in scale_keys:
            known = ", ".join(sorted(scale_keys)) or "none: the instrument is not scored"
            problems.append((f"{where}.scale", f"{rule['scale']!r} is not a scale ({known})"))
        if rule["unit"] == "T" and method != "promis_table":
            problems.append((f"{where}.unit", "only a PROMIS table gives T-scores"))
        if rule["unit"] == "points" and method not in ("sum", "mean"):
            problems.append((f"{where}.unit", "compare a PROMIS score by its T-score"))
        key = f"{rule['scale']}{rule['operator']}{float(rule['value'])}"
        if key in keys:
            problems.append((where, f"repeats severity_rules[{keys[key]}]"))
        keys.setdefault(key, r)
    return problems


def _translation_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Each translation: of summary wording, into another language, of every text exactly."""
    translations = data.get("translations", {})
    if not translations:
        return []
    if data["wording"]["source"] != "summary":
        return [
            (
                "translations",
                "only proms' own summary wording carries translations; official wording in "
                "another language is imported on its own",
            )
        ]
    problems: list[Problem] = []
    items = {item["id"]: item for item in data["items"]}
    for language, translation in translations.items():
        where = json_path(["translations", language])
        if language == data["language"]:
            problems.append((where, f"{language!r} is the definition's own language"))
        if (translation["recall_period"] is None) != (data["recall_period"] is None):
            problems.append(
                (
                    f"{where}.recall_period",
                    "must be null when the definition has no recall period"
                    if data["recall_period"] is None
                    else "the definition has a recall period: translate it",
                )
            )
        translated = translation["items"]
        for item_id in items:
            if item_id not in translated:
                problems.append((f"{where}.items", f"no translation of item {item_id!r}"))
        for item_id, item in translated.items():
            item_where = json_path(["translations", language, "items", item_id])
            if item_id not in items:
                problems.append((item_where, f"{item_id!r} is not an item of this instrument"))
                continue
            values = [option["value"] for option in items[item_id]["options"]]
            labelled = {int(value) for value in item["options"]}
            for value in values:
                if value not in labelled:
                    problems.append(
                        (f"{item_where}.options", f"no translation of the option valued {value}")
                    )
            for value in sorted(labelled - set(values)):
                problems.append(
                    (
                        json_path(
                            ["translations", language, "items", item_id, "options", str(value)]
                        ),
                        f"item {item_id!r} has no option valued {value}",
                    )
                )
    return problems


def _is_iso_date(text: str) -> bool:
    for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
        try:
            parse(text)
        except ValueError:
            continue
        return True
    return False


def semantic_problems(data: Mapping[str, Any]) -> list[Problem]:
    """The checks schema.json cannot express, on data that already passed the schema."""
    problems: list[Problem] = []
    items = data["items"]
    first_id: dict[str, int] = {}
    for i, item in enumerate(items):
        key = item["id"].lower()
        if key in first_id:
            problems.append(
                (
                    f"items[{i}].id",
                    f"{item['id']!r} repeats items[{first_id[key]}].id "
                    "(ids are compared ignoring case)",
                )
            )
        first_id.setdefault(key, i)
        first_value: dict[int, int] = {}
        for j, option in enumerate(item["options"]):
            value = option["value"]
            if value in first_value:
                problems.append(
                    (
                        f"items[{i}].options[{j}].value",
                        f"value {value} appears twice (also options[{first_value[value]}])",
                    )
                )
            first_value.setdefault(value, j)

    scoring = data["scoring"]
    method = scoring["method"]
    scale_keys: set[str] = set()
    if method == "promis_table":
        scale_keys = {"total"}
        value_sets = [{o["value"] for o in item["options"]} for item in items]
        problems += _table_problems(scoring, value_sets)
        if scoring["calibration"] is not None:
            problems += _calibration_problems(scoring["calibration"], items)
    elif method in ("sum", "mean"):
        scale_keys = {scale["key"] for scale in scoring["scales"]}
        problems += _scale_problems(scoring, {item["id"] for item in items})

    problems += _threshold_problems(data, scale_keys)
    problems += _alert_problems(data)
    problems += _severity_problems(data, scale_keys)
    problems += _translation_problems(data)

    imported_at = data["wording"]["imported_at"]
    if imported_at is not None and not _is_iso_date(imported_at):
        problems.append(("wording.imported_at", f"{imported_at!r} is not an ISO 8601 date"))
    return problems


def parse_definition(data: Any, *, filename: str) -> InstrumentDefinition:
    """Validate JSON data (schema, then semantics) and build the definition.

    Raises DefinitionError naming `filename` and the path of every field that is wrong.
    """
    problems = schema_problems(data)
    if not problems:
        problems = semantic_problems(data)
    if problems:
        raise DefinitionError(filename, problems)
    return definition_from_json(data)


def load_definition(path: Path) -> InstrumentDefinition:
    """Read and validate one definition file, named <code>.json or <code>-<version>.json."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(path.name, [("(file)", f"cannot be read: {exc}")]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            path.name, [(f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}")]
        ) from exc
    definition = parse_definition(data, filename=path.name)
    expected = {definition.code, f"{definition.code}-{definition.version}"}
    if path.stem not in expected:
        raise DefinitionError(
            path.name,
            [("code", f"{definition.code!r} does not match the file name {path.name!r}")],
        )
    return definition


def load_directory(directory: Path) -> tuple[InstrumentDefinition, ...]:
    """Every *.json definition in a directory, in file-name order, each validated."""
    return tuple(load_definition(path) for path in sorted(directory.glob("*.json")))


def dumps_definition(definition: InstrumentDefinition) -> str:
    """The definition as the JSON text of a definition file (short arrays and objects inline)."""
    return _format(definition.to_json(), 0) + "\n"


_WIDTH = 100


def _format(value: Any, indent: int) -> str:
    inline = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or indent + len(inline) <= _WIDTH or not value:
        return inline
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        body = ",\n".join(
            f"{pad}{json.dumps(key, ensure_ascii=False)}: {_format(item, indent + 2)}"
            for key, item in value.items()
        )
        return "{\n" + body + "\n" + " " * indent + "}"
    body = ",\n".join(f"{pad}{_format(item, indent + 2)}" for item in value)
    return "[\n" + body + "\n" + " " * indent + "]"
