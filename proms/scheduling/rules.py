"""Pure schedule rules: when each time point of a protocol opens, is due and closes.

No Flask, no SQLAlchemy: plain values in, plain values out, so the rules can be tested exhaustively
and reused by the scheduler, the enrollment service and reports alike.
"""

from __future__ import annotations

import datetime as dt
import enum
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


# Planned messages ------------------------------------------------------------------------------


class Skip(enum.StrEnum):
    """Why a planned message will not be sent. The values are stored as the row's cancel reason."""

    OPTED_OUT = "opted_out"
    NO_CONTACT = "no_contact"  # no address for any channel the protocol allows
    BY_PHONE = "by_phone"  # the patient asked to be reached by phone, not by messages
    QUIET_HOURS = "quiet_hours"  # moved out of quiet hours, it would fall after the window
    WINDOW_CLOSED = "window_closed"  # its time is after the window closes
    PASSED = "passed"  # a reminder whose time had passed when it was planned


SKIP_LABELS = {
    Skip.OPTED_OUT: "the patient opted out of messages",
    Skip.NO_CONTACT: "no email or mobile number on file for the protocol's channels",
    Skip.BY_PHONE: "the patient is reached by phone, not by messages",
    Skip.QUIET_HOURS: "quiet hours last until after the window closes",
    Skip.WINDOW_CLOSED: "the window has closed by then",
    Skip.PASSED: "its time had already passed when it was planned",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    """What planning needs to know of a patient."""

    time_zone: str
    preferred_channel: str  # "email", "sms" or "none"
    has_email: bool
    has_phone: bool
    opted_out: bool

    def channel(self, allowed: Sequence[str]) -> tuple[str | None, Skip | None]:
        """The channel to use, in the protocol's order of preference after the patient's own."""
        if self.preferred_channel == "none":
            return None, Skip.BY_PHONE
        reachable = {"email": self.has_email, "sms": self.has_phone}
        order = [self.preferred_channel, *allowed] if self.preferred_channel in allowed else allowed
        for channel in order:
            if reachable.get(channel):
                return channel, (Skip.OPTED_OUT if self.opted_out else None)
        return None, (Skip.OPTED_OUT if self.opted_out else Skip.NO_CONTACT)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local times when no message goes out; `start` after `end` wraps midnight (21:00-08:00)."""

    start: dt.time
    end: dt.time

    def contains(self, wall: dt.time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def next_allowed(self, local: dt.datetime) -> dt.datetime:
        """`local` if it is outside quiet hours, else the end of the quiet hours it falls in."""
        wall = local.time().replace(tzinfo=None)
        if not self.contains(wall):
            return local
        day = local.date()
        if self.start > self.end and wall >= self.start:
            day += dt.timedelta(days=1)
        zone = local.tzinfo
        assert isinstance(zone, ZoneInfo)
        return local_instant(day, self.end, zone).astimezone(zone)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One invitation or reminder of one assessment window."""

    timepoint_key: str
    kind: str  # "invite" or "reminder"
    number: int  # 0 for the invitation, 1, 2, ... for reminders
    channel: str | None
    send_at: dt.datetime  # UTC
    local_at: dt.datetime  # the same instant in the patient's zone
    skip: Skip | None = None
    moved_for_quiet_hours: bool = False

    @property
    def sendable(self) -> bool:
        return self.skip is None

    @property
    def label(self) -> str:
        return "Invitation" if self.kind == "invite" else f"Reminder {self.number}"


def plan_messages(
    window: AssessmentWindow,
    rule: TimepointRule,
    reminder_offsets_days: Sequence[int],
    recipient: Recipient,
    channels: Sequence[str],
    quiet: QuietHours,
    now: dt.datetime,
    *,
    invited_at: dt.datetime | None = None,
) -> list[PlannedMessage]:
    """The invitation and reminders of one window, each with its time or why it is skipped.

    The invitation goes when the window opens (at once if enrolment comes later); reminders go
    the given days after the invitation's day, at the time point's local send time. A time
    inside quiet hours moves to their end. Nothing is planned after the window closes, and
    nothing is planned in the past (no burst of late reminders). `invited_at` is when the
    invitation went, once it has: planning again later keeps its reminders where they were.
    """
    zone = ZoneInfo(recipient.time_zone)
    channel, contact_skip = recipient.channel(channels)
    # The invitation goes when the window opens, or now when enrolment comes later.
    invite_local = (invited_at or max(window.opens_at, now)).astimezone(zone)
    messages = []
    times = [(0, invite_local)]
    # Reminders count from the day the invitation actually goes (after any quiet hours).
    invite_day = quiet.next_allowed(invite_local).date()
    for number, days in enumerate(sorted(reminder_offsets_days), start=1):
        day = invite_day + dt.timedelta(days=days)
        times.append((number, local_instant(day, rule.send_time_local, zone).astimezone(zone)))
    for number, planned in times:
        skip: Skip | None = None
        moved = quiet.next_allowed(planned)
        if now >= window.closes_at or planned >= window.closes_at:
            skip = Skip.WINDOW_CLOSED
        elif moved >= window.closes_at:
            skip = Skip.QUIET_HOURS
        elif number > 0 and moved < now:
            skip = Skip.PASSED
        skip = skip or contact_skip
        messages.append(
            PlannedMessage(
                timepoint_key=window.key,
                kind="invite" if number == 0 else "reminder",
                number=number,
                channel=channel,
                send_at=moved.astimezone(dt.UTC),
                local_at=moved,
                skip=skip,
                moved_for_quiet_hours=moved != planned,
            )
        )
    return messages


# Send time -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """How often one patient may be messaged, across all their courses."""

    per_day: int  # messages in one local calendar day
    gap: dt.timedelta  # between two messages


def earliest_send(
    now: dt.datetime,
    closes_at: dt.datetime,
    time_zone: str,
    quiet: QuietHours,
    pace: Pace,
    recent: Sequence[dt.datetime],
) -> dt.datetime | None:
    """The first moment from `now` a message may go: now, or later (quiet hours, the patient's
    daily cap, the gap after their last message); None when that is after the window closes.

    `recent` are the times of the patient's messages already sent (or handed over).
    """
    zone = ZoneInfo(time_zone)
    at = now
    while at < closes_at:
        local = quiet.next_allowed(at.astimezone(zone))
        at = local.astimezone(dt.UTC)
        later = [t + pace.gap for t in recent if t <= at < t + pace.gap]
        if later:
            at = max(later)
            continue
        day = local.date()
        day_starts = local_instant(day, dt.time(0, 0), zone)
        day_ends = local_instant(day + dt.timedelta(days=1), dt.time(0, 0), zone)
        if sum(1 for t in recent if day_starts <= t < day_ends) >= pace.per_day:
            at = day_ends
            continue
        return at if at < closes_at else None
    return None
