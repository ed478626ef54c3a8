"""REDCap data dictionary import: header variants, BOM, choices, matching to PROMIS items."""

from __future__ import annotations

import pytest

from proms.instruments.errors import DefinitionImportError, ImportFormatError
from proms.instruments.importer import apply_import, read_import_file
from proms.instruments.model import Option, WordingSource
from proms.instruments.redcap import parse_choices, parse_data_dictionary, plain_text
from proms.instruments.registry import Registry
from tests.instruments.helpers import FIXTURES

TODAY = "2026-11-25"
API_HEADER = (
    "field_name,form_name,section_header,field_type,field_label,"
    "select_choices_or_calculations,field_note,field_annotation\n"
)
CHOICES = '"1, One (test) | 2, Two (test) | 3, Three (test) | 4, Four (test) | 5, Five (test)"'


def _api_dictionary(values: str = CHOICES, ids: tuple[str, ...] = ()) -> str:
    ids = ids or ("painin9", "painin22", "painin31", "painin34")
    rows = [f"{i},pi,,radio,Made-up text {i} (test),{values},," for i in ids]
    return API_HEADER + "\n".join(rows) + "\n"


def test_fixture_reads_with_bom_and_skips_descriptive_and_calc() -> None:
    form = read_import_file(FIXTURES / "promis_pi_4a_redcap.csv")
    assert form.file_format == "redcap"
    assert form.name == "promis_pain_interference_4a"
    assert [i.id for i in form.items] == [
        "promis_painin9",
        "promis_painin22",
        "promis_painin31",
        "promis_painin34",
    ]
    first = form.items[0]
    assert first.text == "Official text for PAININ9 (test)"  # HTML markup dropped
    assert first.options[0] == Option(1, "Option one (test)")
    assert len(first.options) == 5


def test_fixture_import_replaces_pi_4a_wording(registry: Registry) -> None:
    original = registry.get("promis-pi-4a")
    form = read_import_file(FIXTURES / "promis_pi_4a_redcap.csv")
    result = apply_import(registry, form, source="promis_pi_4a_redcap.csv", imported_at=TODAY)
    assert result.key == ("promis-pi-4a", "1.0")
    assert result.item_ids == original.item_ids  # our ids, not REDCap's field names
    assert result.item("PAININ31").text == "Official text for PAININ31 (test)"
    assert result.item("PAININ31").options[2] == Option(3, "Option three (test)")
    assert result.scoring == original.scoring
    assert result.wording.source is WordingSource.OFFICIAL
    assert result.wording.reference == "promis_pi_4a_redcap.csv"
    assert not result.needs_official_wording


def test_api_style_headers_and_uppercase_ids(registry: Registry) -> None:
    text = _api_dictionary(ids=("PAININ9", "PAININ22", "PAININ31", "PAININ34"))
    form = parse_data_dictionary(text)
    result = apply_import(registry, form, source="api.csv", imported_at=TODAY)
    assert result.code == "promis-pi-4a"


def test_redcap_value_mismatch_lists_every_item(registry: Registry) -> None:
    zero_based = '"0, A | 1, B | 2, C | 3, D | 4, E"'
    form = parse_data_dictionary(_api_dictionary(values=zero_based))
    with pytest.raises(DefinitionImportError) as caught:
        apply_import(registry, form, source="x.csv", imported_at=TODAY)
    assert len(caught.value.problems) == 4
    assert caught.value.problems[0] == (
        "item PAININ9 (file: 'painin9'): answer values [0, 1, 2, 3, 4] in the file, "
        "[1, 2, 3, 4, 5] in promis-pi-4a 1.0"
    )


def test_several_forms_need_a_choice() -> None:
    text = API_HEADER + 'a,form_one,,radio,A,"1, x | 2, y",,\nb,form_two,,yesno,B,,,\n'
    with pytest.raises(ImportFormatError, match=r"holds 2 forms \(form_one, form_two\)"):
        parse_data_dictionary(text)
    form = parse_data_dictionary(text, "form_two")
    assert form.items[0].options == (Option(1, "Yes"), Option(0, "No"))
    with pytest.raises(ImportFormatError, match="no form 'form_three'"):
        parse_data_dictionary(text, "form_three")


def test_record_id_and_text_fields() -> None:
    text = API_HEADER + (
        "record_id,f,,text,Record ID,,,\n"
        'q1,f,,dropdown,Q1,"1, a | 2, b",,LOINC: 12345-6\n'
        "q2,f,,text,Other (specify),,,\n"
        'q3,f,,checkbox,Q3,"1, a | 2, b",,\n'
    )
    items = parse_data_dictionary(text).items
    assert [i.id for i in items] == ["q1", "q2", "q3"]
    assert items[0].loinc == "12345-6"
    assert items[1].problem == "field type 'text' has no choices"
    assert "several answers" in items[2].problem


def test_parse_choices() -> None:
    assert parse_choices("1, Not at all | 2, A little, really |3,x") == (
        (Option(1, "Not at all"), Option(2, "A little, really"), Option(3, "x")),
        "",
    )
    assert parse_choices("a, Yes | b, No") == (
        (),
        "choice codes that are not whole numbers: 'a', 'b'",
    )
    assert parse_choices("") == ((), "no choices")


def test_plain_text() -> None:
    assert plain_text("<div>How <b>much</b>&nbsp;pain?</div>") == "How much pain?"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b,c\n1,2,3\n", "not a REDCap data dictionary: no column for field_name"),
        (API_HEADER + "intro,f,,descriptive,Hello,,,\n", "has no questions"),
    ],
)
def test_not_a_data_dictionary(text: str, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        parse_data_dictionary(text)
