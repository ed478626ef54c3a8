"""Translations of patient-facing text: complete, well-formed, in sync with the sources, used.

The catalogs live in translations/: messages.pot (extracted from the sources) and one
<lang>/LC_MESSAGES/messages.po per patient language. These tests extract the sources afresh with
the settings of the Makefile's `pybabel extract` (babel.cfg plus the keywords below), so a string
wrapped in gettext but missing from the catalogs fails with its text and where it is.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_datetime
from babel.messages.catalog import PYTHON_FORMAT, Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.pofile import read_po
from flask.testing import FlaskClient
from sqlalchemy import select

from proms import config
from proms.admin.services import enroll_patient
from proms.db import db, utcnow
from proms.scheduling.models import Assessment
from proms.surveys import links
from proms.surveys.models import AccessToken
from tests.helpers import CSRF_RE, World, patient_today

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
CATALOGS = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))

# The Makefile's extraction settings: `-k _l -k lazy_gettext -k lazy_ngettext:1,2` on top of
# Babel's default keywords, and `--ignore-dirs=".* __pycache__ node_modules"`.
EXTRA_KEYWORDS = ["_l", "lazy_gettext", "lazy_ngettext:1,2"]
IGNORE_DIRS = [".*", "__pycache__", "node_modules"]

UPDATE_HINT = (
    "Re-extract and update the catalogs (the commands are in the Makefile):\n"
    "  .venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 "
    '--add-comments=TRANSLATORS: --ignore-dirs=".* __pycache__ node_modules" --sort-output '
    '--project proms --version 0.1.0 --copyright-holder "proms contributors" '
    "-o translations/messages.pot .\n"
    "  .venv/bin/pybabel update -i translations/messages.pot -d translations\n"
    "then translate every new or fuzzy entry in translations/*/LC_MESSAGES/messages.po."
)

MessageKey = tuple[str | tuple[str, ...], str | None]


def _locale_of(po_path: Path) -> str:
    return po_path.parent.parent.name


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _messages(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def _keys(catalog: Catalog) -> set[MessageKey]:
    return {(message.id, message.context) for message in _messages(catalog)}


def _extract_sources() -> Catalog:
    """The sources' messages, extracted as `pybabel extract` does (but in memory)."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    keywords = {**DEFAULT_KEYWORDS, **parse_keywords(EXTRA_KEYWORDS)}

    def wanted(dirpath: str) -> bool:
        return not any(fnmatch(os.path.basename(dirpath), pattern) for pattern in IGNORE_DIRS)

    catalog = Catalog()
    for filename, lineno, message, _comments, context in extract_from_dir(
        ROOT, method_map, options_map, keywords=keywords, directory_filter=wanted
    ):
        catalog.add(message, None, [(filename, lineno)], context=context)
    return catalog


@pytest.fixture(scope="module")
def sources() -> Catalog:
    return _extract_sources()


def _describe(keys: Iterable[MessageKey], where: Catalog) -> str:
    lines = []
    for message_id, context in sorted(keys, key=repr):
        found = where.get(message_id, context)
        places = ", ".join(f"{f}:{n}" for f, n in found.locations) if found else ""
        lines.append(f"  {message_id!r}" + (f"  ({places})" if places else ""))
    return "\n".join(lines)


def _out_of_sync(name: str, catalog: Catalog, sources: Catalog) -> str:
    new = _keys(sources) - _keys(catalog)
    gone = _keys(catalog) - _keys(sources)
    report = [f"{name} is out of date with the sources."]
    if new:
        report += ["In the sources but not in the catalog:", _describe(new, sources)]
    if gone:
        report += ["In the catalog but no longer in the sources:", _describe(gone, catalog)]
    return "\n".join([*report, UPDATE_HINT])


def test_every_patient_language_has_a_catalog() -> None:
    others = set(config.LANGUAGES) - {config.BABEL_DEFAULT_LOCALE}
    assert {_locale_of(path) for path in CATALOGS} == others
    assert TEMPLATE.exists()


def test_template_matches_sources(sources: Catalog) -> None:
    assert _messages(sources), "extraction found no messages: is babel.cfg right?"
    template = _read(TEMPLATE)
    assert _keys(template) == _keys(sources), _out_of_sync(
        "translations/messages.pot", template, sources
    )


@pytest.mark.parametrize("po_path", CATALOGS, ids=_locale_of)
def test_catalog_matches_sources(po_path: Path, sources: Catalog) -> None:
    catalog = _read(po_path)
    assert _keys(catalog) == _keys(sources), _out_of_sync(
        str(po_path.relative_to(ROOT)), catalog, sources
    )


@pytest.mark.parametrize("po_path", CATALOGS, ids=_locale_of)
def test_every_message_is_translated(po_path: Path) -> None:
    catalog = _read(po_path, _locale_of(po_path))
    assert not catalog.fuzzy, "the catalog header is fuzzy: pybabel compile would skip it"
    assert catalog.num_plurals == 2
    problems = []
    for message in _messages(catalog):
        forms = list(message.string) if message.pluralizable else [message.string]
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if not all(form and form.strip() for form in forms):
            problems.append(f"untranslated: {message.id!r}")
        if message.pluralizable and len(forms) != catalog.num_plurals:
            problems.append(f"{len(forms)} plural forms, not {catalog.num_plurals}: {message.id!r}")
    assert not problems, "\n".join(problems)


def _placeholders(text: str) -> list[tuple[str, str]]:
    return sorted((name, kind) for name, _flags, kind in PYTHON_FORMAT.findall(text) if kind != "%")


def _sample_values(text: str) -> dict[str, object]:
    return {name: (7 if kind in "diouxX" else "x") for name, kind in _placeholders(text)}


@pytest.mark.parametrize("po_path", CATALOGS, ids=_locale_of)
def test_placeholders_match(po_path: Path) -> None:
    """Same %(name)s placeholders; and every string survives `%` (Jinja formats them all)."""
    catalog = _read(po_path, _locale_of(po_path))
    problems = []
    for message in _messages(catalog):
        if message.pluralizable:
            singular, plural = message.id
            pairs = [
                (singular if index == 0 and catalog.num_plurals > 1 else plural, form)
                for index, form in enumerate(message.string)
            ]
        else:
            pairs = [(message.id, message.string)]
        for source, translation in pairs:
            if _placeholders(source) != _placeholders(translation):
                problems.append(
                    f"{source!r}: {_placeholders(source)} vs {translation!r}: "
                    f"{_placeholders(translation)}"
                )
                continue
            try:
                translation % _sample_values(source)
            except (ValueError, TypeError, KeyError) as error:
                problems.append(f"{translation!r} cannot be formatted: {error}")
    problems += [f"{m.id!r}: {errors}" for m, errors in catalog.check()]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("po_path", CATALOGS, ids=_locale_of)
def test_compiled_catalog_is_current(po_path: Path) -> None:
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists()
    assert mo_path.stat().st_mtime >= po_path.stat().st_mtime


# The catalogs in use on patient pages ------------------------------------------------------------


def _link(world: World, language: str, *, anchor_in_days: int = 3) -> tuple[str, Assessment]:
    """A link to the baseline questionnaire of a newly enrolled patient speaking `language`.

    The baseline window opens 14 days before the anchor date, so an anchor in 3 days is open now.
    """
    patient = world.patients_a[0]
    patient.language = language
    anchor = patient_today(patient) + dt.timedelta(days=anchor_in_days)
    enrollment = enroll_patient(db.session, patient, world.protocol_a, anchor)
    baseline = next(a for a in enrollment.assessments if a.timepoint.key == "baseline")
    token = links.mint_token(db.session, baseline, now=utcnow(), max_age=dt.timedelta(days=30))
    db.session.commit()
    return token, baseline


def _page(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_welcome_page_in_spanish(world: World, client: FlaskClient) -> None:
    token, _ = _link(world, "es")
    page = _page(client, f"/s/{token}")
    assert '<html lang="es">' in page
    assert ">Comenzar</button>" in page
    assert "Su cuestionario de salud" in page
    assert "preguntas, alrededor de" in page
    assert "Comuníquese con Clinic A" in page
    assert ">Start</button>" not in page
    assert "Your health questionnaire" not in page


def test_welcome_page_in_english(world: World, client: FlaskClient) -> None:
    token, _ = _link(world, "en")
    page = _page(client, f"/s/{token}")
    assert '<html lang="en">' in page
    assert ">Start</button>" in page
    assert "Your health questionnaire" in page
    assert "questions, about" in page
    assert "Comenzar" not in page


def test_question_page_and_form_errors_in_spanish(world: World, client: FlaskClient) -> None:
    """Template text, the form's lazy_gettext strings and the page after Start."""
    token, _ = _link(world, "es")
    csrf = CSRF_RE.search(_page(client, f"/s/{token}"))
    assert csrf
    started = client.post(f"/s/{token}", data={"csrf_token": csrf.group(1)})
    assert started.status_code == 303
    assert started.location.endswith("/s/q/1")
    page = _page(client, "/s/q/1")
    assert '<html lang="es">' in page
    assert "Pregunta 1 de " in page
    assert 'value="Siguiente"' in page
    assert 'value="Omitir esta pregunta"' in page
    unanswered = client.post("/s/q/1", data={"csrf_token": csrf.group(1), "next": "Siguiente"})
    assert unanswered.status_code == 400
    assert "Elija una respuesta o use “Omitir esta pregunta”." in unanswered.get_data(as_text=True)


def test_not_yet_open_page_gives_the_date_in_spanish(world: World, client: FlaskClient) -> None:
    token, baseline = _link(world, "es", anchor_in_days=30)
    zone = ZoneInfo(world.patients_a[0].time_zone)
    opens_on = baseline.opens_at.astimezone(zone).date()
    page = _page(client, f"/s/{token}")
    assert "Este cuestionario todavía no está abierto" in page
    assert f"Se abre el {format_date(opens_on, 'long', locale='es')}." in page


def test_identity_lock_gives_local_time_in_spanish(world: World, client: FlaskClient) -> None:
    world.protocol_a.requires_identity_check = True
    token, _ = _link(world, "es")
    csrf = CSRF_RE.search(_page(client, f"/s/{token}"))
    assert csrf
    assert client.post(f"/s/{token}", data={"csrf_token": csrf.group(1)}).status_code == 303
    locked_until = (utcnow() + dt.timedelta(minutes=30)).replace(microsecond=0)
    stored = db.session.scalar(select(AccessToken).order_by(AccessToken.id.desc()))
    assert stored is not None
    stored.identity_locked_until = locked_until
    db.session.commit()
    page = _page(client, "/s/check", status=429)
    local = locked_until.astimezone(ZoneInfo(world.patients_a[0].time_zone))
    assert "Hubo demasiados intentos." in page
    assert (
        f"a partir del {format_datetime(local, 'short', tzinfo=local.tzinfo, locale='es')}" in page
    )
    assert '<html lang="es">' in page
