"""The pure core imports no web or database code (STYLE.md: "Pure core")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PROMS = Path(__file__).resolve().parents[2] / "proms"
PURE_PACKAGES = ("scoring", "instruments")
ALLOWED_PROMS = tuple(f"proms.{package}" for package in PURE_PACKAGES)
FORBIDDEN_ROOTS = {"flask", "sqlalchemy", "werkzeug", "wtforms"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROMS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "proms":
                # `from proms import db` (or `from .. import db`) imports the module proms.db
                for alias in node.names:
                    yield node.lineno, f"proms.{alias.name}"
            else:
                yield node.lineno, module


def module_imports(path: Path) -> Iterator[tuple[int, str]]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_modules(path.read_text(encoding="utf-8"), package)


def is_forbidden(module: str) -> bool:
    root = module.partition(".")[0]
    if root in FORBIDDEN_ROOTS or root.startswith("flask_"):
        return True
    if root != "proms":
        return False
    return not any(module == ok or module.startswith(ok + ".") for ok in ALLOWED_PROMS)


def test_is_forbidden_examples() -> None:
    for module in ("flask", "flask_login.utils", "sqlalchemy.orm", "werkzeug", "wtforms"):
        assert is_forbidden(module), module
    for module in ("proms", "proms.db", "proms.models", "proms.surveys.services", "proms.scoringx"):
        assert is_forbidden(module), module
    for module in ("numpy", "proms.scoring.types", "proms.instruments", "json"):
        assert not is_forbidden(module), module


def test_module_names() -> None:
    assert module_name(PROMS / "scoring" / "promis.py") == "proms.scoring.promis"
    assert module_name(PROMS / "scoring" / "__init__.py") == "proms.scoring"


def test_imports_are_resolved() -> None:
    source = "\n".join(
        [
            "import numpy as np",
            "from . import irt",
            "from .types import Form",
            "from .. import db",
            "from ..surveys import models",
            "from proms import models, scoring",
            "from flask import Flask",
            "def f():",
            "    import sqlalchemy",
        ]
    )
    assert sorted(module for _, module in imported_modules(source, "proms.scoring")) == sorted(
        [
            "numpy",
            "proms.scoring",
            "proms.scoring.types",
            "proms.db",
            "proms.surveys",
            "proms.models",
            "proms.scoring",
            "flask",
            "sqlalchemy",
        ]
    )


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_package_imports_no_web_or_database_code(package: str) -> None:
    folder = PROMS / package
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"proms/{package} has no modules yet")
    offences = [
        f"{path.relative_to(PROMS.parent)}:{line}: imports {module}"
        for path in files
        for line, module in module_imports(path)
        if is_forbidden(module)
    ]
    assert not offences, "the pure core must not import:\n" + "\n".join(offences)
