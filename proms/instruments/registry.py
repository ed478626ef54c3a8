"""An immutable set of instrument definitions, looked up by code and version."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

from proms.instruments.loader import DEFINITIONS_DIR, load_directory
from proms.instruments.model import InstrumentDefinition


def version_key(version: str) -> tuple[int, ...]:
    """Numeric order of dotted versions: "1.10" comes after "1.9"."""
    return tuple(int(part) for part in version.split("."))


class Registry:
    """Definitions by code and version; iteration runs in code order, then version order."""

    __slots__ = ("_by_code",)

    _by_code: dict[str, tuple[InstrumentDefinition, ...]]

    def __init__(self, definitions: Iterable[InstrumentDefinition] = ()) -> None:
        by_key: dict[tuple[str, str], InstrumentDefinition] = {}
        for definition in definitions:
            if definition.key in by_key:
                raise ValueError(
                    f"two definitions of {definition.code} version {definition.version}"
                )
            by_key[definition.key] = definition
        grouped: dict[str, list[InstrumentDefinition]] = {}
        for definition in by_key.values():
            grouped.setdefault(definition.code, []).append(definition)
        object.__setattr__(
            self,
            "_by_code",
            {
                code: tuple(sorted(grouped[code], key=lambda d: version_key(d.version)))
                for code in sorted(grouped)
            },
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Registry is immutable; use with_definitions()")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._by_code)

    def versions(self, code: str) -> tuple[str, ...]:
        return tuple(d.version for d in self._versions(code))

    def _versions(self, code: str) -> tuple[InstrumentDefinition, ...]:
        try:
            return self._by_code[code]
        except KeyError:
            known = ", ".join(self._by_code) or "none"
            raise KeyError(f"unknown instrument {code!r} (known: {known})") from None

    def get(self, code: str, version: str | None = None) -> InstrumentDefinition:
        """The definition of `code` at `version`, or its latest version when version is None."""
        definitions = self._versions(code)
        if version is None:
            return definitions[-1]
        for definition in definitions:
            if definition.version == version:
                return definition
        raise KeyError(
            f"instrument {code!r} has no version {version!r} "
            f"(known: {', '.join(d.version for d in definitions)})"
        )

    def latest(self) -> tuple[InstrumentDefinition, ...]:
        """The latest version of every instrument, in code order."""
        return tuple(definitions[-1] for definitions in self._by_code.values())

    def with_definitions(self, *definitions: InstrumentDefinition) -> Registry:
        """A new registry where these definitions replace any of the same code and version."""
        keys = {d.key for d in definitions}
        if len(keys) != len(definitions):
            raise ValueError("with_definitions got two definitions of the same code and version")
        kept = [d for d in self if d.key not in keys]
        return Registry([*kept, *definitions])

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[InstrumentDefinition]:
        for definitions in self._by_code.values():
            yield from definitions

    def __len__(self) -> int:
        return sum(len(definitions) for definitions in self._by_code.values())

    def __repr__(self) -> str:
        return f"Registry({', '.join(f'{d.code} {d.version}' for d in self)})"


@functools.cache
def bundled_registry() -> Registry:
    """The definitions shipped in proms/instruments/definitions, validated once per process."""
    return Registry(load_directory(DEFINITIONS_DIR))
