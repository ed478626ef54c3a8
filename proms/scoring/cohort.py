"""Cohort statistics: share improved and worsened with Wilson intervals, mean change with a t CI.

The unit of a report row is one domain at one time point (e.g. pain interference at 3 months),
counting each patient's ChangeResult once. Results that are not comparable (no baseline, another
instrument version, no standard error for the individual criterion) are left out of n and counted
separately, so a share is always of the patients it could be decided for.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from proms.scoring.change import ChangeResult, Classification, Threshold

CRITERIA = ("threshold", "individual")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), not {confidence!r}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson, J Am Stat Assoc 1927).

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 and n successes,
    which small clinic cohorts reach often.
    """
    if n <= 0:
        raise ValueError(f"a proportion needs at least one observation (n = {n})")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}, not {successes}")
    _check_confidence(confidence)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    # The bounds are exactly 0 and 1 at the extremes; spell that out rather than trust rounding.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


@dataclass(frozen=True, slots=True)
class MeanInterval:
    """A mean with its confidence interval; lower and upper are None below two values."""

    mean: float
    lower: float | None
    upper: float | None
    n: int


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval:
    """Mean and Student's t confidence interval with n - 1 degrees of freedom."""
    n = len(values)
    if n == 0:
        raise ValueError("a mean needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("values must be finite numbers")
    _check_confidence(confidence)
    mean = statistics.fmean(values)
    if n < 2:
        return MeanInterval(mean, None, None, n)
    half = _t_critical(n - 1, confidence) * statistics.stdev(values) / math.sqrt(n)
    return MeanInterval(mean, mean - half, mean + half, n)


def _t_critical(degrees_of_freedom: int, confidence: float) -> float:
    # Imported here: scipy takes a noticeable time to import, and only reports need it.
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, degrees_of_freedom))


def mean_interval_from_sums(
    n: int, total: float, total_of_squares: float, confidence: float = 0.95
) -> MeanInterval | None:
    """The same mean and t interval as `mean_interval`, from a database's aggregates.

    `n`, `total` and `total_of_squares` are COUNT(x), SUM(x) and SUM(x * x) of the values, so a
    report aggregates in SQL and never fetches one row per patient. The sample variance is
    (sum of squares - total^2 / n) / (n - 1); its rounding error is negligible for scores (a few
    tens of points, at most millions of values), and a variance that rounds below zero (identical
    values) is zero. None when there is no value.
    """
    if n < 0:
        raise ValueError(f"a count cannot be negative (n = {n})")
    if not (math.isfinite(total) and math.isfinite(total_of_squares)):
        raise ValueError("the sums must be finite numbers")
    _check_confidence(confidence)
    if n == 0:
        return None
    mean = total / n
    if n < 2:
        return MeanInterval(mean, None, None, n)
    variance = max(0.0, (total_of_squares - total * total / n) / (n - 1))
    if variance <= _RELATIVE_NOISE * max(1.0, total_of_squares / n):
        variance = 0.0  # identical values: only the rounding of the sums is left
    half = _t_critical(n - 1, confidence) * math.sqrt(variance / n)
    return MeanInterval(mean, mean - half, mean + half, n)


# Below this fraction of the mean square a variance from sums is rounding, not spread.
_RELATIVE_NOISE = 1e-12


@dataclass(frozen=True, slots=True)
class Proportion:
    """`count` of `n` with its share and Wilson interval; share and bounds are None when n == 0."""

    count: int
    n: int
    share: float | None
    lower: float | None
    upper: float | None


def proportion(count: int, n: int, confidence: float = 0.95) -> Proportion:
    """A share with its Wilson interval, or a Proportion without either when n is 0."""
    if n == 0:
        if count != 0:
            raise ValueError(f"{count} of no observations")
        _check_confidence(confidence)
        return Proportion(0, 0, None, None, None)
    lower, upper = wilson_interval(count, n, confidence)
    return Proportion(count, n, count / n, lower, upper)


@dataclass(frozen=True, slots=True)
class CohortRow:
    """One domain at one time point.

    Shares, intervals and the mean are None when no result was comparable (n == 0). The mean
    improvement is in the instrument's units (T or raw points), positive = better.
    """

    domain: str
    timepoint: str
    criterion: str
    threshold: Threshold
    n: int
    improved: int
    worsened: int
    not_comparable: int
    share_improved: float | None
    share_improved_ci: tuple[float, float] | None
    share_worsened: float | None
    share_worsened_ci: tuple[float, float] | None
    mean_improvement: MeanInterval | None

    @property
    def no_change(self) -> int:
        return self.n - self.improved - self.worsened


def summarize(
    changes: Iterable[tuple[str, str, ChangeResult]],
    criterion: str = "threshold",
    *,
    confidence: float = 0.95,
) -> list[CohortRow]:
    """One row per (domain, time point), in first-seen order, from (domain, time point, result).

    `criterion` is "threshold" (ChangeResult.by_threshold) or "individual" (by_individual).
    Every result of a row must use the same threshold, so that the shares mean one thing.
    """
    _check_confidence(confidence)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    groups: dict[tuple[str, str], list[ChangeResult]] = {}
    for domain, timepoint, result in changes:
        group = groups.setdefault((domain, timepoint), [])
        if group and result.threshold != group[0].threshold:
            raise ValueError(
                f"{domain} at {timepoint} mixes thresholds: {group[0].threshold} and "
                f"{result.threshold}"
            )
        group.append(result)
    return [
        _row(domain, timepoint, results, criterion, confidence)
        for (domain, timepoint), results in groups.items()
    ]


def _row(
    domain: str, timepoint: str, results: list[ChangeResult], criterion: str, confidence: float
) -> CohortRow:
    def classification(result: ChangeResult) -> Classification:
        return result.by_threshold if criterion == "threshold" else result.by_individual

    comparable = [r for r in results if classification(r) is not Classification.NOT_COMPARABLE]
    n = len(comparable)
    improved = sum(classification(r) is Classification.IMPROVED for r in comparable)
    worsened = sum(classification(r) is Classification.WORSENED for r in comparable)
    improvements: list[float] = []
    for r in comparable:
        assert r.improvement is not None  # a comparable result always has one
        improvements.append(r.improvement)
    return CohortRow(
        domain=domain,
        timepoint=timepoint,
        criterion=criterion,
        threshold=results[0].threshold,
        n=n,
        improved=improved,
        worsened=worsened,
        not_comparable=len(results) - n,
        share_improved=improved / n if n else None,
        share_improved_ci=wilson_interval(improved, n, confidence) if n else None,
        share_worsened=worsened / n if n else None,
        share_worsened_ci=wilson_interval(worsened, n, confidence) if n else None,
        mean_improvement=mean_interval(improvements, confidence) if n else None,
    )
