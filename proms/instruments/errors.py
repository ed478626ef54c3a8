"""The errors of the instruments package, each saying what is wrong and where."""

from __future__ import annotations

from collections.abc import Sequence


class DefinitionError(ValueError):
    """A definition file (or an imported definition) is invalid.

    Every problem names the file and the JSON path of the field, e.g.
    "promis-pi-4a.json: items[2].options[1].value: 7 appears twice".
    """

    def __init__(self, filename: str, problems: Sequence[tuple[str, str]]) -> None:
        self.filename = filename
        self.problems = tuple(problems)
        lines = [f"{filename}: {path}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines) if lines else f"{filename}: invalid definition")


class ImportFormatError(ValueError):
    """A file to import is not a FHIR R4 Questionnaire or REDCap data dictionary we can read."""


class DefinitionImportError(ValueError):
    """An imported form cannot be applied; nothing was changed. Lists every problem found."""

    def __init__(self, summary: str, problems: Sequence[str]) -> None:
        self.summary = summary
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{summary}, so nothing was changed:\n{listing}")


class NotSendableError(RuntimeError):
    """An instrument may not be sent to patients in this environment."""
