"""Importing new instruments, matching by LOINC, and refusing summary wording in production."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from proms.instruments import fhir
from proms.instruments.errors import DefinitionError, DefinitionImportError, NotSendableError
from proms.instruments.importer import apply_import, read_import_file, slugify
from proms.instruments.model import ScoringMethod, WordingSource
from proms.instruments.registry import Registry
from proms.scoring.types import Direction, Method, SummedForm, UnscoredForm
from tests.instruments.helpers import BUNDLED_CODES

TODAY = "2026-11-25"


def _questionnaire(**overrides: Any) -> dict[str, Any]:
    options = [{"valueCoding": {"code": str(v), "display": f"Level {v}"}} for v in range(4)]
    data: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "name": "ClinicFatigueCheck",
        "title": "Clinic fatigue check (test)",
        "version": "2.1",
        "status": "active",
        "publisher": "Test clinic",
        "item": [
            {
                "linkId": f"fatigue_{n}",
                "text": f"Made-up item {n}",
                "type": "choice",
                "answerOption": options,
            }
            for n in (1, 2, 3)
        ],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("method", "form_type", "scoring_method"),
    [
        ("sum", SummedForm, Method.SUM),
        ("mean", SummedForm, Method.MEAN),
        ("none", UnscoredForm, None),
        (None, UnscoredForm, None),
    ],
)
def test_unmatched_form_becomes_a_new_instrument(
    registry: Registry, method: str | None, form_type: type, scoring_method: Method | None
) -> None:
    imported = fhir.from_questionnaire(_questionnaire())
    result = apply_import(
        registry, imported, source="fatigue.json", imported_at=TODAY, new_method=method
    )
    assert (result.code, result.version) == ("clinicfatiguecheck", "2.1")
    assert result.title == "Clinic fatigue check (test)"
    assert result.item_ids == ("fatigue_1", "fatigue_2", "fatigue_3")
    assert result.wording.source is WordingSource.OFFICIAL
    assert result.wording.reference == "fatigue.json"
    assert result.owner == "Test clinic"
    assert result.thresholds == ()
    form = result.form()
    assert isinstance(form, form_type)
    if isinstance(form, SummedForm):
        assert form.method is scoring_method
        assert [s.key for s in form.scales] == ["total"]
    assert result.scoring.method is ScoringMethod(method or "none")
    # The new instrument exports and re-imports like a bundled one.
    extended = registry.with_definitions(result)
    again = apply_import(
        extended,
        fhir.from_questionnaire(fhir.to_questionnaire(result)),
        source="re.json",
        imported_at="2030-01-01",
    )
    assert again == result


def test_new_instrument_direction_and_slug(registry: Registry) -> None:
    imported = fhir.from_questionnaire(_questionnaire(name=None, title="Wellbeing: 3 items!"))
    result = apply_import(
        registry,
        imported,
        source="w.json",
        imported_at=TODAY,
        new_method="sum",
        new_direction=Direction.HIGHER_IS_BETTER,
    )
    assert result.code == "wellbeing-3-items"
    assert result.direction is Direction.HIGHER_IS_BETTER


def test_new_instrument_with_unreadable_items_is_refused(registry: Registry) -> None:
    data = _questionnaire()
    data["item"].append({"linkId": "comment", "type": "text", "text": "Anything else?"})
    with pytest.raises(DefinitionImportError) as caught:
        apply_import(registry, fhir.from_questionnaire(data), source="x", imported_at=TODAY)
    assert caught.value.problems == ("item 'comment': type 'text' has no answer options",)
    assert "matches no known instrument" in str(caught.value)


def test_new_instrument_is_validated_like_a_file(registry: Registry) -> None:
    data = _questionnaire()
    data["item"][0]["answerOption"].append({"valueCoding": {"code": "1", "display": "Again"}})
    with pytest.raises(DefinitionError, match=r"items\[0\]\.options\[4\]\.value: value 1 appears"):
        apply_import(registry, fhir.from_questionnaire(data), source="x", imported_at=TODAY)


def test_new_instrument_may_not_reuse_a_code_and_version(registry: Registry) -> None:
    data = _questionnaire(name="peg", version="1.0")
    with pytest.raises(DefinitionImportError, match=r"instrument peg version 1\.0 already exists"):
        apply_import(registry, fhir.from_questionnaire(data), source="x", imported_at=TODAY)


def test_unknown_new_method(registry: Registry) -> None:
    with pytest.raises(ValueError, match="new_method must be one of sum, mean, none"):
        apply_import(
            registry,
            fhir.from_questionnaire(_questionnaire()),
            source="x",
            imported_at=TODAY,
            new_method="median",
        )


def test_match_by_loinc(registry: Registry) -> None:
    nrs = registry.get("pain-nrs")
    coded = dataclasses.replace(nrs, items=(dataclasses.replace(nrs.items[0], loinc="12345-6"),))
    extended = registry.with_definitions(coded)
    data = {
        "resourceType": "Questionnaire",
        "item": [
            {
                "linkId": "/average-pain",
                "code": [{"system": "http://loinc.org", "code": "12345-6"}],
                "text": "Clinic wording (test)",
                "type": "choice",
                "answerOption": [{"valueInteger": v} for v in range(11)],
            }
        ],
    }
    result = apply_import(extended, fhir.from_questionnaire(data), source="q", imported_at=TODAY)
    assert result.key == nrs.key
    assert result.items[0].text == "Clinic wording (test)"
    assert result.items[0].id == "NRS1"
    assert result.items[0].options[0].label == "No pain"  # no display in the file: ours kept


def test_best_match_prefers_the_exact_item_set(registry: Registry) -> None:
    pi6 = fhir.to_questionnaire(registry.get("promis-pi-6a"))
    del pi6["identifier"]
    result = apply_import(registry, fhir.from_questionnaire(pi6), source="q", imported_at=TODAY)
    assert result.code == "promis-pi-6a"


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_check_sendable(registry: Registry, code: str) -> None:
    definition = registry.get(code)
    definition.check_sendable("development")
    definition.check_sendable("test")
    if code in ("pain-nrs", "infusion-side-effects"):
        assert definition.is_own
        assert not definition.needs_official_wording
        definition.check_sendable("production")
    else:
        assert definition.needs_official_wording
        with pytest.raises(NotSendableError) as caught:
            definition.check_sendable("production")
        message = str(caught.value)
        assert code in message
        assert "`proms instruments import FILE`" in message
        assert "summary" in message


def test_read_import_file_dispatches_on_content(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text(json.dumps(_questionnaire()), encoding="utf-8")
    assert read_import_file(path).file_format == "fhir"


def test_slugify() -> None:
    assert slugify("PROMIS Pain 4a") == "promis-pain-4a"
    assert slugify("***") == "imported-instrument"


def test_an_import_that_reverses_an_items_coding_is_refused() -> None:
    """Same values, other order: the labels would land on other values and flip the score."""
    import dataclasses

    from proms.instruments.errors import DefinitionImportError
    from proms.instruments.fhir import from_questionnaire, to_questionnaire
    from proms.instruments.importer import apply_import
    from proms.instruments.registry import bundled_registry

    registry = bundled_registry()
    imported = from_questionnaire(to_questionnaire(registry.get("promis-sd-4a")))
    items = list(imported.items)
    first = items[0]
    assert first.id == "Sleep109"
    items[0] = dataclasses.replace(first, options=tuple(reversed(first.options)))
    imported = dataclasses.replace(imported, items=tuple(items), wording=None)
    with pytest.raises(DefinitionImportError, match="reverse coding"):
        apply_import(registry, imported, source="x.json", imported_at="2026-11-25")
