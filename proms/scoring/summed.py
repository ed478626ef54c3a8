"""Summed instruments (PASS-20, PEG): a sum or a mean per scale, and `score` for any form.

No missing-item rule has been published for PASS-20 (McCracken & Dhingra 2002) or PEG (Krebs et
al. 2009, score = mean of the three items), so a scale is scored only when every one of its items
is answered; otherwise it has no score and the reason lists the missing items. The rule is the
form's `missing_rule`, shown in that reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from proms.scoring.promis import score_promis, validate_answers
from proms.scoring.types import (
    Answer,
    Form,
    Method,
    PromisForm,
    ScoreResult,
    ScoringError,
    SummedForm,
    UnscoredForm,
)


def score_summed(form: SummedForm, answers: Mapping[str, Answer]) -> tuple[ScoreResult, ...]:
    """One result per scale, in the form's order: the sum (Method.SUM) or mean (Method.MEAN).

    The mean keeps full precision ((3 + 4 + 4) / 3 stays 3.666...): rounding is for display.
    """
    if form.method not in (Method.SUM, Method.MEAN):
        raise ScoringError(
            f"{form.code} {form.version}: a summed form is scored by sum or mean, "
            f"not {form.method!s}"
        )
    values = validate_answers(form, answers)
    results: list[ScoreResult] = []
    for scale in form.scales:
        if not scale.item_ids:
            raise ScoringError(f"{form.code} {form.version}: scale {scale.key!r} has no items")
        scale_values = [values[item_id] for item_id in scale.item_ids]
        answered = [v for v in scale_values if v is not None]
        missing = [
            item_id for item_id, v in zip(scale.item_ids, scale_values, strict=True) if v is None
        ]
        n_items = len(scale.item_ids)
        if missing:
            results.append(
                ScoreResult(
                    scale=scale.key,
                    method=Method.NONE,
                    n_answered=len(answered),
                    n_items=n_items,
                    error=(
                        f"{len(missing)} of {n_items} items missing ({', '.join(missing)}); "
                        f"{form.missing_rule}"
                    ),
                )
            )
            continue
        if form.method is Method.SUM:
            # Exact for whole numbers (sum of ints); fsum keeps fractional values exact-rounded.
            raw: float = (
                sum(int(v) for v in answered)
                if all(isinstance(v, int) for v in answered)
                else math.fsum(answered)
            )
        else:
            raw = math.fsum(answered) / len(answered)
        results.append(
            ScoreResult(
                scale=scale.key,
                method=form.method,
                n_answered=len(answered),
                n_items=n_items,
                raw_score=raw,
            )
        )
    return tuple(results)


def score(form: Form, answers: Mapping[str, Answer]) -> tuple[ScoreResult, ...]:
    """Score any form: one result per scale (none for an unscored checklist, which is validated)."""
    if isinstance(form, PromisForm):
        return (score_promis(form, answers),)
    if isinstance(form, SummedForm):
        return score_summed(form, answers)
    if isinstance(form, UnscoredForm):
        validate_answers(form, answers)
        return ()
    raise TypeError(f"not a form: {form!r}")
