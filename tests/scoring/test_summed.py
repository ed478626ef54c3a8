"""Summed instruments: PASS-20-like subscales and total, PEG-like mean, and `score` dispatch."""

from __future__ import annotations

import math
from typing import Any

import pytest

from proms.scoring import score
from proms.scoring.summed import score_summed
from proms.scoring.types import Method, Scale, ScoringError, SummedForm, UnscoredForm

PASS_ITEMS = tuple(f"pass{n}" for n in range(1, 21))
PASS20 = SummedForm(
    code="pass-20",
    version="1.0",
    method=Method.SUM,
    scales=(
        Scale("total", PASS_ITEMS),
        Scale("cognitive", PASS_ITEMS[0:5]),
        Scale("escape_avoidance", PASS_ITEMS[5:10]),
        Scale("fear", PASS_ITEMS[10:15]),
        Scale("physiological", PASS_ITEMS[15:20]),
    ),
    item_values={item: frozenset(range(6)) for item in PASS_ITEMS},
)
PEG_ITEMS = ("peg_pain", "peg_enjoyment", "peg_activity")
PEG = SummedForm(
    code="peg",
    version="1.0",
    method=Method.MEAN,
    scales=(Scale("peg", PEG_ITEMS),),
    item_values={item: frozenset(range(11)) for item in PEG_ITEMS},
)
SIDE_EFFECTS = UnscoredForm(
    code="side-effects",
    version="1.0",
    item_ids=("nausea", "hallucinations"),
    item_values={"nausea": frozenset({0, 1})},
)


def pass_answers(values: list[int]) -> dict[str, int | None]:
    return dict(zip(PASS_ITEMS, values, strict=True))


def test_pass20_total_and_subscales_in_form_order() -> None:
    cognitive, escape, fear, physiological = (
        [1, 2, 3, 4, 5],
        [0, 0, 1, 1, 2],
        [5] * 5,
        [0, 1, 0, 1, 0],
    )
    values = [*cognitive, *escape, *fear, *physiological]
    results = score_summed(PASS20, pass_answers(values))

    assert [r.scale for r in results] == [
        "total",
        "cognitive",
        "escape_avoidance",
        "fear",
        "physiological",
    ]
    assert [r.raw_score for r in results] == [46, 15, 4, 25, 2]
    assert all(r.method is Method.SUM for r in results)
    assert all(r.t_score is None and r.standard_error is None for r in results)
    assert [(r.n_answered, r.n_items) for r in results] == [(20, 20)] + [(5, 5)] * 4
    assert all(r.error == "" for r in results)


def test_pass20_extremes() -> None:
    lowest = score_summed(PASS20, pass_answers([0] * 20))
    highest = score_summed(PASS20, pass_answers([5] * 20))
    assert [r.raw_score for r in lowest] == [0, 0, 0, 0, 0]
    assert [r.raw_score for r in highest] == [100, 25, 25, 25, 25]


def test_pass20_missing_item_leaves_only_its_scales_unscored() -> None:
    answers = pass_answers([2] * 20)
    answers["pass12"] = None
    del answers["pass14"]  # a missing key is an unanswered item too
    total, cognitive, escape, fear, physiological = score_summed(PASS20, answers)

    for result in (total, fear):
        assert result.method is Method.NONE
        assert result.raw_score is None
        assert "pass12, pass14" in result.error
        assert PASS20.missing_rule in result.error
    assert total.n_answered == 18
    assert fear.n_answered == 3
    assert fear.error.startswith("2 of 5 items missing")
    assert [r.raw_score for r in (cognitive, escape, physiological)] == [10, 10, 10]


def test_peg_is_the_exact_mean_of_three() -> None:
    (result,) = score_summed(PEG, {"peg_pain": 3, "peg_enjoyment": 4, "peg_activity": 4})
    assert result.method is Method.MEAN
    assert result.raw_score == (3 + 4 + 4) / 3  # 3.666..., not rounded
    assert result.raw_score != 3.67
    assert result.t_score is None
    assert result.standard_error is None
    assert (result.n_answered, result.n_items) == (3, 3)


@pytest.mark.parametrize(
    ("values", "mean"), [((0, 0, 0), 0.0), ((10, 10, 10), 10.0), ((7, 8, 10), 25 / 3)]
)
def test_peg_means(values: tuple[int, int, int], mean: float) -> None:
    answers = dict(zip(PEG_ITEMS, values, strict=True))
    (result,) = score_summed(PEG, answers)
    assert result.raw_score == mean


def test_peg_with_a_missing_item_is_not_scored() -> None:
    (result,) = score_summed(PEG, {"peg_pain": 3, "peg_enjoyment": None, "peg_activity": 4})
    assert result.method is Method.NONE
    assert result.raw_score is None
    assert result.n_answered == 2
    assert result.error == (
        "1 of 3 items missing (peg_enjoyment); "
        "complete answers required (no published missing-item rule)"
    )


@pytest.mark.parametrize(
    ("form", "answers", "fragment"),
    [
        (PEG, {"peg_pain": 11}, "item 'peg_pain' cannot take value 11"),
        (PEG, {"peg_pain": -1}, "item 'peg_pain' cannot take value -1"),
        (PEG, {"peg_pain": 3.5}, "item 'peg_pain' cannot take value 3.5"),
        (PEG, {"peg_pain": False}, "item 'peg_pain' cannot take value False"),
        (PEG, {"peg_mood": 3}, "unknown item 'peg_mood'"),
        (PASS20, {"pass1": 6}, "item 'pass1' cannot take value 6"),
        (PASS20, {"pass21": 0}, "unknown item 'pass21'"),
    ],
)
def test_invalid_answers_raise(form: SummedForm, answers: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ScoringError) as excinfo:
        score_summed(form, answers)
    assert fragment in str(excinfo.value)


def test_a_form_that_is_neither_sum_nor_mean_is_refused() -> None:
    bad = SummedForm(
        code="x", version="1", method=Method.TABLE, scales=PEG.scales, item_values=PEG.item_values
    )
    with pytest.raises(ScoringError, match="sum or mean"):
        score_summed(bad, {})


def test_score_dispatches_summed_forms() -> None:
    answers = {"peg_pain": 3, "peg_enjoyment": 4, "peg_activity": 4}
    assert score(PEG, answers) == score_summed(PEG, answers)


def test_score_validates_unscored_forms_and_returns_nothing() -> None:
    assert score(SIDE_EFFECTS, {"nausea": 1, "hallucinations": 3}) == ()
    assert score(SIDE_EFFECTS, {}) == ()
    with pytest.raises(ScoringError, match="item 'nausea' cannot take value 2"):
        score(SIDE_EFFECTS, {"nausea": 2})
    with pytest.raises(ScoringError, match="unknown item 'dizziness'"):
        score(SIDE_EFFECTS, {"dizziness": 1})
    with pytest.raises(ScoringError, match="item 'hallucinations' cannot take value inf"):
        score(SIDE_EFFECTS, {"hallucinations": math.inf})


def test_score_refuses_what_is_not_a_form() -> None:
    with pytest.raises(TypeError, match="not a form"):
        score("promis-pi-4a", {})  # type: ignore[arg-type]
