"""The pure schedule rules: windows in the patient's time zone, across daylight-saving changes."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from proms.scheduling import rules
from proms.scheduling.rules import TimepointRule, assessment_windows, local_instant

UTC = dt.UTC


def rule(
    key: str = "t", offset: int = 0, before: int = 0, after: int = 0, send: dt.time = dt.time(9, 0)
) -> TimepointRule:
    return TimepointRule(key, offset, before, after, send)


def test_baseline_window_in_new_york_winter() -> None:
    [window] = assessment_windows(
        dt.date(2026, 1, 12), [rule("baseline", 0, 14, 0)], "America/New_York"
    )
    assert window.key == "baseline"
    assert window.opens_at == dt.datetime(2025, 12, 29, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert window.due_at == dt.datetime(2026, 1, 12, 14, 0, tzinfo=UTC)
    assert window.closes_at == dt.datetime(2026, 1, 13, 5, 0, tzinfo=UTC)  # local midnight


def test_offsets_and_after_days() -> None:
    [window] = assessment_windows(
        dt.date(2026, 1, 1), [rule("m3", 90, 7, 14, dt.time(10, 30))], "UTC"
    )
    assert window.opens_at == dt.datetime(2026, 3, 25, 10, 30, tzinfo=UTC)
    assert window.due_at == dt.datetime(2026, 4, 1, 10, 30, tzinfo=UTC)
    assert window.closes_at == dt.datetime(2026, 4, 16, 0, 0, tzinfo=UTC)


def test_send_time_follows_the_local_clock_across_dst() -> None:
    """09:00 local is 14:00 UTC in winter and 13:00 UTC in summer in New York."""
    windows = assessment_windows(
        dt.date(2026, 3, 1), [rule("a", 0), rule("b", 14)], "America/New_York"
    )
    assert [w.due_at.hour for w in windows] == [14, 13]


def test_a_window_spanning_the_spring_change_is_shorter_by_an_hour() -> None:
    [window] = assessment_windows(dt.date(2026, 3, 8), [rule("x", 0, 1, 0)], "America/New_York")
    # Opens Saturday 09:00 EST, due Sunday 09:00 EDT: 23 hours.
    assert window.due_at - window.opens_at == dt.timedelta(hours=23)


def test_a_send_time_in_the_skipped_hour_still_gets_a_valid_instant() -> None:
    zone = ZoneInfo("America/New_York")
    instant = local_instant(dt.date(2026, 3, 8), dt.time(2, 30), zone)
    assert instant.tzinfo is UTC
    assert instant.astimezone(zone).hour == 3  # 02:30 does not exist; the clock shows 03:30


def test_a_repeated_hour_resolves_to_the_first_occurrence() -> None:
    zone = ZoneInfo("America/New_York")
    instant = local_instant(dt.date(2026, 11, 1), dt.time(1, 30), zone)
    assert instant == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not EST


def test_southern_hemisphere_and_half_hour_zones() -> None:
    [sydney] = assessment_windows(dt.date(2026, 1, 10), [rule()], "Australia/Sydney")
    assert sydney.due_at == dt.datetime(2026, 1, 9, 22, 0, tzinfo=UTC)  # AEDT, UTC+11
    [kolkata] = assessment_windows(dt.date(2026, 1, 10), [rule()], "Asia/Kolkata")
    assert kolkata.due_at == dt.datetime(2026, 1, 10, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Pacific/Auckland", "UTC"])
def test_windows_are_ordered_and_aware(zone: str) -> None:
    tps = [rule("b", 0, 14, 0), rule("e", 4, 0, 3, dt.time(16)), rule("m6", 180, 7, 14)]
    for start in (dt.date(2026, 1, 1) + dt.timedelta(days=n * 11) for n in range(40)):
        for window in assessment_windows(start, tps, zone):
            assert window.opens_at <= window.due_at < window.closes_at
            assert window.opens_at.utcoffset() == dt.timedelta(0)


def test_unknown_time_zone_is_an_error() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        assessment_windows(dt.date(2026, 1, 1), [rule()], "Mars/Olympus_Mons")


@pytest.mark.parametrize("kwargs", [{"before": -1}, {"after": -2}])
def test_negative_windows_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        rule(**kwargs)


def test_send_time_must_be_a_wall_clock_time() -> None:
    with pytest.raises(ValueError, match="wall-clock"):
        rule(send=dt.time(9, 0, tzinfo=UTC))


def test_rules_module_is_pure() -> None:
    """No Flask, no SQLAlchemy, no proms.db: the rules can be reused anywhere."""
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"flask", "sqlalchemy", "proms"}
