"""A broken definition file is a clear error naming the file and the JSON path of the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proms.instruments.errors import DefinitionError
from proms.instruments.loader import (
    json_path,
    load_definition,
    load_directory,
    parse_definition,
    schema,
)
from tests.instruments.helpers import definition_json

Mutation = Callable[[dict[str, Any]], None]


def _drop_version(d: dict[str, Any]) -> None:
    del d["version"]


def _wrong_type(d: dict[str, Any]) -> None:
    d["items"][0]["reverse"] = "no"


def _duplicate_option_value(d: dict[str, Any]) -> None:
    d["items"][2]["options"][1]["value"] = 1


def _table_gap(d: dict[str, Any]) -> None:
    d["scoring"]["table"] = [row for row in d["scoring"]["table"] if row[0] != 10]


def _table_duplicate(d: dict[str, Any]) -> None:
    d["scoring"]["table"][5] = [4, 41.6, 6.1]


def _calibration_categories(d: dict[str, Any]) -> None:
    d["scoring"]["calibration"]["items"]["PAININ9"]["b"].pop()


def _calibration_missing(d: dict[str, Any]) -> None:
    del d["scoring"]["calibration"]["items"]["PAININ34"]


def _calibration_unordered(d: dict[str, Any]) -> None:
    d["scoring"]["calibration"]["items"]["PAININ22"]["b"].reverse()


def _unknown_scale_item(d: dict[str, Any]) -> None:
    d["scoring"]["scales"][1]["items"][0] = "PASS99"


def _duplicate_item_id(d: dict[str, Any]) -> None:
    d["items"][3]["id"] = "painin9"


def _unknown_field(d: dict[str, Any]) -> None:
    d["items"][1]["wording"] = "x"


def _bad_method(d: dict[str, Any]) -> None:
    d["scoring"]["method"] = "median"


def _two_primaries(d: dict[str, Any]) -> None:
    d["thresholds"][1]["primary"] = True


def _official_without_date(d: dict[str, Any]) -> None:
    d["wording"]["source"] = "official"


def _bad_date(d: dict[str, Any]) -> None:
    d["wording"]["imported_at"] = "yesterday"


def _alert_unknown_item(d: dict[str, Any]) -> None:
    d["alerts"][0]["items"] = ["headache", "fever"]


def _thresholds_on_unscored(d: dict[str, Any]) -> None:
    d["thresholds"] = [
        {
            "value": 1.0,
            "unit": "points",
            "kind": "group_mid",
            "scale": "total",
            "primary": True,
            "substantial": None,
            "source": "s",
            "evidence": "UNCONFIRMED",
            "note": "",
        }
    ]


def _no_calibration_reason(d: dict[str, Any]) -> None:
    del d["scoring"]["no_calibration_reason"]


def _substantial_on_points(d: dict[str, Any]) -> None:
    d["thresholds"][0]["substantial"] = 50.0


def _untranslated_item(d: dict[str, Any]) -> None:
    del d["translations"]["es"]["items"]["PAININ22"]


def _unknown_translated_item(d: dict[str, Any]) -> None:
    d["translations"]["es"]["items"]["PAININ99"] = d["translations"]["es"]["items"]["PAININ9"]


def _untranslated_option(d: dict[str, Any]) -> None:
    del d["translations"]["es"]["items"]["PAININ34"]["options"]["5"]


def _unknown_translated_option(d: dict[str, Any]) -> None:
    d["translations"]["es"]["items"]["PAININ9"]["options"]["6"] = "Muchísimo"


def _option_key_not_a_value(d: dict[str, Any]) -> None:
    options = d["translations"]["es"]["items"]["PAININ9"]["options"]
    options["01"] = options.pop("1")


def _untranslated_title(d: dict[str, Any]) -> None:
    del d["translations"]["es"]["title"]


def _untranslated_recall_period(d: dict[str, Any]) -> None:
    d["translations"]["es"]["recall_period"] = None


def _recall_period_of_none(d: dict[str, Any]) -> None:
    d["translations"]["es"]["recall_period"] = "En general"


def _translation_into_its_own_language(d: dict[str, Any]) -> None:
    d["translations"]["en"] = d["translations"]["es"]


def _translation_of_official_wording(d: dict[str, Any]) -> None:
    d["wording"] = {"source": "official", "reference": "f.json", "imported_at": "2026-11-25"}


def _bad_language_tag(d: dict[str, Any]) -> None:
    d["translations"]["Spanish"] = d["translations"].pop("es")


@pytest.mark.parametrize(
    ("code", "mutate", "path", "fragment"),
    [
        ("promis-pi-4a", _untranslated_item, "translations.es.items", "item 'PAININ22'"),
        (
            "promis-pi-4a",
            _unknown_translated_item,
            "translations.es.items.PAININ99",
            "not an item of this instrument",
        ),
        (
            "promis-pi-4a",
            _untranslated_option,
            "translations.es.items.PAININ34.options",
            "option valued 5",
        ),
        (
            "promis-pi-4a",
            _unknown_translated_option,
            'translations.es.items.PAININ9.options["6"]',
            "no option valued 6",
        ),
        ("promis-pi-4a", _option_key_not_a_value, "translations.es.items.PAININ9.options", "'01'"),
        ("promis-pi-4a", _untranslated_title, "translations.es.title", "required"),
        ("promis-pi-4a", _untranslated_recall_period, "translations.es.recall_period", "translate"),
        ("pass-20", _recall_period_of_none, "translations.es.recall_period", "must be null"),
        ("peg", _translation_into_its_own_language, "translations.en", "own language"),
        ("peg", _translation_of_official_wording, "translations", "summary wording"),
        ("peg", _bad_language_tag, "translations", "'Spanish'"),
        ("promis-pi-4a", _drop_version, "version", "required field is missing"),
        ("promis-pi-4a", _wrong_type, "items[0].reverse", "not of type 'boolean'"),
        ("promis-pi-4a", _duplicate_option_value, "items[2].options[1].value", "appears twice"),
        ("promis-pi-4a", _table_gap, "scoring.table", "no row for raw score 10"),
        ("promis-pi-4a", _table_duplicate, "scoring.table[5][0]", "raw score 4 appears twice"),
        (
            "promis-pi-4a",
            _calibration_categories,
            "scoring.calibration.items.PAININ9.b",
            "3 thresholds for an item with 5 answer options (expected 4)",
        ),
        ("promis-pi-4a", _calibration_missing, "scoring.calibration.items", "PAININ34"),
        (
            "promis-pi-4a",
            _calibration_unordered,
            "scoring.calibration.items.PAININ22.b",
            "must increase",
        ),
        ("pass-20", _unknown_scale_item, "scoring.scales[1].items[0]", "'PASS99' is not an item"),
        ("promis-pi-4a", _duplicate_item_id, "items[3].id", "repeats items[0].id"),
        ("promis-pi-4a", _unknown_field, "items[1].wording", "unknown field"),
        ("promis-pi-4a", _bad_method, "scoring.method", "'median' is not one of"),
        ("promis-pi-4a", _two_primaries, "thresholds[1].primary", "a second primary"),
        ("promis-pi-4a", _official_without_date, "wording.imported_at", "not of type 'string'"),
        ("promis-pi-4a", _bad_date, "wording.imported_at", "not an ISO 8601 date"),
        ("infusion-side-effects", _alert_unknown_item, "alerts[0].items[1]", "'fever' is not"),
        ("infusion-side-effects", _thresholds_on_unscored, "thresholds", "unscored"),
        ("promis-pf-4a", _no_calibration_reason, "scoring.no_calibration_reason", "required"),
        ("pass-20", _substantial_on_points, "thresholds[0].substantial", "percent"),
    ],
)
def test_broken_file_names_file_and_field(
    tmp_path: Path, code: str, mutate: Mutation, path: str, fragment: str
) -> None:
    data = definition_json(code)
    mutate(data)
    target = tmp_path / f"{code}.json"
    target.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition(target)
    message = str(caught.value)
    lines = [line for line in message.splitlines() if line.startswith(f"{code}.json: {path}: ")]
    assert lines, message
    assert any(fragment in line for line in lines), message
    assert caught.value.filename == f"{code}.json"


def test_every_problem_is_reported(tmp_path: Path) -> None:
    data = definition_json("promis-pi-4a")
    _duplicate_option_value(data)
    _calibration_categories(data)
    _table_gap(data)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, filename="x.json")
    paths = {path for path, _ in caught.value.problems}
    assert {
        "items[2].options[1].value",
        "scoring.calibration.items.PAININ9.b",
        "scoring.table",
    } <= paths


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    target = tmp_path / "peg.json"
    target.write_text('{\n  "code": "peg",\n  oops\n}', encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"^peg\.json: line 3 column 3: not valid JSON"):
        load_definition(target)


def test_file_name_must_match_the_code(tmp_path: Path) -> None:
    target = tmp_path / "something-else.json"
    target.write_text(json.dumps(definition_json("peg")), encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"^something-else\.json: code: 'peg' does not match"):
        load_definition(target)
    versioned = tmp_path / "peg-1.0.json"
    versioned.write_text(json.dumps(definition_json("peg")), encoding="utf-8")
    assert load_definition(versioned).code == "peg"


def test_a_broken_file_stops_directory_loading(tmp_path: Path) -> None:
    for code in ("peg", "pain-nrs"):
        (tmp_path / f"{code}.json").write_text(json.dumps(definition_json(code)), "utf-8")
    assert [d.code for d in load_directory(tmp_path)] == ["pain-nrs", "peg"]
    broken = definition_json("pain-nrs")
    broken["items"][0]["options"] = []
    (tmp_path / "pain-nrs.json").write_text(json.dumps(broken), "utf-8")
    with pytest.raises(DefinitionError, match=r"pain-nrs\.json: items\[0\]\.options: "):
        load_directory(tmp_path)


def test_not_an_object() -> None:
    with pytest.raises(DefinitionError, match=r"^x\.json: \(top level\): \[\] is not of type"):
        parse_definition([], filename="x.json")


def test_schema_is_draft_2020_12() -> None:
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_json_path() -> None:
    assert json_path(["items", 2, "options", 1, "value"]) == "items[2].options[1].value"
    assert json_path(["a b", 0]) == '["a b"][0]'
    assert json_path([]) == "(top level)"
