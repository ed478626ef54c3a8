"""The WTForms form classes of proms, and which of them a page's form is.

A page shows only the fields that apply (a clinic select for someone in several clinics, a
"Save" button after a preview), so the fuzzer also sends the other fields of the class the page
form belongs to: a field a page hides is fuzzed too.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from pathlib import Path

from flask_wtf import FlaskForm
from wtforms.fields.core import UnboundField

import proms

# Names too common to tell one form from another.
GENERIC = {"page", "save", "preview", "next", "submit", "csrf_token", "clinic", "clinic_id"}


@functools.cache
def form_classes() -> tuple[type[FlaskForm], ...]:
    """Every FlaskForm subclass defined at the top level of a proms module."""
    for module in pkgutil.walk_packages(proms.__path__, "proms."):
        importlib.import_module(module.name)
    found: list[type[FlaskForm]] = []
    pending = list(FlaskForm.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        module = importlib.import_module(cls.__module__)
        if getattr(module, cls.__name__, None) is cls and cls.__module__.startswith("proms."):
            found.append(cls)
    return tuple(sorted(set(found), key=lambda c: (c.__module__, c.__name__)))


def field_names(cls: type[FlaskForm]) -> frozenset[str]:
    return frozenset(
        name
        for name in dir(cls)
        if isinstance(getattr(cls, name, None), UnboundField) and name != "csrf_token"
    )


def _base(name: str) -> str:
    """The field a page name stands for: timepoints-0-key -> timepoints (a FieldList entry),
    day1-notes -> notes (a form with a prefix)."""
    first, _, rest = name.partition("-")
    if rest and re.fullmatch(r"[a-z]+[0-9]+", first):
        return rest
    return first


def classes_of(names: set[str]) -> list[type[FlaskForm]]:
    """The form classes a page form with these field names is most likely an instance of: those
    whose fields overlap most with what the page sends (pages add a field or two of their own,
    e.g. `back`, and leave some out)."""
    sent = {_base(n) for n in names} - GENERIC
    scored = []
    for cls in form_classes():
        own = field_names(cls) - GENERIC
        if own & sent:
            scored.append((len(own & sent) / len(own | sent), cls))
    best = max((score for score, _ in scored), default=0.0)
    return [cls for score, cls in scored if score == best and score >= 0.5]


def hidden_fields(names: set[str]) -> set[str]:
    """Fields of the page form's class(es) that the page does not show, named as the page
    names its fields (with its prefix, if any)."""
    prefix = ""
    for name in names:
        first, _, rest = name.partition("-")
        if rest and re.fullmatch(r"[a-z]+[0-9]+", first):
            prefix = first + "-"
    shown = {_base(s) for s in names}
    extra: set[str] = set()
    for cls in classes_of(names):
        extra |= {prefix + n for n in field_names(cls) if n not in shown}
    return extra


QUERY_FORM = re.compile(r"\b([A-Z][A-Za-z]*Form)\(\s*request\.args\b")


@functools.cache
def query_forms() -> frozenset[str]:
    """The form classes views build from the query string (filters): fuzzed as query keys."""
    found: set[str] = set()
    for path in Path(proms.__file__).parent.rglob("*.py"):
        found.update(QUERY_FORM.findall(path.read_text(encoding="utf-8")))
    return frozenset(found)


@functools.cache
def query_field_names() -> frozenset[str]:
    """Read once per run: the source is scanned for every class, and asked for every page."""
    return frozenset(
        name for cls in form_classes() if cls.__name__ in query_forms() for name in field_names(cls)
    )
