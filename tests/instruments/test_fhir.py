"""FHIR Questionnaire export (validated with fhir.resources) and import, round trip included.

fhir.resources 8 has no R4 (4.0.1) package: its top level is R5 and `R4B` is FHIR 4.3.0, whose
Questionnaire has the same elements as R4 for everything exported here, so R4B validates.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from fhir.resources.R4B import __fhir_version__ as R4B_VERSION
from fhir.resources.R4B.questionnaire import Questionnaire

from proms.instruments import fhir
from proms.instruments.errors import DefinitionImportError, ImportFormatError
from proms.instruments.importer import apply_import
from proms.instruments.model import WordingSource
from proms.instruments.registry import Registry
from tests.instruments.helpers import BUNDLED_CODES, fixture_json

TODAY = "2026-11-25"


def test_r4b_is_the_r4_family() -> None:
    assert R4B_VERSION.startswith("4.")


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_export_validates_as_fhir_questionnaire(registry: Registry, code: str) -> None:
    data = fhir.to_questionnaire(registry.get(code))
    resource = Questionnaire.model_validate(data)
    assert resource.status == "active"
    assert resource.version == registry.get(code).version


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_export_reimports_losslessly(registry: Registry, code: str) -> None:
    original = registry.get(code)
    text = json.dumps(fhir.to_questionnaire(original))
    imported = fhir.from_questionnaire(json.loads(text))
    result = apply_import(registry, imported, source=f"{code}.json", imported_at=TODAY)
    assert result == original
    assert result.wording.source is WordingSource.SUMMARY


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_export_without_our_identifier_still_matches_by_item_id(
    registry: Registry, code: str
) -> None:
    original = registry.get(code)
    data = fhir.to_questionnaire(original)
    del data["identifier"]
    result = apply_import(
        registry, fhir.from_questionnaire(data), source="x.json", imported_at=TODAY
    )
    assert result == original


def test_export_shape(registry: Registry) -> None:
    definition = registry.get("promis-pi-8a")
    data = fhir.to_questionnaire(definition)
    assert data["resourceType"] == "Questionnaire"
    assert data["code"] == [
        {"system": "http://loinc.org", "code": "75870-6", "display": definition.title}
    ]
    assert data["copyright"] == definition.licence.notice
    assert data["identifier"] == [{"system": fhir.INSTRUMENT_CODE_SYSTEM, "value": "promis-pi-8a"}]
    recall, first = data["item"][0], data["item"][1]
    assert recall == {
        "linkId": "recall-period",
        "type": "display",
        "text": "In the past 7 days",
        "_text": _spanish("En los últimos 7 días"),
    }
    assert first["linkId"] == "PAININ9"
    assert first["type"] == "choice"
    assert "code" not in first  # no item LOINC code is known
    assert first["_text"] == _spanish(definition.translated("es").items[0].text)
    option = first["answerOption"][0]
    assert option["valueCoding"] == {
        "code": "1",
        "display": "Not at all",
        "_display": _spanish("Nada"),
    }
    assert option["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 1},
        {"url": "http://hl7.org/fhir/StructureDefinition/itemWeight", "valueDecimal": 1},
    ]
    wording = data["extension"][0]
    assert wording["url"] == fhir.WORDING_EXTENSION
    assert {"url": "source", "valueCode": "summary"} in wording["extension"]


def _spanish(text: str) -> dict[str, Any]:
    """The FHIR translation extension of a primitive, giving its Spanish text."""
    return {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/translation",
                "extension": [
                    {"url": "lang", "valueCode": "es"},
                    {"url": "content", "valueString": text},
                ],
            }
        ]
    }


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_export_carries_the_spanish_summary_as_translation_extensions(
    registry: Registry, code: str
) -> None:
    definition = registry.get(code)
    spanish = definition.translated("es")
    data = fhir.to_questionnaire(definition)
    assert data["language"] == "en"
    assert data["_title"] == _spanish(spanish.title)
    questions = [item for item in data["item"] if item["type"] == "choice"]
    for entry, item in zip(questions, spanish.items, strict=True):
        assert entry["_text"] == _spanish(item.text)
        labels = [option["valueCoding"]["_display"] for option in entry["answerOption"]]
        assert labels == [_spanish(option.label) for option in item.options]
    # The Spanish variant is exported in its own language, with no translations.
    exported = fhir.to_questionnaire(spanish)
    Questionnaire.model_validate(exported)
    assert exported["language"] == "es"
    assert "_title" not in exported
    assert all("_text" not in item for item in exported["item"])


def test_reverse_coded_values_are_exported_as_stored(registry: Registry) -> None:
    data = fhir.to_questionnaire(registry.get("promis-sd-4a"))
    sleep109 = next(i for i in data["item"] if i["linkId"] == "Sleep109")
    weights = [o["extension"][0]["valueDecimal"] for o in sleep109["answerOption"]]
    assert weights == [5, 4, 3, 2, 1]


def test_item_loinc_is_exported_and_read(registry: Registry) -> None:
    nrs = registry.get("pain-nrs")
    coded = dataclasses.replace(nrs, items=(dataclasses.replace(nrs.items[0], loinc="12345-6"),))
    data = fhir.to_questionnaire(coded)
    assert data["item"][1]["code"] == [{"system": "http://loinc.org", "code": "12345-6"}]
    assert fhir.from_questionnaire(data).items[0].loinc == "12345-6"


def test_official_wording_fixture_replaces_wording_and_keeps_scoring(
    registry: Registry,
) -> None:
    data = fixture_json("promis_pi_4a_official_fhir.json")
    Questionnaire.model_validate(data)  # the fixture itself is valid FHIR
    original = registry.get("promis-pi-4a")
    imported = fhir.from_questionnaire(data)
    assert imported.code is None
    result = apply_import(
        registry, imported, source="promis_pi_4a_official_fhir.json", imported_at=TODAY
    )
    assert result.key == original.key
    assert result.item("PAININ9").text == "Official text for PAININ9 (test)"
    assert [o.label for o in result.item("PAININ34").options] == [
        f"Label {v} (test)" for v in range(1, 6)
    ]
    assert result.wording.source is WordingSource.OFFICIAL
    assert result.wording.reference == "promis_pi_4a_official_fhir.json"
    assert result.wording.imported_at == TODAY
    assert result.scoring == original.scoring  # table, calibration, status untouched
    assert result.thresholds == original.thresholds
    assert result.item_ids == original.item_ids
    assert result.recall_period == original.recall_period
    assert result.licence == original.licence
    assert not result.needs_official_wording
    result.check_sendable("production")
    # Re-exporting the official wording keeps it official and its source.
    again = apply_import(
        registry.with_definitions(result),
        fhir.from_questionnaire(fhir.to_questionnaire(result)),
        source="other.json",
        imported_at="2027-01-01",
    )
    assert again == result


def test_mismatches_are_all_listed_and_nothing_changes(registry: Registry) -> None:
    data = fixture_json("promis_pi_4a_official_fhir.json")
    group = data["item"][1]["item"]
    del group[3]  # PAININ34 missing
    group[0]["answerOption"][4]["valueCoding"]["extension"][0]["valueDecimal"] = 6
    extra = copy.deepcopy(group[1])
    extra["linkId"] = "PAININ99"
    group.append(extra)
    before = registry.get("promis-pi-4a")
    with pytest.raises(DefinitionImportError) as caught:
        apply_import(registry, fhir.from_questionnaire(data), source="x.json", imported_at=TODAY)
    problems = caught.value.problems
    assert "missing item PAININ34: in promis-pi-4a 1.0, not in the file" in problems
    assert "extra item 'PAININ99': in the file, not in promis-pi-4a 1.0" in problems
    assert (
        "item PAININ9: answer values [1, 2, 3, 4, 6] in the file, [1, 2, 3, 4, 5] in "
        "promis-pi-4a 1.0"
    ) in problems
    assert len(problems) == 3
    assert "nothing was changed" in str(caught.value)
    assert registry.get("promis-pi-4a") is before
    assert before.wording.source is WordingSource.SUMMARY


def test_answers_without_numeric_values_are_a_mismatch(registry: Registry) -> None:
    data = fixture_json("promis_pi_4a_official_fhir.json")
    for option in data["item"][1]["item"][2]["answerOption"]:
        del option["valueCoding"]["extension"]
    with pytest.raises(DefinitionImportError, match=r"item PAININ31: no whole-number value"):
        apply_import(registry, fhir.from_questionnaire(data), source="x.json", imported_at=TODAY)


@pytest.mark.parametrize(
    "answer",
    [
        {"valueInteger": 3},
        {"valueCoding": {"code": "3", "display": "Three"}},
        {
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/itemWeight", "valueDecimal": 3.0}
            ],
            "valueCoding": {"code": "LA-x", "display": "Three"},
        },
        {
            "valueCoding": {
                "code": "LA-y",
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
                        "valueDecimal": 3,
                    }
                ],
            }
        },
    ],
)
def test_answer_values_are_read_from_the_usual_places(answer: dict[str, Any]) -> None:
    data = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [{"linkId": "q1", "text": "Q", "type": "choice", "answerOption": [answer]}],
    }
    (item,) = fhir.from_questionnaire(data).items
    assert [o.value for o in item.options] == [3]


def test_non_integral_weight_is_a_problem() -> None:
    data = {
        "resourceType": "Questionnaire",
        "item": [
            {
                "linkId": "q1",
                "type": "choice",
                "answerOption": [
                    {
                        "extension": [{"url": fhir.ORDINAL_VALUE, "valueDecimal": 0.5}],
                        "valueCoding": {"code": "a", "display": "Half"},
                    }
                ],
            }
        ],
    }
    (item,) = fhir.from_questionnaire(data).items
    assert item.options == ()
    assert "'Half'" in item.problem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"resourceType": "Patient"}, "not a FHIR Questionnaire: resourceType is 'Patient'"),
        ({"resourceType": "Bundle", "entry": []}, "not a Bundle"),
        ([{"resourceType": "Questionnaire"}], "expected a JSON object"),
        ({"resourceType": "Questionnaire", "item": []}, "no questions"),
        ({"resourceType": "Questionnaire", "item": [{"type": "choice"}]}, "needs a linkId"),
    ],
)
def test_rejects_what_is_not_a_questionnaire(data: Any, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        fhir.from_questionnaire(data)


def test_free_text_items_and_value_sets_are_flagged() -> None:
    data = {
        "resourceType": "Questionnaire",
        "item": [
            {"linkId": "a", "type": "string", "text": "Name"},
            {"linkId": "b", "type": "choice", "answerValueSet": "http://example.org/vs"},
            {
                "linkId": "c",
                "type": "group",
                "item": [
                    {
                        "linkId": "d",
                        "type": "choice",
                        "answerOption": [{"valueInteger": 1}],
                        "item": [{"linkId": "e", "type": "text"}],
                    }
                ],
            },
        ],
    }
    items = fhir.from_questionnaire(data).items
    assert [i.id for i in items] == ["a", "b", "d", "e"]
    assert "has no answer options" in items[0].problem
    assert "value set" in items[1].problem
    assert items[2].problem == ""
