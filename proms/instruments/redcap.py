"""Read a REDCap data dictionary (CSV, as REDCap and its Shared Library export it).

Column headers vary between REDCap versions and the API ("Variable / Field Name" or
"field_name", "Choices, Calculations, OR Slider Labels" or "select_choices_or_calculations" ...),
so headers are matched after dropping case and punctuation. Files often start with a UTF-8 BOM.
Radio and dropdown choices read "1, Not at all | 2, A little bit"; yesno and truefalse fields
have REDCap's fixed choices. Descriptive and calculated fields are not questions and are skipped.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Mapping

from proms.instruments.errors import ImportFormatError
from proms.instruments.model import ImportedForm, ImportedItem, Option

_HEADERS = {
    "field_name": ("variablefieldname", "fieldname"),
    "form_name": ("formname",),
    "field_type": ("fieldtype",),
    "field_label": ("fieldlabel",),
    "choices": (
        "choicescalculationsorsliderlabels",
        "choicesorcalculations",
        "selectchoicesorcalculations",
        "choices",
    ),
    "annotation": ("fieldannotation",),
}
_REQUIRED = ("field_name", "field_type", "field_label", "choices")

_CHOICE_TYPES = frozenset({"radio", "dropdown", "checkbox"})
_FIXED_CHOICES = {
    "yesno": (Option(1, "Yes"), Option(0, "No")),
    "truefalse": (Option(1, "True"), Option(0, "False")),
}
_SKIPPED_TYPES = frozenset({"descriptive", "calc", "file", "sql"})
_LOINC = re.compile(r"LOINC\W{0,3}([0-9]{1,7}-[0-9])", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _columns(header: list[str]) -> dict[str, int]:
    positions = {_key(name): i for i, name in enumerate(header)}
    columns: dict[str, int] = {}
    for field, aliases in _HEADERS.items():
        for alias in aliases:
            if alias in positions:
                columns[field] = positions[alias]
                break
    missing = [field for field in _REQUIRED if field not in columns]
    if missing:
        raise ImportFormatError(
            "not a REDCap data dictionary: no column for "
            + ", ".join(missing)
            + f" (header: {', '.join(header)})"
        )
    return columns


def plain_text(label: str) -> str:
    """A REDCap label without its HTML markup and entities."""
    return " ".join(html.unescape(_TAG.sub(" ", label)).split())


def parse_choices(text: str) -> tuple[tuple[Option, ...], str]:
    """Options from "1, Not at all | 2, A little bit", and a problem when they are unreadable."""
    options: list[Option] = []
    bad: list[str] = []
    for part in text.split("|"):
        if not part.strip():
            continue
        code, _, label = part.partition(",")
        code = code.strip()
        if not re.fullmatch(r"-?[0-9]+", code):
            bad.append(code or part.strip())
            continue
        options.append(Option(int(code), plain_text(label) or code))
    if bad:
        return (), f"choice codes that are not whole numbers: {', '.join(map(repr, bad))}"
    if not options:
        return (), "no choices"
    return tuple(options), ""


def _cell(row: list[str], columns: Mapping[str, int], field: str) -> str:
    index = columns.get(field)
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def parse_data_dictionary(text: str, form_name: str | None = None) -> ImportedForm:
    """Read one instrument (form) from a REDCap data dictionary.

    A dictionary holding several forms needs `form_name`; the error lists the forms it holds.
    """
    text = text.removeprefix("\ufeff")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise ImportFormatError("the REDCap data dictionary is empty")
    columns = _columns([cell.removeprefix("\ufeff") for cell in rows[0]])
    body = rows[1:]
    forms = list(dict.fromkeys(_cell(row, columns, "form_name") for row in body))
    if form_name is None:
        if len(forms) > 1:
            raise ImportFormatError(
                f"the data dictionary holds {len(forms)} forms ({', '.join(forms)}); choose one"
            )
        form_name = forms[0] if forms else ""
    elif form_name not in forms:
        raise ImportFormatError(f"no form {form_name!r} (forms: {', '.join(forms)})")

    items: list[ImportedItem] = []
    for position, row in enumerate(body):
        if _cell(row, columns, "form_name") != form_name:
            continue
        name = _cell(row, columns, "field_name")
        field_type = _cell(row, columns, "field_type").lower()
        if not name or field_type in _SKIPPED_TYPES:
            continue
        if position == 0 and name == "record_id":
            continue  # a whole project's dictionary starts with the record id
        label = plain_text(_cell(row, columns, "field_label"))
        match = _LOINC.search(_cell(row, columns, "annotation"))
        loinc = match.group(1) if match else None
        if field_type in _FIXED_CHOICES:
            items.append(ImportedItem(name, label, _FIXED_CHOICES[field_type], loinc))
        elif field_type in _CHOICE_TYPES:
            options, problem = parse_choices(_cell(row, columns, "choices"))
            if field_type == "checkbox" and not problem:
                problem = "a checkbox field allows several answers"
                options = ()
            items.append(ImportedItem(name, label, options, loinc, problem))
        else:
            items.append(
                ImportedItem(name, label, (), loinc, f"field type {field_type!r} has no choices")
            )
    if not items:
        raise ImportFormatError(f"form {form_name!r} has no questions")
    title = form_name.replace("_", " ").strip().capitalize() or "REDCap instrument"
    return ImportedForm(
        file_format="redcap",
        name=form_name or "redcap_instrument",
        title=title,
        items=tuple(items),
    )
