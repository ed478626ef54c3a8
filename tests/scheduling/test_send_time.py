"""When a due message may go (pure rules): quiet hours on the patient's clock, across a
daylight-saving change; the patient's daily cap counted in their own days; the gap after their
last message; nothing after the window closes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from proms.scheduling.rules import Pace, QuietHours, earliest_send

QUIET = QuietHours(dt.time(21, 0), dt.time(8, 0))
PACE = Pace(per_day=2, gap=dt.timedelta(hours=4))
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def at(zone: str, text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def test_outside_quiet_hours_with_nothing_sent_it_goes_now() -> None:
    now = at("America/New_York", "2027-03-10T10:00")
    assert earliest_send(now, LATER, "America/New_York", QUIET, PACE, []) == now


def test_inside_quiet_hours_it_waits_for_their_end_on_the_patients_clock() -> None:
    # 23:30 on the night the clocks go forward: 08:00 the next morning is EDT, not EST.
    now = at("America/New_York", "2027-03-13T23:30")
    expected = at("America/New_York", "2027-03-14T08:00")
    assert expected - now == dt.timedelta(hours=7, minutes=30)  # an hour of the night is skipped
    assert earliest_send(now, LATER, "America/New_York", QUIET, PACE, []) == expected


def test_the_gap_after_the_last_message() -> None:
    now = at("America/New_York", "2027-03-10T10:00")
    last = now - dt.timedelta(hours=1)
    assert earliest_send(now, LATER, "America/New_York", QUIET, PACE, [last]) == last + PACE.gap


def test_a_gap_ending_in_quiet_hours_waits_for_the_morning() -> None:
    now = at("America/New_York", "2027-03-10T20:00")
    last = now - dt.timedelta(hours=1)
    assert earliest_send(now, LATER, "America/New_York", QUIET, PACE, [last]) == at(
        "America/New_York", "2027-03-11T08:00"
    )


def test_the_daily_cap_counts_the_patients_own_day() -> None:
    # Kolkata is UTC+05:30: two messages on the patient's 10 March, one of them before UTC's
    # midnight; the third waits for the patient's next morning.
    zone = "Asia/Kolkata"
    sent = [at(zone, "2027-03-10T08:00"), at(zone, "2027-03-10T12:30")]
    now = at(zone, "2027-03-10T18:00")
    assert earliest_send(now, LATER, zone, QUIET, PACE, sent) == at(zone, "2027-03-11T08:00")


def test_nothing_after_the_window_closes() -> None:
    now = at("America/New_York", "2027-03-10T22:00")
    closes = at("America/New_York", "2027-03-11T00:00")
    assert earliest_send(now, closes, "America/New_York", QUIET, PACE, []) is None


def test_half_hour_daylight_saving_on_lord_howe() -> None:
    zone = "Australia/Lord_Howe"  # clocks go back 30 minutes on 2027-04-04 at 02:00
    now = at(zone, "2027-04-03T22:00")
    morning = earliest_send(now, LATER, zone, QUIET, PACE, [])
    assert morning is not None
    local = morning.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (8, 0)
    assert local.utcoffset() == dt.timedelta(hours=10, minutes=30)
