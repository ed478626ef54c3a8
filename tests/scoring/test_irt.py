"""Graded response model math, checked against every reference PROMIS table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from proms.scoring import irt
from proms.scoring.types import ItemCalibration
from tests.scoring import reference

# Reference README: the Lord-Wingersky recomputation "reproduces every independently transcribed
# table row (two extreme rows differ by 0.1)": PF 4a v1.0 raw 4 (transcribed 22.9, computed 22.85)
# and Anxiety 4a raw 20 (81.6 vs 81.68). So only the first and last rows may be off, by 0.1.
EXTREME_ROW_TOLERANCE = 0.1 + 1e-9

SKIPPED_TABLES = {
    key: f"{key}: {reason}" for key, reason in reference.NO_CALIBRATION_REASON.items()
}

# Made-up but realistic items (5 categories) for tests that need no reference data.
ITEMS = (
    ItemCalibration(a=2.6, thresholds=(-0.5, 0.6, 1.6, 2.4)),
    ItemCalibration(a=4.5, thresholds=(-1.5, -0.8, -0.03, 0.6)),
    ItemCalibration(a=1.2, thresholds=(-1.3, -0.15, 0.7, 1.5)),
)


def test_every_reference_table_has_a_calibration_decision() -> None:
    """A new reference table must be assigned a bank (or a reason) here, not silently skipped."""
    reference.require()
    assert set(reference.FORM_BANKS) == set(reference.short_forms())
    for key, bank in reference.FORM_BANKS.items():
        assert bank is not None or key in reference.NO_CALIBRATION_REASON, key


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.calibrated_keys))
def test_reference_items_agree_with_their_bank(key: str) -> None:
    """Values in display order and reverse flags are the same in both reference files."""
    bank = reference.item_params()["banks"][reference.FORM_BANKS[key]]["items"]
    for item in reference.short_forms()[key]["items"]:
        params = bank[item["id"]]
        assert [o["value"] for o in item["options"]] == params["values"], item["id"]
        assert item["reverse"] == params["reverse"], item["id"]
        assert sorted(params["values"]) == list(range(1, len(params["b"]) + 2)), item["id"]


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.all_keys, skip=SKIPPED_TABLES))
def test_lord_wingersky_reproduces_reference_table(key: str) -> None:
    form = reference.promis_form(key)
    assert form.calibration is not None
    computed = irt.lord_wingersky_table([form.calibration[i] for i in form.item_ids])
    rows = reference.table_rows(key)
    assert [raw for raw, _, _ in rows] == sorted(computed), "raw sums differ"

    extremes = {rows[0][0], rows[-1][0]}
    bad = []
    for raw, t, se in rows:
        got_t, got_se = computed[raw]
        if (got_t, got_se) == (t, se):
            continue
        within = (
            abs(got_t - t) <= EXTREME_ROW_TOLERANCE and abs(got_se - se) <= EXTREME_ROW_TOLERANCE
        )
        if not (raw in extremes and within):
            bad.append(f"raw {raw}: table T {t} SE {se}, computed T {got_t} SE {got_se}")
    assert not bad, f"{key}: {len(bad)} of {len(rows)} rows differ:\n" + "\n".join(bad)


def test_category_probabilities_sum_to_one_and_match_the_model() -> None:
    item = ITEMS[0]
    log_p = irt.log_category_probabilities(item)
    p = np.exp(log_p)
    assert p.shape == (5, irt.THETA.size)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    # The textbook form, P(c) = P*(c-1) - P*(c), away from the tails where it is accurate.
    star = [np.ones_like(irt.THETA)]
    star += [1 / (1 + np.exp(-item.a * (irt.THETA - b))) for b in item.thresholds]
    star += [np.zeros_like(irt.THETA)]
    naive = np.array([star[c] - star[c + 1] for c in range(5)])
    np.testing.assert_allclose(p, naive, rtol=1e-9, atol=1e-15)
    assert np.all(np.isfinite(log_p)), "tail probabilities underflowed"


def test_grid_is_minus_six_to_six_by_hundredths() -> None:
    assert irt.THETA.size == 1201
    assert irt.THETA[0] == -6.0
    assert irt.THETA[-1] == 6.0
    assert irt.THETA[600] == 0.0
    np.testing.assert_allclose(np.diff(irt.THETA), 0.01, rtol=0, atol=1e-12)


def test_lord_wingersky_equals_summing_over_every_pattern() -> None:
    log_p = [irt.log_category_probabilities(item) for item in ITEMS]
    by_sum: dict[int, np.ndarray] = {}
    for pattern in itertools.product(range(5), repeat=len(ITEMS)):
        likelihood = np.exp(sum(log_p[i][c] for i, c in enumerate(pattern)))
        raw = sum(pattern) + len(ITEMS)
        by_sum[raw] = by_sum.get(raw, 0) + likelihood
    prior = np.exp(-0.5 * irt.THETA**2)
    summed = irt.summed_score_eap(ITEMS)
    assert sorted(summed) == sorted(by_sum) == list(range(3, 16))
    for raw, likelihood in by_sum.items():
        w = likelihood * prior
        mean = float(irt.THETA @ w / w.sum())
        sd = math.sqrt(float(((irt.THETA - mean) ** 2) @ w / w.sum()))
        assert summed[raw] == pytest.approx((mean, sd), abs=1e-9), raw


def test_table_is_the_rounded_summed_score_eap() -> None:
    table = irt.lord_wingersky_table(ITEMS)
    for raw, (theta, sd) in irt.summed_score_eap(ITEMS).items():
        assert table[raw] == (
            irt.round_half_up(50 + 10 * theta),
            irt.round_half_up(10 * sd),
        )


def test_eap_uses_only_the_answered_items() -> None:
    alone = irt.eap(ITEMS[1:2], [4])
    assert irt.eap(ITEMS, [None, 4, None]) == pytest.approx(alone, abs=1e-12)


def test_eap_without_answers_is_the_prior() -> None:
    theta, sd = irt.eap(ITEMS, [None, None, None])
    assert theta == pytest.approx(0.0, abs=1e-12)
    assert sd == pytest.approx(1.0, abs=1e-6)  # N(0, 1) on a grid truncated at +/-6


def test_eap_returns_plain_floats() -> None:
    theta, sd = irt.eap(ITEMS, [1, 2, 3])
    assert type(theta) is float
    assert type(sd) is float
    t, se = irt.lord_wingersky_table(ITEMS)[6]
    assert type(t) is float
    assert type(se) is float


def test_eap_is_cached_per_form() -> None:
    irt.eap(ITEMS, [1, 2, 3])
    before = irt._form_grid.cache_info()
    irt.eap(tuple(ITEMS), [3, None, 5])
    after = irt._form_grid.cache_info()
    assert after.hits == before.hits + 1
    assert after.misses == before.misses


@pytest.mark.parametrize(
    "pattern",
    [[0, 1, 1], [6, 1, 1], [2.5, 1, 1], [math.nan, 1, 1], [math.inf, 1, 1], [1, 1], [1, 1, 1, 1]],
    ids=["below-range", "above-range", "fraction", "nan", "inf", "too-short", "too-long"],
)
def test_eap_rejects_values_that_are_not_categories(pattern: list[float]) -> None:
    with pytest.raises(ValueError, match=r"value|items"):
        irt.eap(ITEMS, pattern)


@pytest.mark.parametrize(
    "calibration",
    [
        ItemCalibration(a=0.0, thresholds=(0.0, 1.0)),
        ItemCalibration(a=1.0, thresholds=(1.0, 0.0)),
        ItemCalibration(a=1.0, thresholds=()),
    ],
    ids=["zero-slope", "unordered", "no-thresholds"],
)
def test_invalid_calibrations_are_refused(calibration: ItemCalibration) -> None:
    with pytest.raises(ValueError, match="invalid calibration"):
        irt.log_category_probabilities(calibration)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (61.25, 61.3),  # exact in binary: round() gives 61.2 (half to even)
        (0.25, 0.3),  # round() gives 0.2
        (0.15, 0.2),  # 0.1499999... in binary; rounded as the decimal it prints as
        (61.249999, 61.2),
        (61.2500001, 61.3),
        (75.6, 75.6),
        (1.05, 1.1),
        (0.0, 0.0),
    ],
)
def test_round_half_up(value: float, expected: float) -> None:
    assert irt.round_half_up(value) == expected


def test_round_half_up_refuses_non_numbers() -> None:
    with pytest.raises(ValueError, match="cannot round"):
        irt.round_half_up(math.nan)
