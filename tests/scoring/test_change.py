"""Change from baseline: threshold and reliable-change classification, from the README's figures."""

from __future__ import annotations

import pytest

from proms.scoring.change import (
    Classification,
    Measurement,
    Threshold,
    classify_change,
    is_meaningful_worsening,
    reliable_change_index,
)
from proms.scoring.types import Direction

IMPROVED = Classification.IMPROVED
WORSENED = Classification.WORSENED
NO_CHANGE = Classification.NO_CHANGE
NOT_COMPARABLE = Classification.NOT_COMPARABLE
WORSE = Direction.HIGHER_IS_WORSE
BETTER = Direction.HIGHER_IS_BETTER

PI_3T = Threshold(
    3.0,
    "T",
    "Chen CX et al. Pain 2018; Amtmann D et al. J Pain Res 2016;9:251-5",
    "published range 2-3 T in chronic pain RCTs",
)
PF_2T = Threshold(2.0, "T", "Hays RD et al.", "about 2 T in rheumatoid arthritis")
PEG_30 = Threshold(
    30.0,
    "percent",
    "IMMPACT, Dworkin RH et al. J Pain 2008;9:105-21",
    "UNCONFIRMED (secondary summaries)",
    substantial=50.0,
)
PASS_10 = Threshold(
    10.0, "points", "0.5 SD of 20.38 (McCracken & Dhingra 2002 norms)", "UNCONFIRMED"
)


def pi(t: float, se: float | None = 1.8, version: str = "1.1") -> Measurement:
    return Measurement("PROMIS-PI-4a", version, "t", t, se)


def pf(t: float, se: float | None = 2.0, version: str = "2.0") -> Measurement:
    return Measurement("PROMIS-PF-4a", version, "t", t, se)


def peg(score: float) -> Measurement:
    return Measurement("PEG", "1.0", "score", score, None)


def pass20(score: float, scale: str = "total") -> Measurement:
    return Measurement("PASS-20", "1.0", scale, score, None)


# baseline, current, direction, threshold, improvement, RC, by threshold, individually
T_CASES = [
    pytest.param(
        pi(66.6),
        pi(61.2),
        WORSE,
        PI_3T,
        5.4,
        -2.12,
        IMPROVED,
        IMPROVED,
        id="readme-example-PI-16-to-12",
    ),
    pytest.param(
        pf(35.0),
        pf(41.0),
        BETTER,
        PF_2T,
        6.0,
        2.12,
        IMPROVED,
        IMPROVED,
        id="physical-function-T-up-is-better",
    ),
    pytest.param(
        pf(41.0),
        pf(35.0),
        BETTER,
        PF_2T,
        -6.0,
        -2.12,
        WORSENED,
        WORSENED,
        id="physical-function-T-down-is-worse",
    ),
    pytest.param(
        pi(61.2),
        pi(66.6),
        WORSE,
        PI_3T,
        -5.4,
        2.12,
        WORSENED,
        WORSENED,
        id="pain-interference-worsening",
    ),
    pytest.param(
        pi(60.0),
        pi(58.5),
        WORSE,
        PI_3T,
        1.5,
        -0.59,
        NO_CHANGE,
        NO_CHANGE,
        id="no-meaningful-change",
    ),
    pytest.param(
        pi(66.6),
        pi(63.6),
        WORSE,
        PI_3T,
        3.0,
        -1.18,
        IMPROVED,
        NO_CHANGE,
        id="exactly-at-threshold-66.6-minus-63.6",
    ),
    pytest.param(
        pi(63.6),
        pi(66.6),
        WORSE,
        PI_3T,
        -3.0,
        1.18,
        WORSENED,
        NO_CHANGE,
        id="exactly-at-threshold-worsening",
    ),
    pytest.param(
        pf(40.1),
        pf(42.1),
        BETTER,
        PF_2T,
        2.0,
        0.71,
        IMPROVED,
        NO_CHANGE,
        id="exactly-at-threshold-40.1-to-42.1",
    ),
    pytest.param(
        pi(62.9),
        pi(60.0),
        WORSE,
        PI_3T,
        2.9,
        -1.14,
        NO_CHANGE,
        NO_CHANGE,
        id="just-below-threshold",
    ),
    pytest.param(
        pf(22.5, 4.0),
        pf(30.5, 2.4),
        BETTER,
        PF_2T,
        8.0,
        1.71,
        IMPROVED,
        NO_CHANGE,
        id="floor-effect-large-change-large-SE",
    ),
    pytest.param(
        pi(60.0, 3.0),
        pi(50.2, 4.0),
        WORSE,
        PI_3T,
        9.8,
        -1.96,
        IMPROVED,
        IMPROVED,
        id="RC-exactly-1.96",
    ),
    pytest.param(
        pass20(60.0),
        pass20(45.0),
        WORSE,
        PASS_10,
        15.0,
        None,
        IMPROVED,
        NOT_COMPARABLE,
        id="points-without-SE",
    ),
]


@pytest.mark.parametrize(
    (
        "baseline",
        "current",
        "direction",
        "threshold",
        "improvement",
        "rc",
        "by_threshold",
        "individual",
    ),
    T_CASES,
)
def test_absolute_thresholds(
    baseline: Measurement,
    current: Measurement,
    direction: Direction,
    threshold: Threshold,
    improvement: float,
    rc: float | None,
    by_threshold: Classification,
    individual: Classification,
) -> None:
    result = classify_change(baseline, current, direction=direction, threshold=threshold)
    assert result.improvement == pytest.approx(improvement)
    if rc is None:
        assert result.reliable_change_index is None
    else:
        assert result.reliable_change_index is not None
        assert round(result.reliable_change_index, 2) == rc
    assert result.by_threshold is by_threshold
    assert result.by_individual is individual
    assert result.percent_improvement is None
    assert result.level is None
    assert result.threshold is threshold
    assert result.baseline is baseline
    assert result.current is current
    assert (result.reason == "") == (individual is not NOT_COMPARABLE)


def test_readme_example_in_full() -> None:
    result = classify_change(pi(66.6), pi(61.2), direction=WORSE, threshold=PI_3T)
    assert result.improvement == pytest.approx(5.4)
    assert result.reliable_change_index == pytest.approx(-5.4 / (1.8 * 2**0.5))
    assert f"{result.reliable_change_index:.2f}" == "-2.12"
    assert result.threshold.source.startswith("Chen CX")
    assert result.threshold.evidence == "published range 2-3 T in chronic pain RCTs"
    assert result.reason == ""


# baseline, current, percent, level, by threshold
PERCENT_CASES = [
    pytest.param(8, 5, 37.5, "moderate", IMPROVED, id="8-to-5-moderate"),
    pytest.param(8, 4, 50.0, "substantial", IMPROVED, id="8-to-4-substantial"),
    pytest.param(8, 5.6, 30.0, "moderate", IMPROVED, id="8-to-5.6-exactly-30-percent"),
    pytest.param(6, 5, 16.7, None, NO_CHANGE, id="6-to-5-no-change"),
    pytest.param(4, 6, -50.0, None, WORSENED, id="4-to-6-worsening"),
    pytest.param(7.3, 7.3, 0.0, None, NO_CHANGE, id="unchanged"),
]


@pytest.mark.parametrize(("before", "after", "percent", "level", "by_threshold"), PERCENT_CASES)
def test_percent_thresholds(
    before: float, after: float, percent: float, level: str | None, by_threshold: Classification
) -> None:
    result = classify_change(peg(before), peg(after), direction=WORSE, threshold=PEG_30)
    assert result.improvement == pytest.approx(before - after)
    assert result.percent_improvement is not None
    assert round(result.percent_improvement, 1) == percent
    assert result.by_threshold is by_threshold
    assert result.level == level
    assert result.threshold is PEG_30
    # Raw PEG scores carry no standard error: no individual verdict, and the result says why.
    assert result.reliable_change_index is None
    assert result.by_individual is NOT_COMPARABLE
    assert "standard error" in result.reason


def test_percent_without_substantial_cut_stops_at_moderate() -> None:
    threshold = Threshold(30.0, "percent", "Farrar JT et al. Pain 2001;94:149-58", "UNCONFIRMED")
    result = classify_change(peg(8), peg(2), direction=WORSE, threshold=threshold)
    assert result.percent_improvement == pytest.approx(75.0)
    assert result.level == "moderate"


def test_percent_below_immpact_moderate_has_no_level() -> None:
    minimal = Threshold(20.0, "percent", "IMMPACT (10-20% minimal)", "UNCONFIRMED", substantial=50)
    result = classify_change(peg(8), peg(6), direction=WORSE, threshold=minimal)
    assert result.by_threshold is IMPROVED
    assert result.percent_improvement == pytest.approx(25.0)
    assert result.level is None


def test_percent_higher_is_better() -> None:
    threshold = Threshold(30.0, "percent", "illustrative", "UNCONFIRMED", substantial=50)
    result = classify_change(peg(4), peg(6), direction=BETTER, threshold=threshold)
    assert result.percent_improvement == pytest.approx(50.0)
    assert (result.by_threshold, result.level) == (IMPROVED, "substantial")


# baseline, current, threshold, what the reason must say
NOT_COMPARABLE_CASES = [
    pytest.param(None, pi(61.2), PI_3T, ["no baseline"], id="no-baseline"),
    pytest.param(
        pf(35.0, version="1.2"),
        pf(41.0, version="2.0"),
        PF_2T,
        ["instrument version", "'1.2'", "'2.0'"],
        id="different-version",
    ),
    pytest.param(
        pass20(60.0, "total"), pass20(12.0, "cognitive"), PASS_10, ["scale"], id="different-scale"
    ),
    pytest.param(pi(66.6), pf(41.0), PI_3T, ["instrument code"], id="different-instrument"),
    pytest.param(
        peg(0),
        peg(3),
        PEG_30,
        ["percent change from a baseline of 0 is undefined"],
        id="PEG-baseline-0",
    ),
]


@pytest.mark.parametrize(("baseline", "current", "threshold", "says"), NOT_COMPARABLE_CASES)
def test_not_comparable(
    baseline: Measurement | None, current: Measurement, threshold: Threshold, says: list[str]
) -> None:
    result = classify_change(baseline, current, direction=WORSE, threshold=threshold)
    assert result.by_threshold is NOT_COMPARABLE
    assert result.by_individual is NOT_COMPARABLE
    assert result.percent_improvement is None
    assert result.level is None
    assert result.threshold is threshold
    for words in says:
        assert words in result.reason


def test_different_version_names_only_what_differs() -> None:
    result = classify_change(
        pf(35.0, version="1.2"), pf(41.0, version="2.0"), direction=BETTER, threshold=PF_2T
    )
    assert "scale" not in result.reason
    assert "instrument code" not in result.reason
    assert result.improvement is None
    assert result.reliable_change_index is None


def test_baseline_0_keeps_the_absolute_change() -> None:
    result = classify_change(peg(0), peg(3), direction=WORSE, threshold=PEG_30)
    assert result.improvement == pytest.approx(-3.0)


@pytest.mark.parametrize(
    ("baseline", "current", "missing"),
    [
        pytest.param(pi(66.6, None), pi(61.2), "baseline", id="baseline-SE-missing"),
        pytest.param(pi(66.6), pi(61.2, None), "current", id="current-SE-missing"),
        pytest.param(pi(66.6, None), pi(61.2, None), "baseline and current", id="both-missing"),
    ],
)
def test_missing_standard_error(baseline: Measurement, current: Measurement, missing: str) -> None:
    result = classify_change(baseline, current, direction=WORSE, threshold=PI_3T)
    assert result.by_threshold is IMPROVED
    assert result.by_individual is NOT_COMPARABLE
    assert result.reliable_change_index is None
    assert f"(none for {missing})" in result.reason


def test_reliable_change_index_is_in_the_raw_direction() -> None:
    assert reliable_change_index(pf(35.0), pf(41.0)) == pytest.approx(6 / 8**0.5)
    assert reliable_change_index(pf(41.0), pf(35.0)) == pytest.approx(-6 / 8**0.5)
    assert reliable_change_index(pf(41.0, None), pf(35.0)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"value": 3.0, "unit": "SD"}, id="unknown-unit"),
        pytest.param({"value": 0.0, "unit": "T"}, id="zero"),
        pytest.param({"value": -2.0, "unit": "points"}, id="negative"),
        pytest.param({"value": float("nan"), "unit": "T"}, id="nan"),
        pytest.param(
            {"value": 30.0, "unit": "percent", "substantial": 20.0}, id="substantial-below"
        ),
        pytest.param({"value": 3.0, "unit": "T", "substantial": 50.0}, id="substantial-on-T"),
    ],
)
def test_threshold_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"threshold|substantial"):
        Threshold(source="s", evidence="e", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "se"),
    [
        pytest.param(float("nan"), 2.0, id="nan-score"),
        pytest.param(float("inf"), 2.0, id="infinite-score"),
        pytest.param(50.0, 0.0, id="zero-SE"),
        pytest.param(50.0, -1.0, id="negative-SE"),
    ],
)
def test_measurement_rejects_nonsense(value: float, se: float) -> None:
    with pytest.raises(ValueError, match="PROMIS-PI-4a t"):
        Measurement("PROMIS-PI-4a", "1.1", "t", value, se)


def test_classification_values_are_report_labels() -> None:
    assert [str(c) for c in Classification] == [
        "improved",
        "worsened",
        "no meaningful change",
        "not comparable",
    ]


# Is it a worsening the care team should act on? ----------------------------------------------


def _pi(value: float, se: float | None) -> Measurement:
    return Measurement("promis-pi-4a", "1.0", "total", value, se)


def _peg(value: float) -> Measurement:
    return Measurement("peg", "1.0", "total", value, None)


@pytest.mark.parametrize(
    ("baseline", "current", "threshold", "worsening"),
    [
        # T-scores with standard errors: the individual criterion decides.
        (_pi(41.6, 6.1), _pi(75.6, 3.7), PI_3T, True),  # 34 T worse, RC 4.8
        (_pi(61.2, 1.8), _pi(66.6, 1.8), PI_3T, True),  # 5.4 T worse, RC 2.12
        (_pi(61.2, 6.1), _pi(66.6, 6.1), PI_3T, False),  # past the threshold, RC only 0.63
        (_pi(66.6, 1.8), _pi(68.0, 1.8), PI_3T, False),  # 1.4 T: below the threshold
        (_pi(66.6, 1.8), _pi(61.2, 1.8), PI_3T, False),  # an improvement
        # Mean scores have no standard error: the threshold alone decides.
        (_peg(4.0), _peg(6.0), PEG_30, True),  # 50% worse
        (_peg(4.0), _peg(5.0), PEG_30, False),  # 25% worse
        (_peg(6.0), _peg(3.0), PEG_30, False),  # better
        # Without a comparable baseline there is nothing to act on.
        (None, _pi(75.6, 3.7), PI_3T, False),
        # A score without a standard error falls back on the threshold, as for mean scores.
        (_pi(41.6, None), _pi(75.6, 3.7), PI_3T, True),
    ],
)
def test_meaningful_worsening(
    baseline: Measurement | None, current: Measurement, threshold: Threshold, worsening: bool
) -> None:
    change = classify_change(baseline, current, direction=WORSE, threshold=threshold)
    assert is_meaningful_worsening(change) is worsening


def test_a_different_instrument_at_baseline_is_no_worsening() -> None:
    other = Measurement("promis-pi-6a", "1.0", "total", 41.6, 3.0)
    change = classify_change(other, _pi(75.6, 3.7), direction=WORSE, threshold=PI_3T)
    assert change.by_threshold is NOT_COMPARABLE
    assert not is_meaningful_worsening(change)
