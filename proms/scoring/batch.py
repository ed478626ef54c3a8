"""Score a CSV of completed questionnaires, one row at a time (memory does not grow with rows).

Input: a header row with an `instrument` column (a bundled or imported instrument code), an
optional `id` column, and one column per item ID holding the item's scored value; a blank cell
is an unanswered item. Output: every input column, then raw_score, t_score, se, n_answered,
method and error. A row that cannot be scored says why in `error`; it never stops the file.
"""

from __future__ import annotations

import csv
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from proms.scoring.summed import score
from proms.scoring.types import Answer, Form, Method, PromisForm, ScoreResult, ScoringError

OUTPUT_COLUMNS = ("raw_score", "t_score", "se", "n_answered", "method", "error")


class BatchInputError(ValueError):
    """The file as a whole cannot be read (no header, no instrument column, not CSV text)."""


@dataclass
class BatchSummary:
    rows: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


# Distinct answer patterns remembered per instrument; bounded so memory stays flat in rows.
CACHE_LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read one instrument's items out of a row of this file."""

    form: Form
    columns: tuple[tuple[str, int], ...]  # (item id, column index)
    missing_columns: tuple[str, ...]
    # The item cells of a row as one hashable value (the key of `cache`).
    cells_of: Callable[[list[str]], object]
    # Complete PROMIS rows, the common case: each cell's exact text -> value, and the output
    # cells of every raw sum, straight from the form's table (the same numbers score() gives).
    fast: bool = False
    fast_values: dict[str, int] = field(default_factory=dict)
    table_cells: dict[int, list[str]] = field(default_factory=dict)
    # Everything else: results by the cells' text (scoring is a pure function of the answers).
    cache: dict[object, list[str]] = field(default_factory=dict)


def _no_cells(row: list[str]) -> object:
    return ()


def _plan(form: Form, position: Mapping[str, int]) -> _Plan:
    columns = tuple((item, position[item]) for item in form.item_ids if item in position)
    missing = tuple(item for item in form.item_ids if item not in position)
    # itemgetter of two or more indices returns a tuple; of one, the cell itself.
    cells_of: Callable[[list[str]], object] = (
        operator.itemgetter(*(index for _, index in columns)) if columns else _no_cells
    )
    if not isinstance(form, PromisForm) or missing or len(columns) < 2:
        return _Plan(form, columns, missing, cells_of)
    value_sets = {form.item_values[item] for item in form.item_ids}
    if len(value_sets) != 1:  # items answered on different scales: the general path
        return _Plan(form, columns, missing, cells_of)
    (values,) = value_sets
    n_items = str(len(form.item_ids))
    table_cells = {
        raw: [str(raw), _format(t), _format(se), n_items, Method.TABLE.value, ""]
        for raw, (t, se) in form.table.items()
    }
    return _Plan(
        form, columns, missing, cells_of, True, {str(value): value for value in values}, table_cells
    )


def parse_value(cell: str, item_id: str) -> Answer:
    """A cell as an answer: blank is unanswered; '3' and '3.0' are 3; anything else is an error."""
    text = cell.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ScoringError(f"{item_id}: {text!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite
        raise ScoringError(f"{item_id}: {text!r} is not a number")
    return int(number) if number.is_integer() else number


def _format(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _result_cells(result: ScoreResult) -> list[str]:
    return [
        _format(result.raw_score),
        _format(result.t_score),
        _format(result.standard_error),
        str(result.n_answered),
        result.method.value,
        result.error,
    ]


def _no_score(error: str, n_answered: int = 0) -> list[str]:
    return ["", "", "", str(n_answered), Method.NONE.value, error]


def _score_row(plan: _Plan, row: list[str]) -> list[str]:
    if plan.missing_columns:
        return _no_score("the file has no column for item(s) " + ", ".join(plan.missing_columns))
    if not plan.columns:
        return _no_score("the file has no column for any item of this instrument")
    key = plan.cells_of(row)
    if plan.fast:
        try:
            # Every cell exactly a valid value (no blank, no spaces): the table answers.
            total = sum(map(plan.fast_values.__getitem__, key))  # type: ignore[call-overload]
        except KeyError:
            pass
        else:
            cells = plan.table_cells.get(total)
            if cells is not None:
                return cells
    cells = plan.cache.get(key)
    if cells is not None:
        return cells
    answers: dict[str, Answer] = {}
    try:
        for item_id, index in plan.columns:
            answers[item_id] = parse_value(row[index], item_id)
        results = score(plan.form, answers)
    except ScoringError as exc:
        answered = sum(1 for value in answers.values() if value is not None)
        cells = _no_score(str(exc), answered)
    else:
        # The total (first scale); subscales are in the app.
        cells = _result_cells(results[0]) if results else _no_score("this instrument is not scored")
    if len(plan.cache) >= CACHE_LIMIT:
        plan.cache.clear()
    plan.cache[key] = cells
    return cells


def score_rows(
    rows: Iterable[list[str]], forms: Mapping[str, Form], counts: Counter[str] | None = None
) -> Iterator[list[str]]:
    """Yield the header and then each scored row. The first row must be the header.

    `counts`, when given, counts the rows by method.
    """
    counts = Counter() if counts is None else counts
    iterator = iter(rows)
    header = next(iterator, None)
    if not header:
        raise BatchInputError(
            "the file is empty: expected a header row with an 'instrument' column"
        )
    names = [name.strip() for name in header]
    if "instrument" not in names:
        raise BatchInputError("the header has no 'instrument' column")
    clash = sorted(set(names) & set(OUTPUT_COLUMNS))
    if clash:
        raise BatchInputError(f"the input already has output column(s): {', '.join(clash)}")
    instrument_index = names.index("instrument")
    position = {name: index for index, name in enumerate(names)}
    plans: dict[str, _Plan] = {}
    yield [*header, *OUTPUT_COLUMNS]
    width = len(header)
    for row in iterator:
        if (len(row) != width or not row[instrument_index]) and not any(
            cell.strip() for cell in row
        ):
            continue  # a blank line is not a questionnaire
        if len(row) < width:
            row = [*row, *[""] * (width - len(row))]  # keep the output columns aligned
        elif len(row) > width:
            # Never drop a cell: the extras follow the output columns, and the row says why.
            counts[Method.NONE.value] += 1
            yield [
                *row[:width],
                *_no_score(f"the row has {len(row)} cells, the header {width}"),
                *row[width:],
            ]
            continue
        code = row[instrument_index]
        plan = plans.get(code)
        if plan is None:
            code = code.strip()
            plan = plans.get(code)
        if plan is None:
            form = forms.get(code)
            if form is None:
                counts[Method.NONE.value] += 1
                yield [*row, *_no_score(f"unknown instrument {code!r}")]
                continue
            plan = plans[code] = plans[row[instrument_index]] = _plan(form, position)
        cells = _score_row(plan, row)
        counts[cells[4]] += 1
        row += cells  # the reader made this list for us alone
        yield row


def score_csv(source: TextIO, target: TextIO, forms: Mapping[str, Form]) -> BatchSummary:
    """Read CSV from source, write scored CSV to target; returns counts by method."""
    counts: Counter[str] = Counter()
    writer = csv.writer(target, lineterminator="\n")
    try:
        writer.writerows(score_rows(csv.reader(source, strict=True), forms, counts))
    except csv.Error as exc:
        raise BatchInputError(f"not a readable CSV file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise BatchInputError("the file is not UTF-8 text") from exc
    return BatchSummary(rows=sum(counts.values()), by_method=dict(counts))
