"""Plain, frozen values that the scoring functions take and return."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# An answer as stored: the item's scored value, or None when the item was not answered.
Answer = int | float | None


class Method(enum.StrEnum):
    """How a score was obtained (a column of `proms score` output)."""

    TABLE = "table"  # official sum-score -> T-score table, complete form
    PATTERN = "pattern"  # response-pattern EAP under the graded response model, incomplete form
    SUM = "sum"
    MEAN = "mean"
    NONE = "none"  # no score: see ScoreResult.error


class Direction(enum.StrEnum):
    HIGHER_IS_WORSE = "higher_is_worse"
    HIGHER_IS_BETTER = "higher_is_better"


@dataclass(frozen=True, slots=True)
class ItemCalibration:
    """Graded response model parameters of one item.

    P(category >= j+1 | theta) = 1 / (1 + exp(-a (theta - b_j))), categories 1..k, where an
    item's stored value v is GRM category v (reverse-coded items are stored already reversed).
    """

    a: float
    thresholds: tuple[float, ...]  # b_1 < b_2 < ... < b_(k-1)


@dataclass(frozen=True, slots=True)
class PromisForm:
    """A PROMIS short form: scored from its table when complete, by pattern when not."""

    code: str
    version: str
    item_ids: tuple[str, ...]  # in on-form order
    item_values: Mapping[str, frozenset[int]]  # the values each item may take
    table: Mapping[int, tuple[float, float]]  # raw sum -> (T, SE), every possible raw sum
    # Calibrations of every item, or None when the form can only be scored complete.
    calibration: Mapping[str, ItemCalibration] | None = None
    no_calibration_reason: str = ""

    @property
    def min_answered(self) -> int:
        """At least half of the items must be answered for a pattern score."""
        return (len(self.item_ids) + 1) // 2


@dataclass(frozen=True, slots=True)
class Scale:
    """One score of a summed instrument (PASS-20: a total and four subscales)."""

    key: str
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SummedForm:
    """A sum or mean of item values per scale; every item of a scale must be answered."""

    code: str
    version: str
    method: Method  # Method.SUM or Method.MEAN
    scales: tuple[Scale, ...]
    item_values: Mapping[str, frozenset[int | float]]
    missing_rule: str = "complete answers required (no published missing-item rule)"

    @property
    def item_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for scale in self.scales:
            seen.update(dict.fromkeys(scale.item_ids))
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class UnscoredForm:
    """A checklist that has answers but no score (e.g. infusion side effects)."""

    code: str
    version: str
    item_ids: tuple[str, ...]
    item_values: Mapping[str, frozenset[int | float]] = field(default_factory=dict)


Form = PromisForm | SummedForm | UnscoredForm


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One scale's score. `error` says why there is none (method is then Method.NONE)."""

    scale: str
    method: Method
    n_answered: int
    n_items: int
    raw_score: float | None = None
    t_score: float | None = None
    standard_error: float | None = None
    error: str = ""


class ScoringError(ValueError):
    """The answers cannot be scored at all (unknown item, a value the item cannot take)."""
