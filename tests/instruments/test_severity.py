"""Severity bands and rules as definition data: the published PROMIS cut points with their
source, a cut point belonging to the worse band, and the loader refusing bands or rules that
cannot be right."""

from __future__ import annotations

import copy
import json

import pytest

from proms.instruments.errors import DefinitionError
from proms.instruments.loader import DEFINITIONS_DIR, parse_definition
from proms.instruments.registry import bundled_registry

SYMPTOMS = ("promis-pi-4a", "promis-pi-6a", "promis-pi-8a", "promis-sd-4a", "promis-sd-8b")


@pytest.mark.parametrize("code", [*SYMPTOMS, "promis-anx-4a", "promis-pf-4a"])
def test_promis_profile_domains_carry_the_healthmeasures_bands(code: str) -> None:
    definition = bundled_registry().get(code)
    assert [b.label for b in definition.severity_bands] == [
        "within normal limits",
        "mild",
        "moderate",
        "severe",
    ]
    assert "HealthMeasures" in definition.severity_source
    assert "promis-score-cut-points" in definition.severity_source


@pytest.mark.parametrize(
    ("code", "value", "band"),
    [
        ("promis-pi-4a", 54.9, "within normal limits"),
        ("promis-pi-4a", 55.0, "mild"),  # a cut point belongs to the worse band
        ("promis-pi-4a", 69.9, "moderate"),
        ("promis-pi-4a", 70.0, "severe"),
        ("promis-pf-4a", 45.1, "within normal limits"),
        ("promis-pf-4a", 45.0, "mild"),
        ("promis-pf-4a", 30.1, "moderate"),
        ("promis-pf-4a", 30.0, "severe"),
        ("promis-pf-4a", 22.5, "severe"),
    ],
)
def test_a_score_falls_in_one_band(code: str, value: float, band: str) -> None:
    found = bundled_registry().get(code).severity_band(value)
    assert found is not None
    assert found.label == band


def test_instruments_without_published_bands_have_none() -> None:
    for code in ("peg", "pass-20", "pain-nrs", "promis-pain-intensity-3a"):
        definition = bundled_registry().get(code)
        assert definition.severity_bands == ()
        assert definition.severity_band(50.0) is None


def test_severity_rules_have_keys_tiers_and_sources() -> None:
    registry = bundled_registry()
    rules = {
        rule.key(definition.code): (rule.tier, rule.evidence)
        for definition in registry
        for rule in definition.severity_rules
    }
    assert rules["severity:promis-pi-4a:total>=70"] == ("urgent", "PUBLISHED")
    assert rules["severity:peg:total>=8"] == ("urgent", "PUBLISHED_INDIRECT")
    assert rules["severity:promis-pf-4a:total<=30"] == ("next_visit", "PUBLISHED")
    peg = registry.get("peg")
    assert [r.words() for r in peg.severity_rules] == ["points \u2265 8"]
    assert peg.severity_hits("total", None, 8.0) == peg.severity_rules
    assert peg.severity_hits("total", None, 7.9) == ()


def _data(code: str) -> dict:  # type: ignore[type-arg]
    return json.loads((DEFINITIONS_DIR / f"{code}.json").read_text(encoding="utf-8"))


def test_the_loader_refuses_a_gap_between_bands_and_a_t_score_rule_on_a_summed_score() -> None:
    gap = copy.deepcopy(_data("promis-pi-4a"))
    gap["severity_bands"]["bands"][2]["lower"] = 61.0
    with pytest.raises(DefinitionError, match=r"severity_bands\.bands\[2\]\.lower"):
        parse_definition(gap, filename="promis-pi-4a.json")
    summed = copy.deepcopy(_data("peg"))
    summed["severity_rules"][0]["unit"] = "T"
    with pytest.raises(DefinitionError, match="only a PROMIS table gives T-scores"):
        parse_definition(summed, filename="peg.json")
