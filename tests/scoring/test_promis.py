"""PROMIS short-form scoring: table for complete forms, pattern EAP for incomplete ones."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from proms.scoring import irt, score
from proms.scoring.promis import score_promis, validate_answers
from proms.scoring.types import ItemCalibration, Method, PromisForm, ScoringError
from tests.scoring import reference

ITEM_IDS = ("A1", "A2", "A3", "A4")
CALIBRATION = {
    "A1": ItemCalibration(a=3.0, thresholds=(-0.5, 0.4, 1.2, 2.0)),
    "A2": ItemCalibration(a=2.2, thresholds=(-0.8, 0.1, 0.9, 1.7)),
    "A3": ItemCalibration(a=4.1, thresholds=(-0.2, 0.6, 1.3, 1.9)),
    "A4": ItemCalibration(a=1.7, thresholds=(-1.0, 0.0, 1.0, 2.2)),
}


def make_form(**changes: Any) -> PromisForm:
    """A 4-item, 5-category form with a computed table (no reference data needed)."""
    form = PromisForm(
        code="test-4a",
        version="v1.0",
        item_ids=ITEM_IDS,
        item_values={i: frozenset(range(1, 6)) for i in ITEM_IDS},
        table=irt.lord_wingersky_table([CALIBRATION[i] for i in ITEM_IDS]),
        calibration=CALIBRATION,
    )
    return dataclasses.replace(form, **changes)


# -- reference examples ------------------------------------------------------------------------


def _examples() -> list[Any]:
    return [
        pytest.param(example, id=f"{example['form']} ({example['note']})")
        for example in reference.irt_examples()
    ]


@pytest.mark.parametrize("example", _examples())
def test_pattern_eap_matches_reference_example(example: dict[str, Any]) -> None:
    form = reference.example_form(example)
    assert form.calibration is not None
    expected = example["pattern_EAP"]
    pattern = [example["responses"].get(i) for i in form.item_ids]
    assert set(example["responses"]) == set(form.item_ids)

    theta, sd = irt.eap([form.calibration[i] for i in form.item_ids], pattern)

    assert theta == pytest.approx(expected["theta"], abs=1e-3)
    assert sd == pytest.approx(expected["posterior_sd"], abs=1e-3)
    assert irt.round_half_up(50 + 10 * theta) == expected["T"]
    assert irt.round_half_up(10 * sd) == expected["SE"]


@pytest.mark.parametrize("example", _examples())
def test_score_promis_on_reference_example(example: dict[str, Any]) -> None:
    form = reference.example_form(example)
    result = score_promis(form, example["responses"])

    assert result.scale == "total"
    assert result.n_items == len(form.item_ids)
    assert result.n_answered == example["pattern_EAP"]["n_answered"]
    if example["missing"]:
        assert result.method is Method.PATTERN
        assert result.raw_score is None  # never prorated
        assert (result.t_score, result.standard_error) == (
            example["pattern_EAP"]["T"],
            example["pattern_EAP"]["SE"],
        )
    else:
        table = example["for_comparison_summed_score_table"]
        assert result.method is Method.TABLE
        assert (result.raw_score, result.t_score, result.standard_error) == (
            table["raw"],
            table["T"],
            table["SE"],
        )


def test_reverse_coded_sleep_example_uses_the_stored_value() -> None:
    """Sleep109's fourth displayed option is stored as 2; scoring uses 2 without re-reversing."""
    reference.require()
    (example,) = [e for e in reference.irt_examples() if "reverse_coded_items" in e]
    form = reference.promis_form("PROMIS_SF_v1.0_SleepDisturbance_4a")
    options = {
        item["id"]: [o["value"] for o in item["options"]]
        for item in reference.short_forms()["PROMIS_SF_v1.0_SleepDisturbance_4a"]["items"]
    }
    answers: dict[str, int | None] = {}
    for item_id in form.item_ids:
        reverse = example["reverse_coded_items"].get(item_id)
        if reverse is None:
            answers[item_id] = example["responses"][item_id]
            continue
        assert options[item_id] == reverse["values_in_display_order"] == [5, 4, 3, 2, 1]
        position = reverse["answer_display_position_1based"]
        answers[item_id] = None if position is None else options[item_id][position - 1]
    assert answers == example["responses"]
    assert answers["Sleep109"] == 2

    result = score_promis(form, answers)

    assert result.method is Method.PATTERN
    assert (result.t_score, result.standard_error) == (44.5, 3.7)
    # Re-reversing (6 - value) would make it a different, wrong score.
    wrong = score_promis(form, {**answers, "Sleep109": 6 - 2})
    assert wrong.t_score != result.t_score


# -- complete forms: every row of every reference table -----------------------------------------


def _table_rows() -> list[Any]:
    return [
        pytest.param(key, raw, id=f"{key}-raw{raw}")
        for key in reference.all_keys()
        for raw, _, _ in reference.table_rows(key)
    ]


@pytest.mark.parametrize(("key", "raw"), _table_rows())
def test_complete_form_scores_from_its_table(key: str, raw: int) -> None:
    form = reference.promis_form(key)
    expected = form.table[raw]
    for from_end in (False, True):
        answers = reference.pattern_with_sum(form, raw, from_end=from_end)
        result = score_promis(form, answers)
        assert result.method is Method.TABLE
        assert result.raw_score == raw
        assert (result.t_score, result.standard_error) == expected
        assert result.n_answered == result.n_items == len(form.item_ids)
        assert result.error == ""


def test_pf_v2_has_no_calibration_so_incomplete_is_not_scored() -> None:
    reference.require()
    form = reference.promis_form("PROMIS_SF_v2.0_PhysicalFunction_4a")
    assert form.calibration is None
    answers: dict[str, int | None] = dict(reference.pattern_with_sum(form, 12))
    assert score_promis(form, answers).method is Method.TABLE
    answers[form.item_ids[0]] = None
    result = score_promis(form, answers)
    assert result.method is Method.NONE
    assert form.no_calibration_reason in result.error


# -- rules, on a form built here ----------------------------------------------------------------


def test_complete_synthetic_form_uses_table() -> None:
    form = make_form()
    result = score_promis(form, {"A1": 2, "A2": 3, "A3": 4, "A4": 3})
    assert result.method is Method.TABLE
    assert result.raw_score == 12
    assert (result.t_score, result.standard_error) == form.table[12]


def test_incomplete_form_is_pattern_scored_without_a_raw_score() -> None:
    form = make_form()
    result = score_promis(form, {"A1": 2, "A2": None, "A3": 4})  # A4 missing key = unanswered
    theta, sd = irt.eap([CALIBRATION[i] for i in ITEM_IDS], [2, None, 4, None])
    assert result.method is Method.PATTERN
    assert result.raw_score is None
    assert result.n_answered == 2
    assert result.n_items == 4
    assert result.t_score == irt.round_half_up(50 + 10 * theta)
    assert result.standard_error == irt.round_half_up(10 * sd)


def test_missing_key_and_none_mean_the_same() -> None:
    form = make_form()
    assert score_promis(form, {"A1": 5, "A3": 4, "A4": 1}) == score_promis(
        form, {"A1": 5, "A2": None, "A3": 4, "A4": 1}
    )


@pytest.mark.parametrize(
    ("answers", "n"),
    [({"A1": 3}, 1), ({}, 0), ({"A1": None, "A2": None, "A3": None, "A4": None}, 0)],
)
def test_too_few_answers_give_no_score(answers: dict[str, int | None], n: int) -> None:
    result = score_promis(make_form(), answers)
    assert result.method is Method.NONE
    assert result.n_answered == n
    assert result.t_score is None
    assert result.standard_error is None
    assert result.raw_score is None
    assert result.error == f"only {n} of 4 items answered; at least 2 are needed for a score"


def test_min_answered_is_half_rounded_up() -> None:
    assert make_form().min_answered == 2
    five = make_form(item_ids=(*ITEM_IDS, "A5"))
    assert five.min_answered == 3


@pytest.mark.parametrize(
    ("answers", "fragment"),
    [
        ({"A1": 6}, "item 'A1' cannot take value 6"),
        ({"A1": 0}, "item 'A1' cannot take value 0"),
        ({"A2": 2.5}, "item 'A2' cannot take value 2.5"),
        ({"A3": True}, "item 'A3' cannot take value True"),
        ({"A4": math.nan}, "item 'A4' cannot take value nan"),
        ({"A4": "3"}, "item 'A4' cannot take value '3'"),
        ({"B9": 3}, "unknown item 'B9'"),
    ],
)
def test_invalid_answers_raise(answers: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ScoringError) as excinfo:
        score_promis(make_form(), {"A1": 1, "A2": 1, "A3": 1, "A4": 1, **answers})
    assert fragment in str(excinfo.value)
    assert "test-4a" in str(excinfo.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ScoringError) as excinfo:
        validate_answers(make_form(), {"A1": 9, "X": 1, "Y": None})
    message = str(excinfo.value)
    for fragment in ("unknown item 'X'", "unknown item 'Y'", "item 'A1' cannot take value 9"):
        assert fragment in message


def test_raw_sum_absent_from_table_is_an_error() -> None:
    form = make_form()
    table = dict(form.table)
    del table[12]
    with pytest.raises(ScoringError, match=r"raw score 12 is not in the scoring table"):
        score_promis(dataclasses.replace(form, table=table), {"A1": 3, "A2": 3, "A3": 3, "A4": 3})


def test_form_without_calibration() -> None:
    form = make_form(calibration=None, no_calibration_reason="no v2.0 calibrations are available")
    complete = score_promis(form, {"A1": 3, "A2": 3, "A3": 3, "A4": 3})
    assert complete.method is Method.TABLE
    assert (complete.t_score, complete.standard_error) == form.table[12]

    for answers in ({"A1": 3, "A2": 3, "A3": 3}, {"A1": 3}):
        result = score_promis(form, answers)
        assert result.method is Method.NONE
        assert result.t_score is None
        assert "no v2.0 calibrations are available" in result.error
        assert f"only {result.n_answered} of 4 items answered" in result.error


def test_form_without_calibration_or_reason_still_says_why() -> None:
    result = score_promis(make_form(calibration=None), {"A1": 3, "A2": 3, "A3": 3})
    assert result.method is Method.NONE
    assert "no item calibrations are available" in result.error


def test_calibration_missing_an_item_is_an_error() -> None:
    partial = {i: c for i, c in CALIBRATION.items() if i != "A4"}
    with pytest.raises(ScoringError, match="no calibration for item"):
        score_promis(make_form(calibration=partial), {"A1": 3, "A2": 3, "A3": 3})


def test_float_answers_equal_to_allowed_values_are_accepted() -> None:
    form = make_form()
    as_float = score_promis(form, {"A1": 2.0, "A2": 3.0, "A3": 4.0, "A4": 3.0})
    assert as_float == score_promis(form, {"A1": 2, "A2": 3, "A3": 4, "A4": 3})


def test_score_dispatches_promis_forms() -> None:
    form = make_form()
    answers = {"A1": 2, "A2": 3, "A3": None, "A4": 3}
    assert score(form, answers) == (score_promis(form, answers),)
