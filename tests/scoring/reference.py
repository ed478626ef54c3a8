"""The reference facts (tests/scoring/fixtures/reference), as PROMIS forms for tests.

The files are copies of the project's reference data, kept in the repository with their
sources (see the folder's README); a missing file fails the tests that need it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from proms.scoring.irt import lord_wingersky_table
from proms.scoring.types import ItemCalibration, PromisForm

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference"
MISSING_REASON = f"reference data not found in {REFERENCE_DIR}"

# The calibration that computes each reference table, named explicitly: matching by item ID alone
# would give the v2.0 physical function form the v1.2 parameters, which do not reproduce its
# table (they are a different calibration of the same items).
FORM_BANKS: dict[str, str | None] = {
    "PROMIS_SF_v1.0_PainInterference_4a": "PROMIS Bank v1.1 - Pain Interference",
    "PROMIS_SF_v1.0_PainInterference_6a": "PROMIS Bank v1.1 - Pain Interference",
    "PROMIS_SF_v1.0_PainInterference_8a": "PROMIS Bank v1.1 - Pain Interference",
    "PROMIS_Scale_v1.0_PainIntensity_3a": (
        "PROMIS Scale v1.0 - Pain Intensity 3a (items of the scale; no item bank in CHOIR)"
    ),
    "PROMIS_SF_v2.0_PhysicalFunction_4a": None,
    "PROMIS_SF_v1.0_PhysicalFunction_4a_RETIRED": "PROMIS Bank v1.2 - Physical Function",
    "PROMIS_SF_v1.2_PhysicalFunction_6b_RETIRED": "PROMIS Bank v1.2 - Physical Function",
    "PROMIS_SF_v1.2_PhysicalFunction_8b_RETIRED": "PROMIS Bank v1.2 - Physical Function",
    "PROMIS_SF_v1.0_SleepDisturbance_4a": "PROMIS Bank v1.0 - Sleep Disturbance",
    "PROMIS_SF_v1.0_SleepDisturbance_6a": "PROMIS Bank v1.0 - Sleep Disturbance",
    "PROMIS_SF_v1.0_SleepDisturbance_8a": "PROMIS Bank v1.0 - Sleep Disturbance",
    "PROMIS_SF_v1.0_SleepDisturbance_8b": "PROMIS Bank v1.0 - Sleep Disturbance",
    "PROMIS_SF_v1.0_Anxiety_4a": "PROMIS Bank v1.0 - Anxiety",
}
NO_CALIBRATION_REASON = {
    "PROMIS_SF_v2.0_PhysicalFunction_4a": (
        "no PROMIS physical function v2.0 item calibrations are available (the v1.2 parameters "
        "are a different calibration), so only complete forms can be scored"
    ),
}


def available() -> bool:
    return REFERENCE_DIR.is_dir()


def require() -> Path:
    if not available():
        pytest.fail(MISSING_REASON)
    return REFERENCE_DIR


@functools.cache
def _load(name: str) -> Any:
    return json.loads((require() / name).read_text(encoding="utf-8"))


def short_forms() -> dict[str, Any]:
    """promis_short_forms.json without its `_about` block: reference key -> form."""
    return {k: v for k, v in _load("promis_short_forms.json").items() if not k.startswith("_")}


def item_params() -> dict[str, Any]:
    return dict(_load("promis_item_params.json"))


def irt_examples() -> list[dict[str, Any]]:
    return list(_load("irt_examples.json")["examples"])


def table_rows(key: str) -> list[tuple[int, float, float]]:
    return [(int(raw), float(t), float(se)) for raw, t, se in short_forms()[key]["table"]]


def _calibration(params: dict[str, Any]) -> ItemCalibration:
    return ItemCalibration(a=float(params["a"]), thresholds=tuple(float(b) for b in params["b"]))


def bank_calibration(key: str) -> dict[str, ItemCalibration] | None:
    """The calibration of each item of a reference form, from its bank by item ID."""
    bank = FORM_BANKS[key]
    if bank is None:
        return None
    items = item_params()["banks"][bank]["items"]
    return {item["id"]: _calibration(items[item["id"]]) for item in short_forms()[key]["items"]}


@functools.cache
def promis_form(key: str) -> PromisForm:
    """A reference short form with its table; calibrated from its bank when one is known."""
    data = short_forms()[key]
    return PromisForm(
        code=data["code"] or key,
        version=key.split("_")[2],
        item_ids=tuple(item["id"] for item in data["items"]),
        item_values={
            item["id"]: frozenset(int(o["value"]) for o in item["options"])
            for item in data["items"]
        },
        table={raw: (t, se) for raw, t, se in table_rows(key)},
        calibration=bank_calibration(key),
        no_calibration_reason=NO_CALIBRATION_REASON.get(key, ""),
    )


def example_form(example: dict[str, Any]) -> PromisForm:
    """The form of an irt_examples.json example: its reference form when there is one.

    Otherwise (Pain Behavior 7a has no reference table) the form is built from the CHOIR short
    form with a computed table; the examples for such forms are incomplete, so that table is not
    what they test.
    """
    params = item_params()["short_forms"][example["form"]]
    for key in params.get("promis_tables_ids") or ():
        if FORM_BANKS.get(key) == example["bank"]:
            return promis_form(key)
    assert params["bank"] == example["bank"], example["form"]
    item_ids = tuple(params.get("form_order_from_promis_tables") or params["items"])
    calibration = {i: _calibration(params["item_params"][i]) for i in item_ids}
    return PromisForm(
        code=example["form"],
        version=params["calibration_version"],
        item_ids=item_ids,
        item_values={i: frozenset(params["item_params"][i]["values"]) for i in item_ids},
        table=lord_wingersky_table([calibration[i] for i in item_ids]),
        calibration=calibration,
    )


def pattern_with_sum(form: PromisForm, raw: int, *, from_end: bool = False) -> dict[str, int]:
    """A complete response pattern with the given sum: lowest values, then raised item by item."""
    order = list(reversed(form.item_ids)) if from_end else list(form.item_ids)
    answers = {item_id: min(form.item_values[item_id]) for item_id in order}
    rest = raw - sum(answers.values())
    for item_id in order:
        step = min(rest, max(form.item_values[item_id]) - answers[item_id])
        answers[item_id] += step
        rest -= step
    assert rest == 0, f"{form.code}: no pattern sums to {raw}"
    return answers


def parametrize_keys(
    keys: Callable[[], Sequence[str]], *, skip: dict[str, str] | None = None
) -> list[Any]:
    """pytest params, one per reference form key (id = key).

    `skip` maps keys to the reason they cannot be tested; they stay visible as skipped tests.
    """
    skip = skip or {}
    return [
        pytest.param(key, marks=[pytest.mark.skip(reason=skip[key])] if key in skip else [], id=key)
        for key in keys()
    ]


def all_keys() -> list[str]:
    return list(short_forms())


def calibrated_keys() -> list[str]:
    return [key for key in short_forms() if FORM_BANKS.get(key)]
