"""What every form shares: the filters applied to what people type."""

from __future__ import annotations

from typing import Any


def strip(value: Any) -> Any:
    """A WTForms filter: text without the spaces around it (other values as they are)."""
    return value.strip() if isinstance(value, str) else value
