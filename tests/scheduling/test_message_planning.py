"""Planned messages: at the patient's local send time, never in quiet hours, never after the
window, each with the reason it is skipped. Pure rules, fixed clocks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from proms.scheduling.rules import (
    QuietHours,
    Recipient,
    Skip,
    TimepointRule,
    assessment_windows,
    plan_messages,
)

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")
QUIET = QuietHours(dt.time(21, 0), dt.time(8, 0))
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=UTC)


def recipient(**changes: object) -> Recipient:
    values: dict[str, object] = {
        "time_zone": "America/New_York",
        "preferred_channel": "email",
        "has_email": True,
        "has_phone": True,
        "opted_out": False,
    }
    values.update(changes)
    return Recipient(**values)  # type: ignore[arg-type]


def plan(
    send: dt.time = dt.time(10, 0),
    before: int = 14,
    after: int = 14,
    reminders: tuple[int, ...] = (2, 5),
    who: Recipient | None = None,
    now: dt.datetime = LONG_AGO,
    anchor: dt.date = dt.date(2026, 3, 20),
    channels: tuple[str, ...] = ("email", "sms"),
    quiet: QuietHours = QUIET,
):  # type: ignore[no-untyped-def]
    rule = TimepointRule("t", 0, before, after, send)
    who = who or recipient()
    [window] = assessment_windows(anchor, [rule], who.time_zone)
    return plan_messages(window, rule, reminders, who, channels, quiet, now)


def test_invitation_when_the_window_opens_and_reminders_at_the_same_local_time() -> None:
    invite, first, second = plan()
    assert invite.kind == "invite"
    assert invite.number == 0
    assert invite.local_at == dt.datetime(2026, 3, 6, 10, 0, tzinfo=NEW_YORK)
    assert first.local_at == dt.datetime(2026, 3, 8, 10, 0, tzinfo=NEW_YORK)
    # Daylight saving starts in New York on 2026-03-08: still 10:00 on the clock, one hour less UTC.
    assert invite.send_at == dt.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    assert first.send_at == dt.datetime(2026, 3, 8, 14, 0, tzinfo=UTC)
    assert second.local_at.date() == dt.date(2026, 3, 11)
    assert all(m.sendable and m.channel == "email" for m in (invite, first, second))


def test_a_time_in_quiet_hours_moves_to_their_end() -> None:
    invite, *_ = plan(send=dt.time(22, 30))
    assert invite.moved_for_quiet_hours
    assert invite.local_at == dt.datetime(2026, 3, 7, 8, 0, tzinfo=NEW_YORK)
    early, *_ = plan(send=dt.time(6, 15))
    assert early.local_at == dt.datetime(2026, 3, 6, 8, 0, tzinfo=NEW_YORK)


def test_quiet_hours_that_do_not_wrap_midnight() -> None:
    lunch = QuietHours(dt.time(12, 0), dt.time(13, 0))
    assert lunch.contains(dt.time(12, 30))
    assert not lunch.contains(dt.time(13, 0))
    invite, *_ = plan(send=dt.time(12, 15), quiet=lunch)
    assert invite.local_at.time() == dt.time(13, 0)
    assert not QuietHours(dt.time(8, 0), dt.time(8, 0)).contains(dt.time(8, 0))


def test_nothing_is_planned_after_the_window_closes() -> None:
    messages = plan(before=1, after=0, reminders=(2, 5))
    assert [m.skip for m in messages] == [None, Skip.WINDOW_CLOSED, Skip.WINDOW_CLOSED]


def test_quiet_hours_past_the_window_skip_the_message() -> None:
    # A 23:00 send time on the window's last day would move to 08:00 the next day: closed.
    [invite] = plan(send=dt.time(23, 0), before=0, after=0, reminders=())
    assert invite.skip is Skip.QUIET_HOURS


def test_enrolling_late_invites_now_and_reminds_counting_from_then() -> None:
    now = dt.datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # 12:00 in New York, window open
    invite, first, second = plan(now=now)
    assert invite.send_at == now
    assert invite.sendable
    # Not on the days counted from the window's opening (already past): from the invitation.
    assert first.local_at == dt.datetime(2026, 3, 12, 10, 0, tzinfo=NEW_YORK)
    assert second.local_at == dt.datetime(2026, 3, 15, 10, 0, tzinfo=NEW_YORK)
    assert first.sendable
    assert second.sendable


def test_enrolling_near_the_end_of_a_window_drops_reminders_after_it() -> None:
    now = dt.datetime(2026, 4, 1, 16, 0, tzinfo=UTC)  # the window's last day is 2026-04-03
    invite, first, second = plan(now=now)
    assert invite.sendable
    assert first.local_at.date() == dt.date(2026, 4, 3)
    assert first.sendable
    assert second.skip is Skip.WINDOW_CLOSED


def test_enrolling_late_at_night_invites_in_the_morning() -> None:
    now = dt.datetime(2026, 3, 11, 3, 0, tzinfo=UTC)  # 23:00 in New York
    invite, first, _second = plan(now=now)
    assert invite.local_at == dt.datetime(2026, 3, 11, 8, 0, tzinfo=NEW_YORK)
    # Two days after the morning the invitation went, not after the night it was planned.
    assert first.local_at == dt.datetime(2026, 3, 13, 10, 0, tzinfo=NEW_YORK)


def test_a_window_already_closed_plans_nothing_to_send() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=UTC)
    assert all(m.skip is Skip.WINDOW_CLOSED for m in plan(now=now))


@pytest.mark.parametrize(
    ("who", "channel", "skip"),
    [
        (recipient(), "email", None),
        (recipient(preferred_channel="sms"), "sms", None),
        (recipient(has_email=False), "sms", None),  # the protocol's next channel
        (recipient(has_email=False, has_phone=False), None, Skip.NO_CONTACT),
        (recipient(preferred_channel="none"), None, Skip.BY_PHONE),
        (recipient(opted_out=True), "email", Skip.OPTED_OUT),
        (recipient(opted_out=True, has_email=False, has_phone=False), None, Skip.OPTED_OUT),
    ],
)
def test_channel_and_contact(who: Recipient, channel: str | None, skip: Skip | None) -> None:
    invite, *_ = plan(who=who)
    assert (invite.channel, invite.skip) == (channel, skip)


def test_a_channel_the_protocol_does_not_use_is_not_used() -> None:
    invite, *_ = plan(who=recipient(preferred_channel="sms"), channels=("email",))
    assert invite.channel == "email"
    invite, *_ = plan(who=recipient(has_email=False), channels=("email",))
    assert invite.skip is Skip.NO_CONTACT


def test_a_send_time_in_the_hour_skipped_by_daylight_saving() -> None:
    # 02:30 does not exist in New York on 2026-03-08; with quiet hours off it resolves to 03:30.
    none = QuietHours(dt.time(0, 0), dt.time(0, 0))
    invite, *_ = plan(
        send=dt.time(2, 30), before=0, after=1, anchor=dt.date(2026, 3, 8), quiet=none
    )
    assert invite.send_at == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert invite.local_at.hour == 3
