"""The PostgreSQL pass leaves out only tests that cannot tell the two databases apart.

`--database-dependent-only` (make test's PostgreSQL pass, tests/conftest.py) keeps the tests
whose fixtures reach `database_kind`. That is exact only while nothing else reads --database:
this test reads every test file for another reader of the option.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
# Where the option may be read: the fixture everything database-bound is built on, the header.
READERS = {("conftest.py", "database_kind"), ("conftest.py", "pytest_report_header")}


def option_readers(tree: ast.AST) -> list[tuple[str, int]]:
    """(enclosing function, line) of each `getoption("--database")` or `option.database`."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        reads = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getoption"
            and bool(node.args)
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in ("--database", "database")
        ) or (
            isinstance(node, ast.Attribute)
            and node.attr == "database"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "option"
        )
        if reads:
            found.append((function, getattr(node, "lineno", 0)))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_only_database_kind_reads_the_database_option() -> None:
    readers = set()
    for path in sorted(TESTS.rglob("*.py")):
        for function, line in option_readers(ast.parse(path.read_text(encoding="utf-8"))):
            readers.add((str(path.relative_to(TESTS)), function, line))
    assert {(path, function) for path, function, _line in readers} == READERS, readers


def test_a_test_without_a_database_fixture_is_deselected(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        from tests.conftest import pytest_collection_modifyitems  # the rule under test

        def pytest_addoption(parser):
            parser.addoption("--database", default="sqlite")
            parser.addoption("--database-dependent-only", action="store_true")

        @pytest.fixture(scope="session")
        def database_kind(pytestconfig):
            return pytestconfig.getoption("--database")

        @pytest.fixture
        def app(database_kind):
            return database_kind
        """
    )
    pytester.makepyfile(
        test_x="""
        def test_pure():
            pass

        def test_with_app(app):
            assert app == "postgresql"
        """
    )
    result = pytester.runpytest("--database=postgresql", "--database-dependent-only", "-q")
    result.assert_outcomes(passed=1, deselected=1)  # test_with_app ran, on "postgresql"
    result = pytester.runpytest("--database=postgresql", "-q")
    result.assert_outcomes(passed=2)
