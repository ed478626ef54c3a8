"""Shared fixtures for the instrument tests: the bundled registry.

The bundled codes and the fixture files are in tests/instruments/helpers.py.
"""

from __future__ import annotations

import pytest

from proms.instruments.registry import Registry, bundled_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return bundled_registry()
