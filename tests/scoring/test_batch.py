"""Batch CSV scoring: table for complete rows, pattern for incomplete ones, errors per row."""

from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proms.instruments.registry import bundled_registry
from proms.scoring import score
from proms.scoring.batch import OUTPUT_COLUMNS, BatchInputError, parse_value, score_csv
from proms.scoring.types import ScoringError, UnscoredForm

# The bundled definitions: the same forms `proms score` uses.
PI4A = bundled_registry().get("promis-pi-4a").form()
PEG = bundled_registry().get("peg").form()
SIDE = UnscoredForm(
    code="side",
    version="1.0",
    item_ids=("headache",),
    item_values={"headache": frozenset(range(4))},
)
FORMS = {form.code: form for form in (PI4A, PEG, SIDE)}
HEADER = [
    "id",
    "instrument",
    "PAININ9",
    "PAININ22",
    "PAININ31",
    "PAININ34",
    "PEG1",
    "PEG2",
    "PEG3",
    "headache",
]


def run(rows: list[list[str]], header: list[str] = HEADER) -> list[dict[str, str]]:
    source = io.StringIO()
    csv.writer(source).writerows([header, *rows])
    source.seek(0)
    target = io.StringIO()
    score_csv(source, target, FORMS)
    target.seek(0)
    return list(csv.DictReader(target))


def test_mixed_file() -> None:
    out = run(
        [
            ["a", "promis-pi-4a", "3", "2", "4", "3", "", "", "", ""],
            ["b", "promis-pi-4a", "4", "", "", "5", "", "", "", ""],
            ["c", "promis-pi-4a", "4", "", "", "", "", "", "", ""],
            ["d", "peg", "", "", "", "", "3", "4", "4", ""],
            ["e", "peg", "", "", "", "", "3", "", "4", ""],
            ["f", "promis-pi-4a", "3", "2", "9", "3", "", "", "", ""],
            ["g", "unknown-thing", "", "", "", "", "", "", "", ""],
            ["h", "side", "", "", "", "", "", "", "", "3"],
            ["i", "promis-pi-4a", "3", "two", "4", "3", "", "", "", ""],
        ]
    )
    by_id = {row["id"]: row for row in out}
    assert list(out[0]) == [*HEADER, *OUTPUT_COLUMNS]
    assert [by_id["a"][c] for c in OUTPUT_COLUMNS] == ["12", "61.2", "1.8", "4", "table", ""]
    assert [by_id["b"][c] for c in OUTPUT_COLUMNS] == ["", "68.4", "2.5", "2", "pattern", ""]
    assert by_id["c"]["method"] == "none"
    assert "at least 2" in by_id["c"]["error"]
    assert by_id["d"]["raw_score"] == repr(11 / 3)  # the mean, not rounded away
    assert by_id["d"]["method"] == "mean"
    assert by_id["e"]["method"] == "none"
    assert "PEG2" in by_id["e"]["error"]
    assert by_id["f"]["method"] == "none"
    assert "PAININ31" in by_id["f"]["error"]
    assert by_id["g"]["error"] == "unknown instrument 'unknown-thing'"
    assert by_id["h"]["error"] == "this instrument is not scored"
    assert "'two' is not a number" in by_id["i"]["error"]
    assert by_id["i"]["n_answered"] == "1"  # read up to the bad cell


def test_input_columns_are_kept_as_they_were() -> None:
    [row] = run([["  x ", "promis-pi-4a", "1", "1", "1", "1", "", "", "", ""]])
    assert row["id"] == "  x "
    assert row["t_score"] == "41.6"


def test_a_missing_item_column_is_an_error_for_that_instrument_only() -> None:
    header = ["instrument", "PAININ9", "PAININ22", "PAININ31", "PEG1", "PEG2", "PEG3"]
    out = run(
        [["promis-pi-4a", "1", "1", "1", "", "", ""], ["peg", "", "", "", "1", "2", "3"]], header
    )
    assert "no column for item(s) PAININ34" in out[0]["error"]
    assert out[1]["raw_score"] == "2"


def test_blank_lines_are_skipped_and_short_rows_are_unanswered() -> None:
    out = run(
        [[], ["promis-pi-4a", "1", "1"], ["", "", ""]],
        ["instrument", "PAININ9", "PAININ22", "PAININ31", "PAININ34"],
    )
    assert len(out) == 1
    assert out[0]["method"] == "pattern"


def test_a_row_longer_than_the_header_keeps_its_cells_and_says_why() -> None:
    source = io.StringIO("instrument,PEG1,PEG2,PEG3\npeg,1,2,3,surplus\n")
    target = io.StringIO()
    score_csv(source, target, FORMS)
    lines = target.getvalue().splitlines()
    assert lines[1].endswith(",surplus")
    assert "the row has 5 cells, the header 4" in lines[1]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("", None), ("  ", None), ("3", 3), (" 3 ", 3), ("3.0", 3), ("2.5", 2.5), ("-1", -1)],
)
def test_parse_value(cell: str, expected: object) -> None:
    assert parse_value(cell, "X") == expected


@pytest.mark.parametrize("cell", ["abc", "nan", "inf", "1e400", "3,0"])
def test_parse_value_refuses_non_numbers(cell: str) -> None:
    with pytest.raises(ScoringError, match="is not a number"):
        parse_value(cell, "X")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("id,PAININ9\n1,2\n", "no 'instrument' column"),
        ("instrument,method\npeg,x\n", "already has output column(s): method"),
        ('instrument,PEG1\n"peg,1\n', "not a readable CSV"),
    ],
)
def test_unreadable_files_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(BatchInputError, match=re.escape(message)):
        score_csv(io.StringIO(text), io.StringIO(), FORMS)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_batch_fast_paths_agree_with_score(data: st.DataObject) -> None:
    """The table shortcut and the pattern cache give exactly what score() gives, row by row."""
    definition = data.draw(st.sampled_from(list(bundled_registry())))
    form = definition.form()
    cell = st.one_of(
        st.sampled_from(sorted(str(v) for v in form.item_values[form.item_ids[0]])),
        st.sampled_from(["", " ", "2 ", "3.0", "x", "99"]),
    )
    rows = data.draw(
        st.lists(
            st.lists(cell, min_size=len(form.item_ids), max_size=len(form.item_ids)),
            min_size=1,
            max_size=6,
        )
    )
    rows = rows + rows  # the second half comes from the cache
    header = ["instrument", *form.item_ids]
    source = io.StringIO()
    csv.writer(source).writerows([header, *([definition.code, *r] for r in rows)])
    source.seek(0)
    target = io.StringIO()
    score_csv(source, target, {definition.code: form})
    target.seek(0)
    for row, out in zip(rows, csv.DictReader(target), strict=True):
        try:
            answers = {
                item: parse_value(text, item) for item, text in zip(form.item_ids, row, strict=True)
            }
            results = score(form, answers)
        except ScoringError:
            assert out["method"] == "none"
            continue
        if not results:
            assert out["error"] == "this instrument is not scored"
            continue
        expected = results[0]
        assert out["method"] == expected.method.value
        assert out["n_answered"] == str(expected.n_answered)
        for column, value in (
            ("raw_score", expected.raw_score),
            ("t_score", expected.t_score),
            ("se", expected.standard_error),
        ):
            assert (float(out[column]) if out[column] else None) == value
