"""Who may import whom (docs/architecture.md, "Parts and who may import whom").

Two rules, read from the source (every import, also inside functions; not those under
`if TYPE_CHECKING:`, which only name types):
- The pure core (scoring, instrument definitions, schedule rules) imports no web or database
  code, and no other part of proms. Importing it at run time loads none of them either.
- The capabilities import one way, down a fixed order of layers. The `*.models` modules are one
  data layer that every capability may read (SQLAlchemy relationships point both ways), so an
  import of a models module is not a dependency on its capability. With that, the graph of
  capabilities has no cycle, and this test names the import that would make one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from itertools import pairwise
from pathlib import Path

import pytest

PROMS = Path(__file__).resolve().parents[1] / "proms"

# The pure core, by module (proms.scheduling is not pure; only its rules are).
PURE = ("proms.scoring", "proms.instruments", "proms.scheduling.rules")
FORBIDDEN_ROOTS = {"flask", "sqlalchemy", "werkzeug", "wtforms", "alembic", "jinja2"}

# Bottom to top. A part imports only parts below it (and itself).
LAYERS = (
    "core",  # proms.scoring, proms.instruments, proms.scheduling.rules
    "foundation",  # configuration, database, security, errors, logs, i18n, templating
    "auth",  # staff, roles, sign-in, the audit log (used by every part that changes data)
    "catalog",  # the deployment's instruments
    "notify",  # message channels (SMTP, Twilio, files) and the texts of messages
    "scheduling",  # assessments and their windows
    "outcomes",  # scores, change from baseline, alerts
    "surveys",  # the patient side
    "webhooks",  # what providers post to proms: replies to texts (STOP), delivery reports
    "care",  # the care team's pages
    "admin",  # the coordinator workspace: clinics, staff, patients, protocols, enrollment
    "app",  # create_app, the command line, the server config, the demo data: they assemble it all
)
FOUNDATION = {
    "audit_chain",
    "checks",
    "config",
    "db",
    "errors",
    "forms",
    "health",
    "i18n",
    "logs",
    "resources",
    "schema",
    "security",
    "templating",
}
APP = {"proms", "backup", "cli", "demo", "gunicorn_conf"}


# Reading imports -----------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(PROMS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for orelse in child.orelse for n in (orelse, *_nodes(orelse)))
            continue
        yield child
        yield from _nodes(child)


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every run-time import in `source`, a module of `package`."""
    for node in _nodes(ast.parse(source)):
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
            if module == "proms" or (node.level and not node.module):
                # `from proms import db` imports the module proms.db; `from proms import
                # create_app`, a name of the package proms.
                for alias in node.names:
                    name = f"{module}.{alias.name}"
                    yield node.lineno, name if _is_proms_module(name) else module
            else:
                yield node.lineno, module


def _is_proms_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] != "proms":
        return False
    path = PROMS.joinpath(*parts[1:])
    return path.is_dir() or path.with_suffix(".py").is_file()


def module_imports(path: Path) -> Iterator[tuple[int, str]]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_modules(path.read_text(encoding="utf-8"), package)


def proms_modules() -> list[Path]:
    return sorted(PROMS.rglob("*.py"))


# The rules -----------------------------------------------------------------------------------


def is_pure(module: str) -> bool:
    return any(module == pure or module.startswith(pure + ".") for pure in PURE)


def part_of(module: str) -> str | None:
    """The part (layer name) a proms module belongs to; None for the shared data layer."""
    parts = module.split(".")
    if parts[0] != "proms":
        raise ValueError(module)
    if is_pure(module):
        return "core"
    if len(parts) == 1 or parts[1] in APP:
        return "app"
    if parts[1] in FOUNDATION:
        return "foundation"
    if parts[1] == "models" or (len(parts) > 2 and parts[2] == "models"):
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: a new part? Give it a layer in tests/test_architecture.py")
    return parts[1]


def part_imports() -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> ["proms/x/y.py:12 imports proms.z", ...]"""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in proms_modules():
        source = part_of(module_name(path))
        if source is None:
            continue
        graph.setdefault(source, {})
        for line, module in module_imports(path):
            if module.partition(".")[0] != "proms":
                continue
            target = part_of(module)
            if target is None or target == source:
                continue
            where = f"{path.relative_to(PROMS.parent)}:{line} imports {module}"
            graph[source].setdefault(target, []).append(where)
    return graph


def find_cycle(graph: Mapping[str, Mapping[str, object]]) -> list[str] | None:
    """A cycle in a directed graph, as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# Tests of the walker -------------------------------------------------------------------------


def test_imports_are_resolved_and_type_checking_imports_are_left_out() -> None:
    source = "\n".join(
        [
            "from typing import TYPE_CHECKING",
            "import numpy as np",
            "from . import irt",
            "from .types import Form",
            "from .. import db",
            "from ..surveys import models",
            "from proms import models, scoring, create_app",
            "if TYPE_CHECKING:",
            "    from proms.care.views import bp",
            "def f():",
            "    import sqlalchemy",
        ]
    )
    assert sorted(module for _, module in imported_modules(source, "proms.scoring")) == sorted(
        [
            "typing",
            "numpy",
            "proms.scoring.irt",
            "proms.scoring.types",
            "proms.db",
            "proms.surveys",
            "proms.models",
            "proms.scoring",
            "proms",
            "sqlalchemy",
        ]
    )


def test_parts() -> None:
    assert part_of("proms.scoring.promis") == "core"
    assert part_of("proms.scheduling.rules") == "core"
    assert part_of("proms.scheduling.services") == "scheduling"
    assert part_of("proms.surveys.models") is None
    assert part_of("proms.models") is None
    assert part_of("proms.db") == "foundation"
    assert part_of("proms") == "app"
    assert part_of("proms.care.views") == "care"


def test_a_cycle_between_surveys_and_care_is_found() -> None:
    graph = {"surveys": {"outcomes": []}, "care": {"surveys": []}, "outcomes": {}}
    assert find_cycle(graph) is None
    graph["surveys"]["care"] = []
    assert find_cycle(graph) == ["care", "surveys", "care"]


def test_every_module_belongs_to_a_part() -> None:
    for path in proms_modules():
        part_of(module_name(path))  # raises for a module of no known part


# The rules, on the code ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [p for p in proms_modules() if is_pure(module_name(p))],
    ids=lambda p: str(p.relative_to(PROMS)),
)
def test_the_pure_core_imports_no_web_or_database_code(path: Path) -> None:
    offences = [
        f"line {line}: {module}"
        for line, module in module_imports(path)
        if module.partition(".")[0] in FORBIDDEN_ROOTS
        or module.startswith("flask_")
        or (module.partition(".")[0] == "proms" and not is_pure(module))
    ]
    assert not offences, f"{path.name} must stay pure but imports:\n" + "\n".join(offences)


def test_importing_the_pure_core_loads_no_web_or_database_library() -> None:
    code = (
        "import sys, proms.scoring, proms.scoring.batch, proms.scoring.change, "
        "proms.scoring.cohort, proms.instruments.registry, proms.instruments.fhir, "
        "proms.instruments.importer, proms.scheduling.rules;"
        "print(','.join(sorted(m.partition('.')[0] for m in sys.modules "
        f"if m.partition('.')[0] in {sorted(FORBIDDEN_ROOTS)!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_parts_import_each_other_one_way() -> None:
    graph = part_imports()
    assert set(graph) >= {"surveys", "care", "outcomes", "catalog", "admin"}
    cycle = find_cycle(graph)
    assert cycle is None, (
        "import cycle "
        + " -> ".join(cycle)
        + "\n"
        + "\n".join(where for a, b in pairwise(cycle) for where in graph[a][b])
    )


def test_every_import_points_down_the_layers() -> None:
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = [
        where
        for source, targets in part_imports().items()
        for target, wheres in targets.items()
        if rank[target] > rank[source]
        for where in wheres
    ]
    assert not upward, "imports up the layers of docs/architecture.md:\n" + "\n".join(upward)


def test_the_patient_side_never_imports_staff_pages() -> None:
    staff_pages = ("proms.care", "proms.auth.views", "proms.auth.forms")
    offences = [
        f"{path.relative_to(PROMS.parent)}:{line} imports {module}"
        for path in sorted((PROMS / "surveys").rglob("*.py"))
        for line, module in module_imports(path)
        if any(module == page or module.startswith(page + ".") for page in staff_pages)
    ]
    assert not offences, "\n".join(offences)
