"""Change from baseline: meaningful by a published threshold, and reliable for one patient.

Two questions, answered separately (docs/scoring.md, "Meaningful change" and "Reliable change"):

- Did the score move by at least a minimal important difference? Thresholds are data with a
  source and an evidence status (e.g. 2-6 T for PROMIS, Terwee et al. Qual Life Res 2021;
  >= 30% for 0-10 pain, IMMPACT, Dworkin et al. J Pain 2008), never constants in this module.
- Is the change larger than measurement error for this patient? The reliable change index
  RC = (x2 - x1) / sqrt(SE1^2 + SE2^2) with each score's own standard error (Jacobson & Truax,
  J Consult Clin Psychol 1991; applied to PROMIS T-scores by Hays, Spritzer & Reise).

Group-level MIDs are averages, so an individual patient is flagged only when both hold.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from proms.scoring.types import Direction

# Two-sided 5% criterion of the reliable change index (Jacobson & Truax 1991).
RELIABLE_CHANGE_Z = 1.96

# IMMPACT's cut for a moderately important improvement in pain intensity (Dworkin et al. 2008).
MODERATE_PERCENT = 30.0

UNITS = frozenset({"T", "points", "percent"})

# Scores are differences of one-decimal numbers: 66.6 - 63.6 is 2.9999999999999964 in binary
# floating point, and a change of exactly the threshold must count.
_TOLERANCE = 1e-9


class Classification(enum.StrEnum):
    IMPROVED = "improved"
    WORSENED = "worsened"
    NO_CHANGE = "no meaningful change"
    NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True, slots=True)
class Threshold:
    """A meaningful-change threshold with the literature it comes from.

    `unit` is "T" or "points" (an absolute change in the score's own units) or "percent" (change
    relative to baseline). `substantial` is the percent cut for a substantial improvement
    (IMMPACT: 50), or None.
    """

    value: float
    unit: str
    source: str
    evidence: str
    substantial: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(
                f"threshold unit {self.unit!r} is not one of {', '.join(sorted(UNITS))}"
            )
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"threshold value must be a positive number, not {self.value!r}")
        if self.substantial is not None:
            if self.unit != "percent":
                raise ValueError("a substantial-improvement cut applies to percent thresholds only")
            if not (math.isfinite(self.substantial) and self.substantial >= self.value):
                raise ValueError(
                    f"substantial cut {self.substantial!r} must be at least the threshold "
                    f"{self.value!r}"
                )


@dataclass(frozen=True, slots=True)
class Measurement:
    """One scale's score at one time: the T-score for PROMIS, else the raw score."""

    instrument_code: str
    instrument_version: str
    scale: str
    value: float
    standard_error: float | None

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"{self.instrument_code} {self.scale}: score must be finite")
        if self.standard_error is not None and not (
            math.isfinite(self.standard_error) and self.standard_error > 0
        ):
            raise ValueError(
                f"{self.instrument_code} {self.scale}: standard error must be a positive number, "
                f"not {self.standard_error!r}"
            )


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """The change between two measurements, classified two ways, naming the threshold used.

    `improvement` is in the instrument's own direction (positive = better); the reliable change
    index is in the raw direction (negative = lower score). `reason` says why a classification is
    "not comparable", or is "".
    """

    baseline: Measurement | None
    current: Measurement
    improvement: float | None
    percent_improvement: float | None
    reliable_change_index: float | None
    by_threshold: Classification
    by_individual: Classification
    level: str | None
    threshold: Threshold
    reason: str


def _at_least(x: float, bound: float) -> bool:
    return x >= bound or math.isclose(x, bound, rel_tol=0.0, abs_tol=_TOLERANCE)


def _mismatch(baseline: Measurement, current: Measurement) -> str:
    differences = [
        f"{label} differs ({before!r} at baseline, {after!r} now)"
        for label, before, after in (
            ("instrument code", baseline.instrument_code, current.instrument_code),
            ("instrument version", baseline.instrument_version, current.instrument_version),
            ("scale", baseline.scale, current.scale),
        )
        if before != after
    ]
    return "; ".join(differences)


def reliable_change_index(baseline: Measurement, current: Measurement) -> float | None:
    """RC = (x2 - x1) / sqrt(SE1^2 + SE2^2), or None without both standard errors.

    Jacobson & Truax 1991, with each score's own SE as Hays et al. do for IRT-scored PROMIS.
    """
    if baseline.standard_error is None or current.standard_error is None:
        return None
    spread = math.hypot(baseline.standard_error, current.standard_error)
    return (current.value - baseline.value) / spread


def _by_threshold(
    improvement: float, percent: float | None, threshold: Threshold
) -> Classification:
    change = improvement if threshold.unit != "percent" else percent
    assert change is not None  # callers settle a percent change from 0 before this
    if _at_least(change, threshold.value):
        return Classification.IMPROVED
    if _at_least(-change, threshold.value):
        return Classification.WORSENED
    return Classification.NO_CHANGE


def _level(percent: float, threshold: Threshold) -> str | None:
    if threshold.substantial is not None and _at_least(percent, threshold.substantial):
        return "substantial"
    if _at_least(percent, MODERATE_PERCENT):
        return "moderate"
    return None


def _missing_se(baseline: Measurement, current: Measurement) -> str:
    missing = [
        when
        for when, m in (("baseline", baseline), ("current", current))
        if m.standard_error is None
    ]
    return (
        f"reliable change needs a standard error for both scores (none for {' and '.join(missing)})"
    )


def classify_change(
    baseline: Measurement | None,
    current: Measurement,
    *,
    direction: Direction,
    threshold: Threshold,
) -> ChangeResult:
    """Classify the change from baseline by the threshold, and for the individual patient.

    By threshold: improved when the improvement (absolute, or percent of baseline for percent
    thresholds) is at least the threshold, worsened when it is at most minus the threshold.
    Individually: the same, and also |RC| >= 1.96 in the same direction (Jacobson & Truax 1991);
    not comparable without both standard errors. Percent improvements of at least 30% are
    "moderate" and of at least `threshold.substantial` "substantial" (IMMPACT, Dworkin et al.
    J Pain 2008; Farrar et al. Pain 2001).
    """

    def not_comparable(
        reason: str,
        improvement: float | None = None,
        rc: float | None = None,
    ) -> ChangeResult:
        return ChangeResult(
            baseline=baseline,
            current=current,
            improvement=improvement,
            percent_improvement=None,
            reliable_change_index=rc,
            by_threshold=Classification.NOT_COMPARABLE,
            by_individual=Classification.NOT_COMPARABLE,
            level=None,
            threshold=threshold,
            reason=reason,
        )

    if baseline is None:
        return not_comparable("no baseline")
    mismatch = _mismatch(baseline, current)
    if mismatch:
        return not_comparable(mismatch)

    raw_change = current.value - baseline.value
    improvement = -raw_change if direction is Direction.HIGHER_IS_WORSE else raw_change
    rc = reliable_change_index(baseline, current)

    percent: float | None = None
    if threshold.unit == "percent":
        if baseline.value == 0:
            return not_comparable(
                "percent change from a baseline of 0 is undefined", improvement, rc
            )
        if baseline.value < 0:
            return not_comparable(
                "percent change from a negative baseline is undefined", improvement, rc
            )
        percent = 100.0 * improvement / baseline.value

    by_threshold = _by_threshold(improvement, percent, threshold)
    level = None
    if percent is not None and by_threshold is Classification.IMPROVED:
        level = _level(percent, threshold)

    reason = ""
    if rc is None:
        by_individual = Classification.NOT_COMPARABLE
        reason = _missing_se(baseline, current)
    else:
        # RC is in the raw direction; turn it so that positive means better, like improvement.
        rc_improving = -rc if direction is Direction.HIGHER_IS_WORSE else rc
        by_individual = Classification.NO_CHANGE
        if _at_least(abs(rc), RELIABLE_CHANGE_Z):
            if by_threshold is Classification.IMPROVED and rc_improving > 0:
                by_individual = Classification.IMPROVED
            elif by_threshold is Classification.WORSENED and rc_improving < 0:
                by_individual = Classification.WORSENED

    return ChangeResult(
        baseline=baseline,
        current=current,
        improvement=improvement,
        percent_improvement=percent,
        reliable_change_index=rc,
        by_threshold=by_threshold,
        by_individual=by_individual,
        level=level,
        threshold=threshold,
        reason=reason,
    )


def is_meaningful_worsening(change: ChangeResult) -> bool:
    """Whether one patient's change from baseline is a worsening the care team should act on.

    The individual criterion (threshold and reliable change) where both scores have standard
    errors; the instrument's threshold alone where they cannot have one (summed and mean
    scores). Never without a comparable baseline.
    """
    if change.by_individual is Classification.WORSENED:
        return True
    return (
        change.by_individual is Classification.NOT_COMPARABLE
        and change.reliable_change_index is None
        and change.baseline is not None
        and change.by_threshold is Classification.WORSENED
    )
