"""The bundled definition files: valid, lossless, faithful to the reference, built into forms."""

from __future__ import annotations

import json

import pytest

from proms.instruments.loader import DEFINITIONS_DIR, dumps_definition, load_definition
from proms.instruments.model import ScoringMethod, WordingSource
from proms.instruments.registry import Registry, bundled_registry
from proms.scoring import irt
from proms.scoring.change import Threshold
from proms.scoring.types import Direction, Method, PromisForm, SummedForm, UnscoredForm
from tests.instruments.helpers import BUNDLED_CODES, PROMIS_CODES, fixture_json

REFERENCE = {k: v for k, v in fixture_json("promis_reference_tables.json").items() if k != "_about"}


def test_the_bundled_files_are_exactly_the_public_codes() -> None:
    assert tuple(sorted(p.stem for p in DEFINITIONS_DIR.glob("*.json"))) == BUNDLED_CODES


def test_startup_loads_and_validates_every_bundled_file(registry: Registry) -> None:
    # bundled_registry() is what the app runs at startup; it validates every file on load.
    assert registry.codes == BUNDLED_CODES
    # Cached: validated once per process. Not compared with the session's `registry`, which a
    # test that clears the cache (tests/test_app.py) may have made before this one runs.
    assert bundled_registry() is bundled_registry()


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_file_is_canonical_and_lossless(code: str) -> None:
    path = DEFINITIONS_DIR / f"{code}.json"
    definition = load_definition(path)
    text = path.read_text("utf-8")
    assert definition.to_json() == json.loads(text)
    assert dumps_definition(definition) == text


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_wording_is_our_short_summary(registry: Registry, code: str) -> None:
    # A test cannot prove the text is not official wording; it can hold every bundled item to a
    # short summary marked as such (official PROMIS/PASS-20 items are never in the repository).
    definition = registry.get(code)
    assert definition.wording.source is WordingSource.SUMMARY
    assert definition.wording.imported_at is None
    for item in definition.items:
        assert 0 < len(item.text) <= 80, item.id
        for option in item.options:
            assert len(option.label) <= 40, (item.id, option.value)


@pytest.mark.parametrize(
    ("code", "version", "domain", "direction", "n_items"),
    [
        ("promis-pi-4a", "1.0", "pain_interference", "higher_is_worse", 4),
        ("promis-pi-6a", "1.0", "pain_interference", "higher_is_worse", 6),
        ("promis-pi-8a", "1.0", "pain_interference", "higher_is_worse", 8),
        ("promis-pain-intensity-3a", "1.0", "pain_intensity", "higher_is_worse", 3),
        ("promis-pf-4a", "2.0", "physical_function", "higher_is_better", 4),
        ("promis-sd-4a", "1.0", "sleep_disturbance", "higher_is_worse", 4),
        ("promis-sd-8b", "1.0", "sleep_disturbance", "higher_is_worse", 8),
        ("promis-anx-4a", "1.0", "anxiety", "higher_is_worse", 4),
        ("pass-20", "1.0", "pain_anxiety", "higher_is_worse", 20),
        ("peg", "1.0", "pain", "higher_is_worse", 3),
        ("pain-nrs", "1.0", "pain", "higher_is_worse", 1),
        ("infusion-side-effects", "1.0", "side_effects", "higher_is_worse", 6),
    ],
)
def test_identity(
    registry: Registry, code: str, version: str, domain: str, direction: str, n_items: int
) -> None:
    definition = registry.get(code)
    assert (definition.version, definition.domain) == (version, domain)
    assert definition.direction is Direction(direction)
    assert len(definition.items) == n_items
    assert definition.language == "en"


@pytest.mark.parametrize("code", PROMIS_CODES)
def test_promis_table_equals_the_reference_row_by_row(registry: Registry, code: str) -> None:
    reference = REFERENCE[code]
    definition = registry.get(code)
    rows = [[r.raw, r.t_score, r.standard_error] for r in definition.scoring.table]
    assert rows == reference["table"]
    # The evidence status is carried: short code plus the reference's full wording.
    assert definition.scoring.table_status_detail == reference["table_status"]
    assert reference["table_status"].startswith(str(definition.table_status))
    assert definition.scoring.table_sources


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("promis-pi-4a", "CONFIRMED"),
        ("promis-pi-6a", "UNCONFIRMED_COMPUTED"),
        ("promis-pi-8a", "T_CONFIRMED_SE_COMPUTED"),
        ("promis-pain-intensity-3a", "UNCONFIRMED_COMPUTED"),
        ("promis-pf-4a", "UNCONFIRMED_SINGLE_TRANSCRIPTION"),
        ("promis-sd-4a", "CONFIRMED"),
        ("promis-sd-8b", "T_CONFIRMED_SE_COMPUTED"),
        ("promis-anx-4a", "CONFIRMED"),
    ],
)
def test_table_status(registry: Registry, code: str, status: str) -> None:
    assert registry.get(code).table_status == status


def test_promis_items_follow_the_reference_order_and_codes(registry: Registry) -> None:
    pi8 = registry.get("promis-pi-8a")
    assert pi8.item_ids[:4] == registry.get("promis-pi-4a").item_ids
    assert pi8.item_ids == (
        "PAININ9",
        "PAININ22",
        "PAININ31",
        "PAININ34",
        "PAININ12",
        "PAININ36",
        "PAININ3",
        "PAININ13",
    )
    sd = registry.get("promis-sd-4a")
    assert [i.reverse for i in sd.items] == [True, True, False, False]
    assert sd.item("Sleep109").values == (5, 4, 3, 2, 1)
    pf = registry.get("promis-pf-4a")
    assert pf.item("PFA11").options[0].label == "Without any difficulty"
    assert (pi8.loinc.panel, pi8.loinc.score) == ("75870-6", "77865-4")
    assert registry.get("promis-pi-4a").loinc.panel is None  # UNCONFIRMED in the reference
    assert registry.get("promis-pain-intensity-3a").loinc.score is None
    assert all(item.loinc is None for d in registry for item in d.items)


@pytest.mark.parametrize("code", [c for c in PROMIS_CODES if c != "promis-pf-4a"])
def test_promis_form_has_table_and_calibration(registry: Registry, code: str) -> None:
    definition = registry.get(code)
    form = definition.form()
    assert isinstance(form, PromisForm)
    assert form.item_ids == definition.item_ids
    assert form.calibration is not None
    assert set(form.calibration) == set(form.item_ids)
    assert len(form.table) == len(definition.scoring.table)
    # The calibrations reproduce the shipped table (Lord-Wingersky EAP, the README's method)
    # row by row. The reference README allows only the extreme rows to differ, by 0.1.
    computed = irt.lord_wingersky_table([form.calibration[i] for i in form.item_ids])
    assert computed.keys() == form.table.keys()
    extremes = {min(form.table), max(form.table)}
    beyond = []
    for raw, shipped in sorted(form.table.items()):
        got = computed[raw]
        close = all(abs(g - s) <= 0.1 + 1e-9 for g, s in zip(got, shipped, strict=True))
        if got != shipped and (raw not in extremes or not close):
            beyond.append(f"raw {raw}: shipped (T, SE) {shipped}, computed {got}")
    assert not beyond, f"{code}: rows differ beyond the README's tolerance: {beyond}"


def test_pf_4a_v2_has_no_calibration(registry: Registry) -> None:
    form = registry.get("promis-pf-4a").form()
    assert isinstance(form, PromisForm)
    assert form.version == "2.0"
    assert form.calibration is None
    assert form.no_calibration_reason == (
        "no published v2.0 item calibrations are available here; incomplete forms cannot be "
        "pattern-scored"
    )
    assert form.item_values["PFA11"] == frozenset({1, 2, 3, 4, 5})
    assert form.table[4] == (22.5, 4.0)


def test_pass_20(registry: Registry) -> None:
    definition = registry.get("pass-20")
    form = definition.form()
    assert isinstance(form, SummedForm)
    assert form.method is Method.SUM
    assert form.item_ids == tuple(f"PASS{i}" for i in range(1, 21))
    scales = {scale.key: scale.item_ids for scale in form.scales}
    assert list(scales) == ["total", "cognitive", "escape_avoidance", "fear", "physiological"]
    assert scales["cognitive"] == ("PASS1", "PASS2", "PASS3", "PASS4", "PASS5")
    assert scales["physiological"] == tuple(f"PASS{i}" for i in range(16, 21))
    labels = [o.label for o in definition.item("PASS7").options]
    assert labels == ["Never", "Rarely", "Sometimes", "Often", "Almost always", "Always"]
    assert definition.item("PASS7").values == (0, 1, 2, 3, 4, 5)
    assert not any(item.reverse for item in definition.items)
    norms = definition.scoring.norms
    assert norms is not None
    assert {(n.scale, n.mean, n.sd) for n in norms.values} == {
        ("total", 38.62, 20.38),
        ("cognitive", 12.27, 6.73),
        ("escape_avoidance", 12.84, 6.11),
        ("fear", 7.37, 6.38),
        ("physiological", 6.15, 5.69),
    }


def test_peg_and_pain_nrs(registry: Registry) -> None:
    peg = registry.get("peg").form()
    assert isinstance(peg, SummedForm)
    assert peg.method is Method.MEAN
    assert peg.item_ids == ("PEG1", "PEG2", "PEG3")
    assert peg.item_values["PEG2"] == frozenset(range(11))
    nrs = registry.get("pain-nrs")
    form = nrs.form()
    assert isinstance(form, SummedForm)
    assert form.method is Method.SUM
    assert form.item_ids == ("NRS1",)
    assert nrs.recall_period == "In the past 7 days"
    assert nrs.owner == "proms"


def test_infusion_side_effects(registry: Registry) -> None:
    definition = registry.get("infusion-side-effects")
    form = definition.form()
    assert isinstance(form, UnscoredForm)
    assert definition.scoring.method is ScoringMethod.NONE
    assert form.item_ids == (
        "hallucinations",
        "dissociation",
        "nausea_vomiting",
        "dizziness",
        "headache",
        "other",
    )
    assert [o.label for o in definition.items[0].options] == ["None", "Mild", "Moderate", "Severe"]
    assert definition.thresholds == ()
    assert definition.alert_items({"hallucinations": 2, "headache": 1}) == ()
    assert definition.alert_items({"other": 3, "hallucinations": 3, "dizziness": None}) == (
        "hallucinations",
        "other",
    )
    assert definition.alert_items({"dizziness": True}) == ()  # a bool is not an answer value
    assert registry.get("promis-pi-4a").alert_items({"PAININ9": 5}) == ()


@pytest.mark.parametrize(
    ("code", "value", "unit", "evidence", "substantial"),
    [
        ("promis-pi-4a", 3.0, "T", "PUBLISHED", None),
        ("promis-pi-6a", 3.0, "T", "PUBLISHED", None),
        ("promis-pi-8a", 3.0, "T", "PUBLISHED", None),
        ("promis-pain-intensity-3a", 3.0, "T", "GENERIC", None),
        ("promis-pf-4a", 2.0, "T", "PUBLISHED_INDIRECT", None),
        ("promis-sd-4a", 3.0, "T", "UNCONFIRMED", None),
        ("promis-sd-8b", 3.0, "T", "UNCONFIRMED", None),
        ("promis-anx-4a", 3.0, "T", "PUBLISHED_INDIRECT", None),
        ("pass-20", 10.0, "points", "UNCONFIRMED", None),
        ("peg", 30.0, "percent", "UNCONFIRMED", 50.0),
        ("pain-nrs", 30.0, "percent", "PUBLISHED", 50.0),
    ],
)
def test_primary_threshold(
    registry: Registry,
    code: str,
    value: float,
    unit: str,
    evidence: str,
    substantial: float | None,
) -> None:
    definition = registry.get(code)
    primaries = [t for t in definition.thresholds if t.primary]
    assert len(primaries) == 1
    (primary,) = primaries
    assert (primary.value, primary.unit, primary.evidence) == (value, unit, evidence)
    assert primary.substantial == substantial
    assert primary.source
    threshold = definition.primary_threshold
    assert isinstance(threshold, Threshold)
    assert threshold.value == value
    assert threshold.evidence.startswith(evidence)
    # Every alternative is a valid scoring threshold too.
    for alternative in definition.thresholds:
        assert alternative.to_threshold().unit == alternative.unit


def test_promis_alternatives_include_individual_bookmarks(registry: Registry) -> None:
    for code in PROMIS_CODES:
        kinds = {(t.kind, t.value) for t in registry.get(code).thresholds if not t.primary}
        assert ("individual", 5.0) in kinds, code


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_licence_notice(registry: Registry, code: str) -> None:
    definition = registry.get(code)
    notice = definition.licence.notice
    if code.startswith("promis-"):
        assert "PROMIS Health Organization" in notice
        assert "electronic administration" in notice
        assert "proms instruments import FILE" in notice
    elif definition.is_own:
        assert definition.licence.holder == "proms"
    else:
        assert "not confirmed" in notice
        assert "proms instruments import FILE" in notice
