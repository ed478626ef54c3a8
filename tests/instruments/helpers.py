"""The instrument tests' facts: the bundled instrument codes and the fixture files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from proms.instruments.loader import DEFINITIONS_DIR

FIXTURES = Path(__file__).parent / "fixtures"

BUNDLED_CODES = (
    "infusion-side-effects",
    "pain-nrs",
    "pass-20",
    "peg",
    "promis-anx-4a",
    "promis-pain-intensity-3a",
    "promis-pf-4a",
    "promis-pi-4a",
    "promis-pi-6a",
    "promis-pi-8a",
    "promis-sd-4a",
    "promis-sd-8b",
)
PROMIS_CODES = tuple(code for code in BUNDLED_CODES if code.startswith("promis-"))


def definition_json(code: str) -> dict[str, Any]:
    """A fresh, mutable copy of a bundled definition file's content."""
    data: dict[str, Any] = json.loads((DEFINITIONS_DIR / f"{code}.json").read_text("utf-8"))
    return copy.deepcopy(data)


def fixture_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data
