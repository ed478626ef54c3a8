"""proms.instruments imports neither Flask nor SQLAlchemy nor the app's database layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import proms.instruments

PACKAGE = Path(proms.instruments.__file__).parent
FORBIDDEN = ("flask", "sqlalchemy", "alembic", "wtforms", "proms.db", "proms.models")
# cli.py is the Flask CLI adapter the app wires in; everything else stays pure.
MODULES = sorted(p for p in PACKAGE.glob("*.py") if p.name != "cli.py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if name.startswith("flask_")
        or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert bad == [], f"{path.name} imports {bad}"
