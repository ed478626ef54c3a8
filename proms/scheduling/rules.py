"""Pure schedule rules: when each time point of a protocol opens, is due and closes.

No Flask, no SQLAlchemy: plain values in, plain values out, so the rules can be tested exhaustively
and reused by the scheduler, the enrollment service and reports alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class TimepointRule:
    """A time point relative to the anchor date (day 0 = first day of the treatment course)."""

    key: str
    offset_days: int
    window_before_days: int
    window_after_days: int
    send_time_local: dt.time

    def __post_init__(self) -> None:
        if self.window_before_days < 0 or self.window_after_days < 0:
            raise ValueError(f"time point {self.key!r}: window days must not be negative")
        if self.send_time_local.tzinfo is not None:
            raise ValueError(f"time point {self.key!r}: send time is a local wall-clock time")


@dataclass(frozen=True, slots=True)
class AssessmentWindow:
    """When a time point's assessment opens, is due and closes, as aware UTC datetimes."""

    key: str
    opens_at: dt.datetime
    due_at: dt.datetime
    closes_at: dt.datetime


def local_instant(day: dt.date, wall_time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock time on a local date.

    A wall time that does not exist (the hour skipped when clocks go forward) resolves to the
    same instant as the hour before the change, which the clock shows one hour later; a time
    that happens twice (clocks go back) resolves to its first occurrence.
    """
    return dt.datetime.combine(day, wall_time, tzinfo=zone).astimezone(dt.UTC)


def assessment_windows(
    anchor_on: dt.date, timepoints: Sequence[TimepointRule], time_zone: str
) -> list[AssessmentWindow]:
    """Windows for every time point, in the patient's time zone.

    A time point opens `window_before_days` before its day at the send time, is due on its day at
    the send time, and closes at the end (local midnight) of the day `window_after_days` after it.
    """
    zone = ZoneInfo(time_zone)
    windows = []
    for rule in timepoints:
        day = anchor_on + dt.timedelta(days=rule.offset_days)
        windows.append(
            AssessmentWindow(
                key=rule.key,
                opens_at=local_instant(
                    day - dt.timedelta(days=rule.window_before_days), rule.send_time_local, zone
                ),
                due_at=local_instant(day, rule.send_time_local, zone),
                closes_at=local_instant(
                    day + dt.timedelta(days=rule.window_after_days + 1), dt.time(0, 0), zone
                ),
            )
        )
    return windows
