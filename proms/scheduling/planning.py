"""Planned messages: the outbox rows of each assessment window, written, re-planned and
cancelled from the pure rules (proms.scheduling.rules). Flush, never commit.

Enrollment (proms.admin.enrollment) writes the first plan; a change of a patient's details,
an opt-out or opt-in, and the scheduler's reconcile sweep plan again with the same functions,
so every path agrees on what should be pending.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from proms.admin.models import (
    Channel,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Patient,
    Protocol,
    ProtocolTimepoint,
)
from proms.auth.models import StaffUser
from proms.scheduling.models import (
    OPEN_STATUSES,
    Assessment,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scheduling.rules import (
    AssessmentWindow,
    PlannedMessage,
    QuietHours,
    Recipient,
    Skip,
    TimepointRule,
    assessment_windows,
    plan_messages,
)


class PlanningError(ValueError):
    """A change that cannot be made; the message is shown as it is (AdminError in admin)."""


# Reading a protocol and a patient as the pure rules need them --------------------------------


def rule_of(timepoint: ProtocolTimepoint) -> TimepointRule:
    return TimepointRule(
        key=timepoint.key,
        offset_days=timepoint.offset_days,
        window_before_days=timepoint.window_before_days,
        window_after_days=timepoint.window_after_days,
        send_time_local=timepoint.send_time_local,
    )


def recipient_of(patient: Patient) -> Recipient:
    return Recipient(
        time_zone=patient.time_zone,
        preferred_channel=patient.preferred_channel.value,
        has_email=bool(patient.email),
        has_phone=bool(patient.phone),
        opted_out=patient.opted_out_at is not None,
    )


def quiet_hours_of(clinic: Clinic) -> QuietHours:
    return QuietHours(clinic.quiet_hours_start, clinic.quiet_hours_end)


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """One time point's assessment window, with its messages."""

    timepoint: ProtocolTimepoint
    window: AssessmentWindow
    messages: list[PlannedMessage]
    zone: ZoneInfo
    reused: bool = False  # a returning patient's baseline from an earlier course

    def local(self, instant: dt.datetime) -> dt.datetime:
        return instant.astimezone(self.zone)

    @property
    def opens_local(self) -> dt.datetime:
        return self.local(self.window.opens_at)

    @property
    def due_local(self) -> dt.datetime:
        return self.local(self.window.due_at)

    @property
    def closes_local(self) -> dt.datetime:
        """The last moment of the window, shown as the day it ends (it closes at midnight)."""
        return self.local(self.window.closes_at - dt.timedelta(minutes=1))


def plan_windows(
    patient: Patient,
    protocol: Protocol,
    anchor_on: dt.date,
    now: dt.datetime,
    timepoints: Sequence[ProtocolTimepoint] | None = None,
) -> list[WindowPlan]:
    """Every time point's window and messages in the patient's local time."""
    timepoints = list(protocol.timepoints if timepoints is None else timepoints)
    windows = assessment_windows(anchor_on, [rule_of(tp) for tp in timepoints], patient.time_zone)
    recipient = recipient_of(patient)
    quiet = quiet_hours_of(patient.clinic)
    zone = ZoneInfo(patient.time_zone)
    return [
        WindowPlan(
            timepoint=tp,
            window=window,
            messages=plan_messages(
                window,
                rule_of(tp),
                tp.reminder_offsets_days,
                recipient,
                protocol.channels,
                quiet,
                now,
            ),
            zone=zone,
        )
        for tp, window in zip(timepoints, windows, strict=True)
    ]


def lock(session: Session, row: Patient | Enrollment | Notification) -> None:
    """Hold the row until the commit and read it again, so that two requests changing the same
    patient, course or message (a double click, two coordinators) run one after the other on
    PostgreSQL. (SQLite runs every transaction alone among writers: proms.db.)"""
    session.scalar(
        select(type(row))
        .where(type(row).id == row.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def message_key(assessment: Assessment, message: PlannedMessage) -> str:
    """The outbox row's idempotency key: one per assessment, window, message and channel.

    The window's opening day is part of it, so a moved window plans new messages while the
    ones already sent for the old window stay as they were.
    """
    return _key(assessment.id, assessment.opens_at, message)


def _key(assessment_id: int, opens_at: dt.datetime, message: PlannedMessage) -> str:
    opened = opens_at.date().isoformat()
    return (
        f"assessment:{assessment_id}:{opened}:{message.kind}:{message.number}:"
        f"{message.channel or 'none'}"
    )


def _message_rows(
    assessment_id: int, opens_at: dt.datetime, patient_id: int, messages: Sequence[PlannedMessage]
) -> list[dict[str, Any]]:
    """The outbox rows of a window's planned messages, as values to insert.

    Pending, or cancelled with the reason they skip: messages with no channel (no contact,
    reached by phone) are kept too, so the patient's page shows what was not sent and why. A
    message that could never go (after the window) has no row.
    """
    return [
        {
            "idempotency_key": _key(assessment_id, opens_at, message),
            "patient_id": patient_id,
            "assessment_id": assessment_id,
            "kind": NotificationKind.INVITE
            if message.kind == "invite"
            else NotificationKind.REMINDER,
            "channel": Channel(message.channel) if message.channel else Channel.NONE,
            "send_after": message.send_at,
            "status": NotificationStatus.CANCELLED if message.skip else NotificationStatus.PENDING,
            "cancel_reason": message.skip.value if message.skip else None,
        }
        for message in messages
        if message.skip not in (Skip.WINDOW_CLOSED, Skip.PASSED)
    ]


def write_messages(
    session: Session, assessment: Assessment, messages: Sequence[PlannedMessage]
) -> list[Notification]:
    """Outbox rows for the planned messages of one window (see `_message_rows`)."""
    rows = [
        Notification(**values)
        for values in _message_rows(
            assessment.id, assessment.opens_at, assessment.enrollment.patient_id, messages
        )
    ]
    session.add_all(rows)
    return rows


def cancel_pending(session: Session, assessment_ids: Sequence[int], reason: str) -> int:
    """Cancel the messages not yet sent of these assessments; returns how many."""
    if not assessment_ids:
        return 0
    result = session.execute(
        update(Notification)
        .where(
            Notification.assessment_id.in_(assessment_ids),
            Notification.status == NotificationStatus.PENDING,
        )
        .values(status=NotificationStatus.CANCELLED, cancel_reason=reason)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


# The kinds of message a window's plan makes (a new link is asked for, not planned).
PLANNED_KINDS = (NotificationKind.INVITE, NotificationKind.REMINDER)

# Why the dispatcher dropped a due message for a later one of the same window (after downtime).
SUPERSEDED = "superseded"

# Statuses of a message that was, or may have been, handed to a provider.
ATTEMPTED = (NotificationStatus.SENT, NotificationStatus.SENDING, NotificationStatus.UNKNOWN)


# Why a message was cancelled when planning (or re-planning) decided it: such a row is planned
# again when its cause goes away. Rows cancelled by what happened (answered, withdrawn) stay.
REPLANNABLE = frozenset({"rescheduled", *(skip.value for skip in Skip)})


def replace_messages(
    session: Session,
    assessment: Assessment,
    messages: Sequence[PlannedMessage],
    *,
    now: dt.datetime | None = None,
) -> int:
    """Make the window's outbox rows match its planned messages; returns how many will go
    (`match_plan` says how)."""
    rows = outbox_rows(session, [assessment.id]).get(assessment.id, [])
    fresh, _changed = match_plan(assessment, messages, rows, now=now)
    write_messages(session, assessment, fresh)
    session.flush()
    return sum(1 for m in messages if m.skip is None)


def outbox_rows(session: Session, assessment_ids: Sequence[int]) -> dict[int, list[Notification]]:
    """The planned rows (invitations and reminders) of these windows, locked, in one query."""
    found: dict[int, list[Notification]] = {}
    if not assessment_ids:
        return found
    for row in session.scalars(
        select(Notification)
        .where(
            Notification.assessment_id.in_(assessment_ids),
            Notification.kind.in_(PLANNED_KINDS),
        )
        # A dispatcher's claim commits first; then the row reads as "sending" and stays.
        .with_for_update()
        .execution_options(populate_existing=True)
    ):
        assert row.assessment_id is not None
        found.setdefault(row.assessment_id, []).append(row)
    return found


def match_plan(
    assessment: Assessment,
    messages: Sequence[PlannedMessage],
    rows: Sequence[Notification],
    *,
    now: dt.datetime | None = None,
) -> tuple[list[PlannedMessage], bool]:
    """Bring a window's existing outbox rows in line with its plan, in memory.

    Returns the planned messages that have no row yet, and whether any row changed.

    A row of the plan that exists is brought up to date if it was pending or cancelled by
    planning; one sent (or failed, or uncertain) stays as it was: nobody gets a message twice.
    A pending row the plan no longer has (an old window's, another channel's) is cancelled,
    except one whose time has come: the dispatcher sends it (or drops it) on its next sweep.
    A patient's request for a new link is not part of the plan and is left alone. A pending
    row already due at `now` keeps its time when the plan says "now" too (history stays true).
    """
    existing = {row.idempotency_key: row for row in rows}
    planned = {
        message_key(assessment, m): m
        for m in messages
        if m.skip not in (Skip.WINDOW_CLOSED, Skip.PASSED)
    }
    due = {message_key(assessment, m) for m in messages if m.skip is Skip.PASSED}
    changed = False
    for key, row in existing.items():
        if key not in planned and key not in due and row.status is NotificationStatus.PENDING:
            changed |= _set(row, NotificationStatus.CANCELLED, "rescheduled", row.send_after)
    fresh = []
    for key, message in planned.items():
        row = existing.get(key)
        if row is None:
            fresh.append(message)
        elif row.status is NotificationStatus.PENDING or (
            row.status is NotificationStatus.CANCELLED and row.cancel_reason in REPLANNABLE
        ):
            keep_time = now is not None and row.send_after <= now and message.send_at <= now
            changed |= _set(
                row,
                NotificationStatus.CANCELLED if message.skip else NotificationStatus.PENDING,
                message.skip.value if message.skip else None,
                row.send_after if keep_time else message.send_at,
            )
    return fresh, changed or bool(fresh)


def _set(
    row: Notification, status: NotificationStatus, reason: str | None, send_after: dt.datetime
) -> bool:
    """Change a row only where it differs (an unchanged row costs the flush nothing)."""
    if (row.status, row.cancel_reason, row.send_after) == (status, reason, send_after):
        return False
    row.status, row.cancel_reason, row.send_after = status, reason, send_after
    return True


def plan_for(
    assessment: Assessment, now: dt.datetime, rows: Sequence[Notification] | None = None
) -> list[PlannedMessage]:
    """The messages of an assessment's window as it stands, for the patient as they are now.

    Once the window's invitation has gone, its reminders count from the day it went, as they
    did when first planned (re-planning later must not push them back day by day). `rows` are
    the window's outbox rows when the caller has them (else they are read).
    """
    enrollment = assessment.enrollment
    patient = enrollment.patient
    window = AssessmentWindow(
        key=assessment.timepoint.key,
        opens_at=assessment.opens_at,
        due_at=assessment.due_at,
        closes_at=assessment.closes_at,
    )
    if rows is None:
        session = object_session(assessment)
        assert session is not None
        rows = outbox_rows(session, [assessment.id]).get(assessment.id, [])
    return plan_messages(
        window,
        rule_of(assessment.timepoint),
        assessment.timepoint.reminder_offsets_days,
        recipient_of(patient),
        enrollment.protocol.channels,
        quiet_hours_of(patient.clinic),
        now,
        invited_at=invited_at(assessment, rows),
    )


def invited_at(assessment: Assessment, rows: Sequence[Notification]) -> dt.datetime | None:
    """When the current window's invitation went (or was handed over), if it did; or when it
    was due, if a later reminder went in its place (superseded)."""
    opened = f"assessment:{assessment.id}:{assessment.opens_at.date().isoformat()}:invite:"
    times = [
        row.sent_at or row.handed_over_at if row.status in ATTEMPTED else row.send_after
        for row in rows
        if row.idempotency_key.startswith(opened)
        and (row.status in ATTEMPTED or row.cancel_reason == SUPERSEDED)
    ]
    return min((t for t in times if t is not None), default=None)


def replan_messages(session: Session, patient: Patient, *, now: dt.datetime) -> int:
    """Plan again the messages of every window still to come or open of the patient's active
    courses, after their contact details, channel or opt-out changed. Returns how many
    messages will go."""
    assessments = session.scalars(
        select(Assessment)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .where(
            Enrollment.patient_id == patient.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Assessment.status.in_(OPEN_STATUSES),
            Assessment.closes_at > now,
        )
        .order_by(Assessment.opens_at, Assessment.id)
    ).all()
    return sum(replace_messages(session, a, plan_for(a, now), now=now) for a in assessments)


def opt_out(
    session: Session, patient: Patient, *, now: dt.datetime, reason: str, by: StaffUser | None
) -> int:
    """Stop every message to the patient; returns how many planned messages were cancelled."""
    lock(session, patient)
    if patient.opted_out_at is not None:
        raise PlanningError("The patient has already opted out.")
    if not reason.strip():
        raise PlanningError("Give the reason the patient opted out.")
    patient.opted_out_at = now
    patient.opted_out_by_id = by.id if by else None
    patient.opt_out_reason = reason.strip()
    result = session.execute(
        update(Notification)
        .where(
            Notification.patient_id == patient.id,
            Notification.status == NotificationStatus.PENDING,
        )
        .values(status=NotificationStatus.CANCELLED, cancel_reason=Skip.OPTED_OUT.value)
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return result.rowcount


def opt_in(session: Session, patient: Patient, *, now: dt.datetime) -> int:
    """Messages again: every window still to come or open is planned again, as it stands now
    (not as it stood at the opt-out: a window may have moved since). Returns how many will go."""
    lock(session, patient)
    if patient.opted_out_at is None:
        raise PlanningError("The patient has not opted out.")
    patient.opted_out_at = None
    patient.opted_out_by_id = None
    patient.opt_out_reason = None
    session.flush()
    return replan_messages(session, patient, now=now)
