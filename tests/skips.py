"""Under CI, a skipped test fails the run unless its reason is documented here.

A skip on a laptop is information; in CI it is a test that did not run, and a green run must not
hide one. So when CI is set (.ci/run sets CI=true), every skip and every expected failure (xfail,
XPASS too) is checked against DOCUMENTED_SKIPS: whatever the source (a skip or skipif marker,
`pytest.skip` in a test or a fixture, `pytest.importorskip`, a skipped module), an undocumented
one is listed at the end of the run and the run exits 1. Tests that need a tool CI installs fail
rather than skip under CI by themselves (tests/e2e/conftest.py); this rule catches the rest.

tests/conftest.py enables it with `enforce_under_ci(config)`; tests/test_skips.py tests it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tests.helpers import in_ci


@dataclass(frozen=True, slots=True)
class DocumentedSkip:
    """A skip that may happen in CI: the whole reason matches `reason` (a regular expression)."""

    reason: str
    why: str


DOCUMENTED_SKIPS: tuple[DocumentedSkip, ...] = (
    DocumentedSkip(
        reason=(
            r"PROMIS_SF_v2\.0_PhysicalFunction_4a: no PROMIS physical function v2\.0 item "
            r"calibrations are available .*"
        ),
        why=(
            "tests/scoring/test_irt.py recomputes every reference T-score table from item "
            "calibrations; none are published for Physical Function v2.0 (the v1.2 ones do not "
            "reproduce its table), so that one table stays visible as a skipped test. Its table "
            "and its refusal to pattern-score are tested elsewhere (tests/scoring/test_promis.py)."
        ),
    ),
)


def is_documented(reason: str, documented: Sequence[DocumentedSkip] = DOCUMENTED_SKIPS) -> bool:
    return any(re.fullmatch(entry.reason, reason, re.DOTALL) for entry in documented)


def skip_of(report: pytest.TestReport | pytest.CollectReport) -> tuple[str, str] | None:
    """What a report did not run, as ("skipped" or "xfail", reason); None when it ran."""
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:  # xfailed (reported as skipped) or XPASS (reported as passed)
        return "xfail", wasxfail.removeprefix("reason: ")
    if not report.skipped:
        return None
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return "skipped", message.removeprefix("Skipped: ")


@dataclass(eq=False)  # pluggy keeps plugins in sets: hashed by identity
class UndocumentedSkips:
    """The plugin: notes each undocumented skip of a run, then lists them and fails the run."""

    documented: Sequence[DocumentedSkip]
    found: list[tuple[str, str, str]] = field(default_factory=list)  # (nodeid, kind, reason)

    def _check(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        skip = skip_of(report)
        if skip is not None and not is_documented(skip[1], self.documented):
            self.found.append((report.nodeid, *skip))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._check(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._check(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Runs before the terminal summary; a run that already failed (or stopped) keeps its code.
        if self.found and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.found:
            return
        terminalreporter.section("undocumented skips", sep="=", red=True, bold=True)
        for nodeid, kind, reason in self.found:
            terminalreporter.line(f"{nodeid}: {kind}: {reason}")
        terminalreporter.line(
            f"CI is set, so {len(self.found)} undocumented skip(s) fail this run: make the "
            "test run here, or add its reason to DOCUMENTED_SKIPS in tests/skips.py with why "
            "it may skip.",
            red=True,
            bold=True,
        )


def enforce_under_ci(
    config: pytest.Config, documented: Sequence[DocumentedSkip] = DOCUMENTED_SKIPS
) -> None:
    """Register the rule when CI is set (nothing happens elsewhere)."""
    if in_ci():
        config.pluginmanager.register(UndocumentedSkips(documented), "undocumented-skips")
