"""Cohort statistics: Wilson and t intervals against known values; grouping and exclusions."""

from __future__ import annotations

import math

import pytest

from proms.scoring.change import ChangeResult, Measurement, Threshold, classify_change
from proms.scoring.cohort import MeanInterval, mean_interval, summarize, wilson_interval
from proms.scoring.types import Direction

PI_3T = Threshold(3.0, "T", "Chen CX et al. Pain 2018", "published range 2-3 T")
PF_2T = Threshold(2.0, "T", "Hays RD et al.", "about 2 T in rheumatoid arthritis")


@pytest.mark.parametrize(
    ("successes", "n", "lower", "upper"),
    [
        # 0.133367 - 0.288829: the lower bound rounds to 0.1334 (0.1333 is a truncation).
        pytest.param(20, 100, 0.1334, 0.2888, id="20-of-100"),
        pytest.param(0, 10, 0.0, 0.2775, id="0-of-10"),
        pytest.param(10, 10, 0.7225, 1.0, id="10-of-10"),
        pytest.param(5, 10, 0.2366, 0.7634, id="5-of-10"),
        pytest.param(1, 1, 0.2065, 1.0, id="1-of-1"),
    ],
)
def test_wilson_interval_known_values(successes: int, n: int, lower: float, upper: float) -> None:
    got_lower, got_upper = wilson_interval(successes, n)
    assert (round(got_lower, 4), round(got_upper, 4)) == (lower, upper)


def test_wilson_interval_extremes_are_exact() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


def test_wilson_interval_other_confidence() -> None:
    # Checked by solving |p - p0| = z * sqrt(p0 (1 - p0) / n) for p0 numerically.
    lower, upper = wilson_interval(20, 100, confidence=0.99)
    assert (round(lower, 4), round(upper, 4)) == (0.1172, 0.3202)


@pytest.mark.parametrize(
    ("successes", "n", "message"),
    [
        pytest.param(0, 0, "at least one observation", id="n-0"),
        pytest.param(11, 10, "between 0 and n", id="more-than-n"),
        pytest.param(-1, 10, "between 0 and n", id="negative"),
    ],
)
def test_wilson_interval_rejects(successes: int, n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0])
def test_confidence_must_be_a_probability(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence)


@pytest.mark.parametrize(
    ("values", "mean", "lower", "upper"),
    [
        # t(0.975, 4) = 2.7764, SD 1.5811: 3 -/+ 2.7764 * 1.5811 / sqrt(5)
        pytest.param([1, 2, 3, 4, 5], 3.0, 1.0368, 4.9632, id="1-to-5"),
        # t(0.975, 1) = 12.7062, SD 2.8284: 2 -/+ 12.7062 * 2
        pytest.param([0, 4], 2.0, -23.4124, 27.4124, id="two-values"),
        pytest.param([5.4, 5.4, 5.4], 5.4, 5.4, 5.4, id="no-spread"),
    ],
)
def test_mean_interval_t(values: list[float], mean: float, lower: float, upper: float) -> None:
    got = mean_interval(values)
    assert got.n == len(values)
    assert got.mean == pytest.approx(mean)
    assert got.lower is not None
    assert got.upper is not None
    assert (round(got.lower, 4), round(got.upper, 4)) == (lower, upper)


def test_mean_interval_of_one_value_has_no_interval() -> None:
    assert mean_interval([4.2]) == MeanInterval(4.2, None, None, 1)


@pytest.mark.parametrize(
    "values",
    [pytest.param([], id="empty"), pytest.param([1.0, math.nan], id="nan")],
)
def test_mean_interval_rejects(values: list[float]) -> None:
    with pytest.raises(ValueError, match="value"):
        mean_interval(values)


def pi_change(before: float, after: float, se: float | None = 1.8) -> ChangeResult:
    return classify_change(
        Measurement("PROMIS-PI-4a", "1.1", "t", before, 1.8),
        Measurement("PROMIS-PI-4a", "1.1", "t", after, se),
        direction=Direction.HIGHER_IS_WORSE,
        threshold=PI_3T,
    )


def pf_change(before: float, after: float, *, version: str = "2.0") -> ChangeResult:
    return classify_change(
        Measurement("PROMIS-PF-4a", version, "t", before, 2.0),
        Measurement("PROMIS-PF-4a", "2.0", "t", after, 2.0),
        direction=Direction.HIGHER_IS_BETTER,
        threshold=PF_2T,
    )


def no_baseline() -> ChangeResult:
    return classify_change(
        None,
        Measurement("PROMIS-PI-4a", "1.1", "t", 60.0, 1.8),
        direction=Direction.HIGHER_IS_WORSE,
        threshold=PI_3T,
    )


CHANGES = [
    ("pain interference", "3 months", pi_change(66.6, 61.2)),  # improved, reliably
    ("physical function", "3 months", pf_change(35.0, 41.0)),  # improved, reliably
    ("pain interference", "3 months", pi_change(66.6, 63.6)),  # improved by threshold only
    ("pain interference", "6 months", pi_change(60.0, 66.0)),  # worsened, reliably
    ("pain interference", "3 months", pi_change(60.0, 59.0)),  # no change
    ("pain interference", "3 months", no_baseline()),  # not comparable
    ("pain interference", "3 months", pi_change(66.6, 58.6, None)),  # improved; no SE now
    ("physical function", "3 months", pf_change(35.0, 41.0, version="1.2")),  # other version
    ("pain interference", "6 months", pi_change(60.0, 60.0)),  # no change
]


# domain, time point, n, improved, worsened, not comparable
BY_THRESHOLD = [
    ("pain interference", "3 months", 4, 3, 0, 1),
    ("physical function", "3 months", 1, 1, 0, 1),
    ("pain interference", "6 months", 2, 0, 1, 0),
]
BY_INDIVIDUAL = [
    ("pain interference", "3 months", 3, 1, 0, 2),
    ("physical function", "3 months", 1, 1, 0, 1),
    ("pain interference", "6 months", 2, 0, 1, 0),
]


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [pytest.param("threshold", BY_THRESHOLD), pytest.param("individual", BY_INDIVIDUAL)],
)
def test_summarize_groups_in_first_seen_order(
    criterion: str, expected: list[tuple[str, str, int, int, int, int]]
) -> None:
    rows = summarize(CHANGES, criterion)
    got = [(r.domain, r.timepoint, r.n, r.improved, r.worsened, r.not_comparable) for r in rows]
    assert got == expected
    for row in rows:
        assert row.criterion == criterion
        assert row.no_change == row.n - row.improved - row.worsened
        assert row.share_improved == pytest.approx(row.improved / row.n)
        assert row.share_worsened == pytest.approx(row.worsened / row.n)
        assert row.share_improved_ci == wilson_interval(row.improved, row.n)
        assert row.share_worsened_ci == wilson_interval(row.worsened, row.n)


def test_summarize_mean_improvement_uses_the_comparable_results() -> None:
    by_threshold, _, six_months = summarize(CHANGES)
    assert by_threshold.mean_improvement is not None
    assert by_threshold.mean_improvement.n == 4
    assert by_threshold.mean_improvement.mean == pytest.approx((5.4 + 3.0 + 1.0 + 8.0) / 4)
    assert six_months.mean_improvement is not None
    assert six_months.mean_improvement.mean == pytest.approx(-3.0)

    individual = summarize(CHANGES, "individual")[0]
    assert individual.mean_improvement is not None
    # The result without a current SE is not comparable individually, so it leaves the mean.
    assert individual.mean_improvement.mean == pytest.approx((5.4 + 3.0 + 1.0) / 3)


def test_summarize_names_the_threshold() -> None:
    rows = summarize(CHANGES)
    assert [r.threshold for r in rows] == [PI_3T, PF_2T, PI_3T]


def test_summarize_row_with_nothing_comparable() -> None:
    [row] = summarize([("pain interference", "baseline", no_baseline())] * 2)
    assert (row.n, row.not_comparable) == (0, 2)
    assert row.share_improved is None
    assert row.share_improved_ci is None
    assert row.share_worsened is None
    assert row.share_worsened_ci is None
    assert row.mean_improvement is None


def test_summarize_empty_input() -> None:
    assert summarize([]) == []
    assert summarize(iter(()), "individual") == []


def test_summarize_accepts_a_generator() -> None:
    rows = summarize(change for change in CHANGES)
    assert len(rows) == 3


def test_summarize_rejects_an_unknown_criterion() -> None:
    with pytest.raises(ValueError, match="criterion"):
        summarize(CHANGES, "clinician")


def test_summarize_rejects_mixed_thresholds_in_one_row() -> None:
    other = classify_change(
        Measurement("PROMIS-PI-4a", "1.1", "t", 66.6, 1.8),
        Measurement("PROMIS-PI-4a", "1.1", "t", 61.2, 1.8),
        direction=Direction.HIGHER_IS_WORSE,
        threshold=Threshold(5.0, "T", "Amtmann D et al. 2016", "3.5-5.5 T in low back pain"),
    )
    with pytest.raises(ValueError, match="mixes thresholds"):
        summarize(
            [
                ("pain interference", "3 months", pi_change(66.6, 61.2)),
                ("pain interference", "3 months", other),
            ]
        )
