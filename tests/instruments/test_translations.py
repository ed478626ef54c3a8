"""Bundled summaries a patient can answer, in English and in Spanish, scored the same in both.

Every bundled item is shown alone on its own screen (templates/surveys/question.html: the
recall period, the item text, the option labels), so each text must say what it asks and
differ from the other items of its instrument. The Spanish summaries are ours too (a
translation of our own wording, never of the official wording): every title, recall period,
item text and option label has one.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from proms.instruments.model import InstrumentDefinition, Wording, WordingSource
from proms.instruments.registry import Registry
from proms.scoring.summed import score
from proms.scoring.types import Answer
from tests.instruments.helpers import BUNDLED_CODES

# Placeholders, not questions: "statement 3 of 5", "(item 4)", "2 of 5", and their Spanish.
PLACEHOLDERS = (
    re.compile(r"\b(statement|item|question|afirmación|pregunta)\s+\d+", re.IGNORECASE),
    re.compile(r"\b\d+\s+(of|de)\s+\d+\b", re.IGNORECASE),
    re.compile(r"\((a further|another|one more|otro|otra) ", re.IGNORECASE),
)


def _both_languages(registry: Registry, code: str) -> tuple[InstrumentDefinition, ...]:
    definition = registry.get(code)
    return definition, definition.translated("es")


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_no_item_text_repeats_within_an_instrument(registry: Registry, code: str) -> None:
    for definition in _both_languages(registry, code):
        seen: dict[str, str] = {}
        for item in definition.items:
            key = " ".join(item.text.casefold().split())
            assert key not in seen, (
                f"{code} ({definition.language}): {item.id} repeats {seen[key]}: {item.text!r}"
            )
            seen[key] = item.id


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_no_item_text_is_a_placeholder(registry: Registry, code: str) -> None:
    for definition in _both_languages(registry, code):
        for item in definition.items:
            for pattern in PLACEHOLDERS:
                assert not pattern.search(item.text), (
                    f"{code} ({definition.language}) {item.id}: {item.text!r} numbers or "
                    "stands in for a question instead of asking it"
                )


@pytest.mark.parametrize(
    "text",
    [
        "Thoughts and worry about pain (statement 3 of 5)",
        "Avoiding pain (item 4)",
        "Fear about pain, 2 of 5",
        "Pain getting in the way of daily life (a further aspect)",
        "Preocupación por el dolor (afirmación 2 de 5)",
    ],
)
def test_the_placeholder_patterns_catch_what_they_are_for(text: str) -> None:
    assert any(pattern.search(text) for pattern in PLACEHOLDERS)


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_option_labels_are_words_except_inside_a_numeric_rating(
    registry: Registry, code: str
) -> None:
    # A 0-10 rating may number its middle points when its two ends are words ("No pain" ...
    # "Worst pain imaginable"); any other answer needs words (PASS-20's 1-4 once had none).
    for definition in _both_languages(registry, code):
        for item in definition.items:
            labels = [option.label for option in item.options]
            numeric = [label for label in labels if label.strip().isdigit()]
            if not numeric:
                continue
            assert len(labels) == 11, (code, item.id, labels)
            assert not labels[0].isdigit(), (code, item.id)
            assert not labels[-1].isdigit(), (code, item.id)
            assert labels[1:-1] == [str(option.value) for option in item.options[1:-1]]


def test_pass_20_statements_ask_how_often_and_differ(registry: Registry) -> None:
    definition = registry.get("pass-20")
    texts = [item.text for item in definition.items]
    assert len(set(texts)) == 20
    assert all(text.endswith(".") and len(text) <= 80 for text in texts)
    for item in definition.items:
        assert [(o.value, o.label) for o in item.options] == [
            (0, "Never"),
            (1, "Rarely"),
            (2, "Sometimes"),
            (3, "Often"),
            (4, "Almost always"),
            (5, "Always"),
        ]


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_every_bundled_definition_has_a_complete_spanish_translation(
    registry: Registry, code: str
) -> None:
    english = registry.get(code)
    assert english.languages == ("en", "es")
    (translation,) = english.translations
    assert translation.language == "es"
    assert translation.title
    assert translation.title != english.title
    if english.recall_period is None:
        assert translation.recall_period is None
    else:
        assert translation.recall_period
        assert translation.recall_period != english.recall_period
    assert [item_id for item_id, _ in translation.items] == list(english.item_ids)
    for item in english.items:
        spanish = translation.item(item.id)
        assert spanish.text.strip(), item.id
        assert spanish.text != item.text, item.id
        assert 0 < len(spanish.text) <= 80, item.id
        assert [value for value, _ in spanish.labels] == list(item.values), item.id
        for option in item.options:
            label = spanish.label(option.value)
            assert label.strip(), (item.id, option.value)
            assert len(label) <= 40, (item.id, option.value)
            if not option.label.isdigit():  # a number reads the same in both languages
                assert label != option.label, (item.id, option.value, label)


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_the_spanish_variant_is_the_same_instrument_in_other_words(
    registry: Registry, code: str
) -> None:
    english = registry.get(code)
    spanish = english.translated("es")
    assert (spanish.code, spanish.version, spanish.language) == (code, english.version, "es")
    assert spanish.wording == english.wording
    assert spanish.wording.source is WordingSource.SUMMARY
    assert spanish.needs_official_wording == english.needs_official_wording
    assert spanish.translations == ()
    assert spanish.languages == ("es",)
    assert spanish.translated("es") is spanish
    assert spanish.title == english.translations[0].title
    for ours, theirs in zip(spanish.items, english.items, strict=True):
        assert (ours.id, ours.values, ours.reverse, ours.loinc) == (
            theirs.id,
            theirs.values,
            theirs.reverse,
            theirs.loinc,
        )
    assert (spanish.scoring, spanish.thresholds, spanish.alerts, spanish.direction) == (
        english.scoring,
        english.thresholds,
        english.alerts,
        english.direction,
    )
    assert spanish.form() == english.form()


@pytest.mark.parametrize("code", BUNDLED_CODES)
def test_the_spanish_variant_scores_identically(registry: Registry, code: str) -> None:
    english = registry.get(code)
    spanish = english.translated("es")
    patterns: list[dict[str, Answer]] = [
        {item.id: item.values[0] for item in english.items},
        {item.id: item.values[-1] for item in english.items},
        {item.id: item.values[i % len(item.values)] for i, item in enumerate(english.items)},
    ]
    for answers in patterns:
        assert score(spanish.form(), answers) == score(english.form(), answers)
        assert spanish.alert_items(answers) == english.alert_items(answers)


def test_the_spanish_variant_round_trips_as_its_own_definition(registry: Registry) -> None:
    from proms.instruments.loader import parse_definition

    spanish = registry.get("pass-20").translated("es")
    data = spanish.to_json()
    assert data["language"] == "es"
    assert "translations" not in data
    assert parse_definition(data, filename="pass-20 es") == spanish
    assert registry.get("pass-20").to_json()["translations"]["es"]["title"] == spanish.title


def test_no_translation_into_an_unknown_language(registry: Registry) -> None:
    definition = registry.get("peg")
    assert definition.translated("en") is definition
    with pytest.raises(KeyError, match="no 'fr' wording"):
        definition.translated("fr")


def test_official_wording_keeps_no_translation_of_the_summary(registry: Registry) -> None:
    # The importer rewords a copy of the bundled definition; the copy must not keep Spanish
    # that translates the summary it no longer has.
    bundled = registry.get("promis-pi-4a")
    official = dataclasses.replace(
        bundled, wording=Wording(WordingSource.OFFICIAL, "licensed.json", "2026-11-25")
    )
    assert official.translations == ()
    assert official.languages == ("en",)
    assert "translations" not in official.to_json()
    # Nor does a copy reworded into the translation's own language (a Spanish import).
    spanish = dataclasses.replace(bundled, language="es")
    assert spanish.translations == ()
