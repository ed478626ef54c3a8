"""PROMIS short forms: the official table for complete forms, response-pattern EAP otherwise."""

from __future__ import annotations

import math
from collections.abc import Mapping

from proms.scoring import irt
from proms.scoring.types import (
    Answer,
    Form,
    ItemCalibration,
    Method,
    PromisForm,
    ScoreResult,
    ScoringError,
    UnscoredForm,
)

SCALE = "total"
_DEFAULT_NO_CALIBRATION = "no item calibrations are available for this form"


def _allowed_values(form: Form, item_id: str) -> frozenset[int | float] | None:
    """The values an item may take, or None when any number is accepted.

    Only an unscored checklist may leave an item's values open; for a scored form a missing
    entry is a definition error, reported as "cannot take value".
    """
    values = form.item_values.get(item_id)
    if values is None and isinstance(form, UnscoredForm):
        return None
    return frozenset(values or ())


def _is_number(value: object) -> bool:
    # bool is an int subclass and True == 1, so a stray True would pass `in {1, 2, ...}`.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_answers(form: Form, answers: Mapping[str, Answer]) -> dict[str, Answer]:
    """Every item of the form in form order with its value (None = unanswered).

    Raises ScoringError naming every answer to an item the form does not have and every value
    an item cannot take; a key that is missing from `answers` means the item was not answered.
    """
    known = set(form.item_ids)
    problems = [f"unknown item {item_id!r}" for item_id in answers if item_id not in known]
    values: dict[str, Answer] = {}
    for item_id in form.item_ids:
        value = answers.get(item_id)
        values[item_id] = value
        if value is None:
            continue
        allowed = _allowed_values(form, item_id)
        if not _is_number(value) or (allowed is not None and value not in allowed):
            if allowed is None:
                shown = "a finite number"
            else:
                shown = ", ".join(str(v) for v in sorted(allowed)) or "none defined"
            problems.append(f"item {item_id!r} cannot take value {value!r} (allowed: {shown})")
    if problems:
        raise ScoringError(f"{form.code} {form.version}: " + "; ".join(problems))
    return values


def _calibrations(form: PromisForm) -> tuple[ItemCalibration, ...]:
    assert form.calibration is not None
    missing = [item_id for item_id in form.item_ids if item_id not in form.calibration]
    if missing:
        raise ScoringError(
            f"{form.code} {form.version}: no calibration for item(s) {', '.join(missing)}"
        )
    return tuple(form.calibration[item_id] for item_id in form.item_ids)


def score_promis(form: PromisForm, answers: Mapping[str, Answer]) -> ScoreResult:
    """Score a PROMIS short form ("total" scale).

    Complete: the raw sum looked up in the form's table (Method.TABLE). Incomplete with at least
    `form.min_answered` answers: response-pattern EAP over the answered items (Method.PATTERN),
    as HealthMeasures recommends; raw_score is then None, because the sum of an incomplete form
    is not on the table's scale and a prorated sum would be a guess. Otherwise Method.NONE with
    the reason in `error`.
    """
    values = validate_answers(form, answers)
    n_items = len(form.item_ids)
    answered = [int(v) for v in values.values() if v is not None]  # validated: whole numbers
    n_answered = len(answered)

    if n_answered == n_items:
        raw = sum(answered)
        if raw not in form.table:
            raise ScoringError(
                f"{form.code} {form.version}: raw score {raw} is not in the scoring table "
                "(the table is incomplete)"
            )
        t, se = form.table[raw]
        return ScoreResult(
            scale=SCALE,
            method=Method.TABLE,
            n_answered=n_answered,
            n_items=n_items,
            raw_score=raw,
            t_score=t,
            standard_error=se,
        )

    if form.calibration is None:
        # Checked before the count: with no calibration no incomplete form can ever be scored,
        # which is the more useful thing to tell the reader.
        reason = form.no_calibration_reason or _DEFAULT_NO_CALIBRATION
        return ScoreResult(
            scale=SCALE,
            method=Method.NONE,
            n_answered=n_answered,
            n_items=n_items,
            error=(
                f"only {n_answered} of {n_items} items answered and this form can only be "
                f"scored complete: {reason}"
            ),
        )

    if n_answered < form.min_answered:
        return ScoreResult(
            scale=SCALE,
            method=Method.NONE,
            n_answered=n_answered,
            n_items=n_items,
            error=(
                f"only {n_answered} of {n_items} items answered; at least "
                f"{form.min_answered} are needed for a score"
            ),
        )

    pattern = [None if v is None else int(v) for v in values.values()]
    theta, posterior_sd = irt.eap(_calibrations(form), pattern)
    return ScoreResult(
        scale=SCALE,
        method=Method.PATTERN,
        n_answered=n_answered,
        n_items=n_items,
        raw_score=None,
        t_score=irt.round_half_up(irt.t_score(theta)),
        standard_error=irt.round_half_up(10.0 * posterior_sd),
    )
