"""Graded response model scoring: response-pattern EAP and Lord-Wingersky sum-score tables.

The model, grid and prior are the ones the HealthMeasures scoring service documents and that
reproduce the published PROMIS tables (tests/scoring/fixtures/reference/README.md): Samejima's
graded response model on the logistic metric (D = 1),

    P(value >= j+1 | theta) = 1 / (1 + exp(-a (theta - b_j))),

a theta grid from -6 to 6 in steps of 0.01 and a standard normal prior; T = 50 + 10 * EAP and
SE = 10 * posterior SD. An item's stored value v is GRM category v (1..k); reverse-coded items are
stored already reversed, so nothing here re-reverses.

NumPy stays inside this module: callers pass and get plain tuples and floats.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import numpy.typing as npt

from proms.scoring.types import ItemCalibration

FloatArray = npt.NDArray[np.float64]

# 1201 points, -6.00 .. 6.00; built from integers so every point is the nearest double to k/100.
THETA: FloatArray = np.arange(-600, 601, dtype=np.float64) / 100.0
# log N(0, 1) density up to a constant, which cancels in every posterior below.
_LOG_PRIOR: FloatArray = -0.5 * THETA * THETA

_TENTH = Decimal("0.1")


def round_half_up(value: float) -> float:
    """Round to one decimal, halves away from zero (61.25 -> 61.3), as published tables do.

    Python's round() rounds halves to even (round(61.25, 1) == 61.2), and the official PROMIS
    tables and the reference examples round halves up, so an exact x.x5 would differ by 0.1. The
    float is taken at its shortest repr (the decimal number it prints as), not its binary
    expansion, so 0.15 rounds to 0.2 as a reader of the number would expect.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot round {value!r}")
    return float(Decimal(repr(value)).quantize(_TENTH, rounding=ROUND_HALF_UP))


def t_score(theta: float) -> float:
    """T-score (unrounded) of a theta on the PROMIS metric."""
    return 50.0 + 10.0 * theta


def log_category_probabilities(calibration: ItemCalibration) -> FloatArray:
    """log P(category c | theta) on THETA, shape (k, len(THETA)), categories 1..k as rows 0..k-1.

    Computed without subtracting nearly equal probabilities: with x_j = a (theta - b_j) and
    s(x) = 1 / (1 + exp(-x)),
        P(1) = s(-x_1),  P(k) = s(x_(k-1)),
        P(c) = s(x_(c-1)) - s(x_c) = s(x_(c-1)) s(-x_c) (1 - exp(-a (b_c - b_(c-1)))),
    so every term stays accurate in the tails of the grid (a naive 1 - 0.999... would not).
    """
    a = float(calibration.a)
    b = np.asarray(calibration.thresholds, dtype=np.float64)
    if not a > 0 or b.size == 0 or not np.all(np.diff(b) > 0):
        raise ValueError(
            f"invalid calibration {calibration!r}: need a > 0 and increasing thresholds"
        )
    x = a * (THETA[np.newaxis, :] - b[:, np.newaxis])  # (k-1, G)
    log_s = -np.logaddexp(0.0, -x)  # log s(x_j)
    log_s_neg = -np.logaddexp(0.0, x)  # log s(-x_j) = log(1 - s(x_j))
    k = b.size + 1
    out = np.empty((k, THETA.size), dtype=np.float64)
    out[0] = log_s_neg[0]
    out[k - 1] = log_s[k - 2]
    if k > 2:
        gaps = np.log(-np.expm1(-a * np.diff(b)))  # (k-2,), constant in theta
        out[1 : k - 1] = log_s[:-1] + log_s_neg[1:] + gaps[:, np.newaxis]
    return out


@dataclass(frozen=True, slots=True)
class _FormGrid:
    """Per-form precomputation: log category probabilities of every item, stacked."""

    # (n_items * max_k, G): row i * max_k + (v - 1) is log P(value v of item i | theta); rows
    # past an item's own k are -inf and never selected (values are checked first).
    log_p: FloatArray
    max_k: int
    n_categories: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def _form_grid(calibrations: tuple[ItemCalibration, ...]) -> _FormGrid:
    n_categories = tuple(len(c.thresholds) + 1 for c in calibrations)
    max_k = max(n_categories, default=1)
    log_p = np.full((len(calibrations) * max_k, THETA.size), -np.inf, dtype=np.float64)
    for i, calibration in enumerate(calibrations):
        k = n_categories[i]
        log_p[i * max_k : i * max_k + k] = log_category_probabilities(calibration)
    log_p.flags.writeable = False  # shared by every caller through the cache
    return _FormGrid(log_p=log_p, max_k=max_k, n_categories=n_categories)


def _posterior_moments(log_posterior: FloatArray) -> tuple[float, float]:
    """Mean and SD of theta under exp(log_posterior) (unnormalised) on THETA."""
    weights = np.exp(log_posterior - log_posterior.max())
    total = weights.sum()
    mean = float(THETA @ weights / total)
    deviation = THETA - mean
    variance = float((deviation * deviation) @ weights / total)
    return mean, math.sqrt(variance)


def eap(
    calibrations: Sequence[ItemCalibration], pattern: Sequence[int | float | None]
) -> tuple[float, float]:
    """Expected a posteriori theta and posterior SD from the answered items of a pattern.

    `pattern[i]` is the value of the item calibrated by `calibrations[i]` (GRM category 1..k), or
    None when unanswered; unanswered items do not enter the likelihood. Pass the whole form's
    calibrations every time (not only the answered ones): the per-item grids are cached by form,
    so a call costs a few array operations.
    """
    if len(pattern) != len(calibrations):
        raise ValueError(f"{len(pattern)} values for {len(calibrations)} items")
    grid = _form_grid(tuple(calibrations))
    rows: list[int] = []
    for i, value in enumerate(pattern):
        if value is None:
            continue
        category = int(value) if isinstance(value, int | float) and math.isfinite(value) else 0
        if category != value or not 1 <= category <= grid.n_categories[i]:
            raise ValueError(
                f"item {i}: value {value!r} is not a category 1..{grid.n_categories[i]}"
            )
        rows.append(i * grid.max_k + category - 1)
    if not rows:
        return _posterior_moments(_LOG_PRIOR)
    log_likelihood = grid.log_p[rows].sum(axis=0)
    return _posterior_moments(log_likelihood + _LOG_PRIOR)


@functools.lru_cache(maxsize=64)
def _summed_score_eap(
    calibrations: tuple[ItemCalibration, ...],
) -> dict[int, tuple[float, float]]:
    if not calibrations:
        raise ValueError("a sum-score table needs at least one item")
    grid = _form_grid(calibrations)
    # likelihood[s] = P(sum of values = min_sum + s | theta), built one item at a time
    # (Lord & Wingersky 1984). Probabilities, not logs: the extreme sums shrink to about 1e-140
    # at the far end of the grid for the forms here, well inside the range of a double.
    likelihood = np.ones((1, THETA.size), dtype=np.float64)
    for i, k in enumerate(grid.n_categories):
        p = np.exp(grid.log_p[i * grid.max_k : i * grid.max_k + k])
        grown = np.zeros((likelihood.shape[0] + k - 1, THETA.size), dtype=np.float64)
        for c in range(k):
            grown[c : c + likelihood.shape[0]] += likelihood * p[c]
        likelihood = grown
    min_sum = len(calibrations)  # every item's lowest value is 1
    table: dict[int, tuple[float, float]] = {}
    with np.errstate(divide="ignore"):  # log(0) = -inf where a sum is impossible at a theta
        log_likelihood = np.log(likelihood)
    for s in range(likelihood.shape[0]):
        table[min_sum + s] = _posterior_moments(log_likelihood[s] + _LOG_PRIOR)
    return table


def summed_score_eap(calibrations: Sequence[ItemCalibration]) -> dict[int, tuple[float, float]]:
    """{raw sum: (EAP theta, posterior SD)} given only the sum of all items (unrounded)."""
    return dict(_summed_score_eap(tuple(calibrations)))


def lord_wingersky_table(
    calibrations: Sequence[ItemCalibration],
) -> dict[int, tuple[float, float]]:
    """{raw sum: (T, SE)} for a complete form, T and SE rounded half-up to 0.1.

    The sum-score to T-score table PROMIS publishes is this computation; values run from the
    number of items (all lowest answers) to the highest possible sum.
    """
    return {
        raw: (round_half_up(t_score(theta)), round_half_up(10.0 * sd))
        for raw, (theta, sd) in _summed_score_eap(tuple(calibrations)).items()
    }
