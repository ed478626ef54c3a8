"""Properties of PROMIS scores over generated response patterns, for every reference form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proms.scoring import irt
from proms.scoring.promis import score_promis
from proms.scoring.types import Method, PromisForm
from tests.scoring import reference

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


def patterns(form: PromisForm) -> st.SearchStrategy[list[int | None]]:
    """Any pattern over the form's items in form order (None = unanswered)."""
    return st.tuples(
        *(
            st.one_of(st.none(), st.sampled_from(sorted(form.item_values[item_id])))
            for item_id in form.item_ids
        )
    ).map(list)


def scoreable_incomplete(form: PromisForm) -> st.SearchStrategy[list[int | None]]:
    n = len(form.item_ids)
    return patterns(form).filter(lambda p: form.min_answered <= sum(v is not None for v in p) < n)


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.calibrated_keys))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_pattern_score_lies_within_the_table_range(key: str, data: st.DataObject) -> None:
    form = reference.promis_form(key)
    pattern = data.draw(scoreable_incomplete(form), label="pattern")
    result = score_promis(form, dict(zip(form.item_ids, pattern, strict=True)))

    t_values = [t for t, _ in form.table.values()]
    assert result.method is Method.PATTERN
    assert result.t_score is not None
    assert result.standard_error is not None
    assert min(t_values) - 1 <= result.t_score <= max(t_values) + 1
    assert result.standard_error > 0


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.calibrated_keys))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_eap_rises_with_any_single_item(key: str, data: st.DataObject) -> None:
    """Raising one answer, the others fixed, raises theta (GRM slopes are positive)."""
    form = reference.promis_form(key)
    assert form.calibration is not None
    calibrations = [form.calibration[i] for i in form.item_ids]
    pattern = data.draw(patterns(form), label="others")
    index = data.draw(st.integers(0, len(form.item_ids) - 1), label="item")
    values = sorted(form.item_values[form.item_ids[index]])
    low, high = data.draw(
        st.lists(st.sampled_from(values), min_size=2, max_size=2, unique=True).map(sorted),
        label="values",
    )

    theta_low, sd_low = irt.eap(calibrations, [*pattern[:index], low, *pattern[index + 1 :]])
    theta_high, sd_high = irt.eap(calibrations, [*pattern[:index], high, *pattern[index + 1 :]])

    assert theta_high > theta_low
    assert irt.round_half_up(50 + 10 * theta_high) >= irt.round_half_up(50 + 10 * theta_low)
    assert sd_low > 0
    assert sd_high > 0


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.all_keys))
def test_reference_table_is_monotone_with_positive_se(key: str) -> None:
    rows = reference.table_rows(key)
    raws = [raw for raw, _, _ in rows]
    assert raws == list(range(raws[0], raws[-1] + 1)), "raw sums are not consecutive"
    t_values = [t for _, t, _ in rows]
    assert t_values == sorted(t_values)
    assert all(se > 0 for _, _, se in rows)


@pytest.mark.parametrize("key", reference.parametrize_keys(reference.calibrated_keys))
def test_computed_table_is_monotone_with_positive_se(key: str) -> None:
    form = reference.promis_form(key)
    assert form.calibration is not None
    table = irt.lord_wingersky_table([form.calibration[i] for i in form.item_ids])
    t_values = [table[raw][0] for raw in sorted(table)]
    assert t_values == sorted(t_values)
    assert all(se > 0 for _, se in table.values())
