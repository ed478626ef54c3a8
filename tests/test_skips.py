"""Under CI an undocumented skip fails the run (tests/skips.py); elsewhere a skip is only shown.

Each test runs pytest on a small test file (pytest's own `pytester`) with the rule enabled as
tests/conftest.py enables it, with CI set or not.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from tests.scoring.test_irt import SKIPPED_TABLES
from tests.skips import DOCUMENTED_SKIPS, is_documented

pytest_plugins = ["pytester"]

CONFTEST = """
from tests.skips import enforce_under_ci

def pytest_configure(config):
    enforce_under_ci(config)
"""

# Every way a test can end up not run, each with a reason nobody documented.
UNDOCUMENTED = {
    "skip marker": """
        import pytest

        @pytest.mark.skip(reason="not today")
        def test_it():
            pass
    """,
    "skipif marker": """
        import pytest

        @pytest.mark.skipif(True, reason="not today")
        def test_it():
            pass
    """,
    "pytest.skip in the test": """
        import pytest

        def test_it():
            pytest.skip("not today")
    """,
    "pytest.skip in a fixture": """
        import pytest

        @pytest.fixture
        def tool():
            pytest.skip("not today")

        def test_it(tool):
            pass
    """,
    "importorskip": """
        import pytest

        pytest.importorskip("a_module_that_is_not_installed_anywhere", reason="not today")

        def test_it():
            pass
    """,
    "module-level skip": """
        import pytest

        pytest.skip("not today", allow_module_level=True)

        def test_it():
            pass
    """,
    "xfail marker": """
        import pytest

        @pytest.mark.xfail(reason="not today")
        def test_it():
            assert False
    """,
    "XPASS": """
        import pytest

        @pytest.mark.xfail(reason="not today")
        def test_it():
            pass
    """,
    "pytest.xfail in the test": """
        import pytest

        def test_it():
            pytest.xfail("not today")
    """,
}

PASSING = """
    def test_that_runs():
        pass
"""


Run = Callable[[str, "str | None"], pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest on a test file and a passing one, with CI set to `ci` (None: not set)."""
    pytester.makeconftest(CONFTEST)

    def runner(source: str, ci: str | None) -> pytest.RunResult:
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        pytester.makepyfile(test_one=source, test_two=PASSING)
        return pytester.runpytest("-p", "no:cacheprovider")

    return runner


@pytest.mark.parametrize("source", UNDOCUMENTED.values(), ids=UNDOCUMENTED.keys())
def test_an_undocumented_skip_fails_under_ci(run: Run, source: str) -> None:
    result = run(source, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= undocumented skips =*",
            "test_one.py*: * not today",
            "CI is set, so 1 undocumented skip(s) fail this run*",
        ]
    )


@pytest.mark.parametrize("ci", [None, "", "0", "false", "False"])
@pytest.mark.parametrize("source", UNDOCUMENTED.values(), ids=UNDOCUMENTED.keys())
def test_without_ci_a_skip_only_shows(run: Run, source: str, ci: str | None) -> None:
    result = run(source, ci)
    assert result.ret == pytest.ExitCode.OK
    assert "undocumented skips" not in result.stdout.str()


def test_a_documented_skip_passes_under_ci(run: Run) -> None:
    (reason,) = SKIPPED_TABLES.values()
    source = f"""
        import pytest

        @pytest.mark.skip(reason={reason!r})
        def test_it():
            pass
    """
    result = run(source, "1")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)
    assert "undocumented skips" not in result.stdout.str()


def test_a_failing_run_keeps_its_exit_code_and_still_lists_the_skips(run: Run) -> None:
    source = (
        textwrap.dedent(UNDOCUMENTED["skip marker"]) + "\ndef test_broken():\n    assert False\n"
    )
    result = run(source, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*= undocumented skips =*", "test_one.py::test_it: skipped: not today"]
    )


def test_every_skip_the_suite_makes_is_documented() -> None:
    """The skips known to happen in CI (one per reference table without calibrations)."""
    assert SKIPPED_TABLES
    for reason in SKIPPED_TABLES.values():
        assert is_documented(reason), reason


def test_every_documented_skip_says_why() -> None:
    for entry in DOCUMENTED_SKIPS:
        assert entry.reason.strip(), entry
        assert entry.why.strip(), entry
