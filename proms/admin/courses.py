"""Treatment courses: the infusion days of an enrollment, given or missed. Flush, never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from proms.admin.errors import AdminError
from proms.admin.models import (  # the constants live with the model, for every part to read
    COURSE_DAYS,
    SIDE_EFFECTS,
    Enrollment,
    SessionStatus,
    TreatmentSession,
)
from proms.auth.models import StaffUser

# The first infusion days a course may have: a year outside these is a typo (and far enough
# out, a schedule's dates would not fit in a date at all).
FIRST_ANCHOR = dt.date(1900, 1, 1)
LAST_ANCHOR = dt.date(2999, 12, 31)


def check_anchor_on(value: dt.date) -> dt.date:
    """The first infusion day, or AdminError when its year cannot be right."""
    if not FIRST_ANCHOR <= value <= LAST_ANCHOR:
        raise AdminError(
            f"The first infusion day must be between {FIRST_ANCHOR.year} and "
            f"{LAST_ANCHOR.year}: check the year."
        )
    return value


def course_days(enrollment: Enrollment) -> list[TreatmentSession]:
    """Every infusion day of the course: the recorded ones, and the rest as planned (unsaved)."""
    recorded = {s.day_number: s for s in enrollment.sessions}
    days = []
    for number in range(1, max(COURSE_DAYS, *recorded.keys(), 0) + 1):
        days.append(
            recorded.get(number)
            or TreatmentSession(
                day_number=number,
                scheduled_on=enrollment.anchor_on + dt.timedelta(days=number - 1),
                status=SessionStatus.PLANNED,
                side_effects=[],
                notes="",
            )
        )
    return days


def record_session(
    enrollment: Enrollment,
    day_number: int,
    *,
    given: bool,
    missed_reason: str,
    side_effects: Sequence[str],
    notes: str,
    now: dt.datetime,
    by: StaffUser | None,
) -> TreatmentSession:
    """Record one infusion day as given or missed; recording it again corrects it."""
    if not 1 <= day_number <= COURSE_DAYS:
        raise AdminError(f"A course has infusion days 1 to {COURSE_DAYS}.")
    unknown = sorted(set(side_effects) - SIDE_EFFECTS.keys())
    if unknown:
        raise AdminError(f"Unknown side effect: {', '.join(unknown)}.")
    if not given and not missed_reason.strip():
        raise AdminError("Say why the infusion was missed.")
    if not given and side_effects:
        raise AdminError("A missed infusion has no side effects to note.")
    session = next((s for s in enrollment.sessions if s.day_number == day_number), None)
    if session is None:
        session = TreatmentSession(
            day_number=day_number,
            scheduled_on=enrollment.anchor_on + dt.timedelta(days=day_number - 1),
        )
        enrollment.sessions.append(session)
    session.status = SessionStatus.DONE if given else SessionStatus.MISSED
    session.performed_at = now if given else None
    session.missed_reason = None if given else missed_reason.strip()
    session.side_effects = sorted(set(side_effects)) if given else []
    session.notes = notes.strip()
    session.recorded_by_id = by.id if by else None
    session.recorded_at = now
    return session
