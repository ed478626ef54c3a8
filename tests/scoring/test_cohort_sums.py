"""Cohort statistics from a database's aggregates: the same answers as from the values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proms.scoring.cohort import (
    MeanInterval,
    Proportion,
    mean_interval,
    mean_interval_from_sums,
    proportion,
    wilson_interval,
)


def sums(values: list[float]) -> tuple[int, float, float]:
    """What COUNT(x), SUM(x) and SUM(x * x) return."""
    return len(values), math.fsum(values), math.fsum(v * v for v in values)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0], id="1-to-5"),
        pytest.param([0.0, 4.0], id="two-values"),
        pytest.param([5.4, 3.0, 1.0, 8.0], id="changes"),
        pytest.param([-2.8, 0.4, 5.4, -3.0, 2.2, 6.6, -0.5], id="signed"),
    ],
)
def test_from_sums_equals_from_values(values: list[float]) -> None:
    got = mean_interval_from_sums(*sums(values))
    expected = mean_interval(values)
    assert got is not None
    assert got.n == expected.n
    assert got.mean == pytest.approx(expected.mean)
    assert got.lower == pytest.approx(expected.lower)
    assert got.upper == pytest.approx(expected.upper)


def test_from_sums_known_value() -> None:
    # 1..5: mean 3, SD 1.5811, t(0.975, 4) = 2.7764 (as tests/scoring/test_cohort.py).
    got = mean_interval_from_sums(5, 15.0, 55.0)
    assert got is not None
    assert (round(got.lower or 0, 4), round(got.upper or 0, 4)) == (1.0368, 4.9632)


def test_identical_values_have_no_spread() -> None:
    """Rounding of the sums would otherwise leave a tiny (or negative) variance."""
    assert mean_interval_from_sums(*sums([5.4, 5.4, 5.4])) == MeanInterval(
        pytest.approx(5.4), pytest.approx(5.4), pytest.approx(5.4), 3
    )
    got = mean_interval_from_sums(3, 16.2, 87.48000000000002)
    assert got is not None
    assert got.lower == got.upper == got.mean


def test_no_value_and_one_value() -> None:
    assert mean_interval_from_sums(0, 0.0, 0.0) is None
    assert mean_interval_from_sums(1, 4.2, 17.64) == MeanInterval(4.2, None, None, 1)


@pytest.mark.parametrize(
    ("n", "total", "squares", "message"),
    [
        pytest.param(-1, 0.0, 0.0, "negative", id="negative-count"),
        pytest.param(2, math.nan, 1.0, "finite", id="nan"),
        pytest.param(2, 1.0, math.inf, "finite", id="inf"),
    ],
)
def test_from_sums_rejects(n: int, total: float, squares: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mean_interval_from_sums(n, total, squares)


@given(
    st.lists(
        st.floats(min_value=-60, max_value=60, allow_nan=False).map(lambda x: round(x, 1)),
        min_size=2,
        max_size=200,
    )
)
def test_from_sums_agrees_on_score_changes(values: list[float]) -> None:
    """Changes in T or raw points (one decimal, |x| <= 60): within 1e-6 of the direct way."""
    got = mean_interval_from_sums(*sums(values))
    expected = mean_interval(values)
    assert got is not None
    assert got.mean == pytest.approx(expected.mean, abs=1e-9)
    assert got.lower == pytest.approx(expected.lower, abs=1e-6)
    assert got.upper == pytest.approx(expected.upper, abs=1e-6)


def test_proportion() -> None:
    assert proportion(20, 100) == Proportion(20, 100, 0.2, *wilson_interval(20, 100))
    assert proportion(0, 0) == Proportion(0, 0, None, None, None)
    with pytest.raises(ValueError, match="no observations"):
        proportion(1, 0)
    with pytest.raises(ValueError, match="between 0 and n"):
        proportion(3, 2)
