"""Registry lookups: latest version by default, clear errors, immutable replacement."""

from __future__ import annotations

import dataclasses

import pytest

from proms.instruments.registry import Registry, version_key
from tests.instruments.helpers import BUNDLED_CODES


def test_get_latest_and_exact(registry: Registry) -> None:
    assert registry.get("promis-pf-4a").version == "2.0"
    assert registry.get("promis-pf-4a", "2.0").code == "promis-pf-4a"
    assert registry.versions("peg") == ("1.0",)


def test_unknown_code_lists_the_known_ones(registry: Registry) -> None:
    with pytest.raises(KeyError) as caught:
        registry.get("promis-pi-10a")
    message = str(caught.value)
    assert "unknown instrument 'promis-pi-10a'" in message
    for code in BUNDLED_CODES:
        assert code in message


def test_unknown_version(registry: Registry) -> None:
    with pytest.raises(KeyError, match=r"'peg' has no version '9\.9' \(known: 1\.0\)"):
        registry.get("peg", "9.9")


def test_iteration_in_code_order(registry: Registry) -> None:
    assert [d.code for d in registry] == list(BUNDLED_CODES)
    assert len(registry) == len(BUNDLED_CODES)
    assert "peg" in registry
    assert "nope" not in registry
    assert registry.codes == BUNDLED_CODES


def test_with_definitions_replaces_and_adds(registry: Registry) -> None:
    peg = registry.get("peg")
    reworded = dataclasses.replace(peg, title="PEG (clinic wording)")
    newer = dataclasses.replace(peg, version="1.10")
    older = dataclasses.replace(peg, version="1.9")
    updated = registry.with_definitions(reworded, newer, older)
    assert registry.get("peg") is peg  # the original is unchanged
    assert updated.get("peg", "1.0").title == "PEG (clinic wording)"
    assert updated.versions("peg") == ("1.0", "1.9", "1.10")
    assert updated.get("peg").version == "1.10"
    assert len(updated) == len(registry) + 2
    assert [d.version for d in updated if d.code == "peg"] == ["1.0", "1.9", "1.10"]
    assert updated.latest()[BUNDLED_CODES.index("peg")].version == "1.10"


def test_registry_is_immutable(registry: Registry) -> None:
    with pytest.raises(AttributeError):
        registry._by_code = {}


def test_duplicates_are_refused(registry: Registry) -> None:
    peg = registry.get("peg")
    with pytest.raises(ValueError, match=r"two definitions of peg version 1\.0"):
        Registry([peg, peg])
    with pytest.raises(ValueError, match="same code and version"):
        registry.with_definitions(peg, peg)


def test_version_key() -> None:
    assert sorted(["1.10", "1.9", "2.0", "1.0"], key=version_key) == ["1.0", "1.9", "1.10", "2.0"]


def test_empty_registry() -> None:
    with pytest.raises(KeyError, match=r"known: none"):
        Registry().get("peg")
