"""Enrollment: a patient on a protocol version from an anchor date, with its assessments and
planned messages (the outbox rows), created, moved and cancelled together. Flush, never commit.

Every change is previewed with the same function that makes it: `plan_enrollment` gives what
enrolling would create, `anchor_change` what moving the anchor would move, so the preview a
coordinator reads is exactly what saving does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, object_session

from proms.admin.errors import AdminError
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
    AssessmentStatus,
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

EnrollmentError = AdminError


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


# Plans ---------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class EnrollmentPlan:
    patient: Patient
    protocol: Protocol
    anchor_on: dt.date
    windows: list[WindowPlan]
    baseline_from: Enrollment | None = None

    @property
    def messages(self) -> list[PlannedMessage]:
        return [message for plan in self.windows for message in plan.messages]

    @property
    def sendable(self) -> list[PlannedMessage]:
        return [message for message in self.messages if message.sendable]


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


def plan_enrollment(
    patient: Patient,
    protocol: Protocol,
    anchor_on: dt.date,
    now: dt.datetime,
    *,
    baseline_from: Enrollment | None = None,
) -> EnrollmentPlan:
    """What enrolling would create: checks first (EnrollmentError), then every window."""
    check_enrollable(patient, protocol)
    windows = plan_windows(patient, protocol, anchor_on, now)
    if baseline_from is not None:
        check_baseline_reuse(patient, protocol, anchor_on, baseline_from)
        first = windows[0]
        windows[0] = WindowPlan(first.timepoint, first.window, [], first.zone, reused=True)
    return EnrollmentPlan(patient, protocol, anchor_on, windows, baseline_from)


def check_enrollable(patient: Patient, protocol: Protocol) -> None:
    if protocol.clinic_id != patient.clinic_id:
        raise EnrollmentError("The protocol belongs to another clinic.")
    if not protocol.is_active:
        raise EnrollmentError("This protocol version is retired; enroll with the current version.")
    if not protocol.timepoints:
        raise EnrollmentError("This protocol has no time points.")
    if protocol.requires_identity_check and patient.birth_on is None:
        raise EnrollmentError(
            "This protocol asks patients for their date of birth before the questions: "
            "record the patient's date of birth first."
        )


def reusable_baselines(session: Session, patient: Patient, anchor_on: dt.date) -> list[Enrollment]:
    """Earlier courses of the patient whose completed baseline is recent enough to reuse."""
    days = patient.clinic.baseline_reuse_days
    found = []
    for enrollment in patient.enrollments:
        baseline = _baseline_assessment(enrollment)
        if baseline is None or baseline.completed_at is None:
            continue
        age = anchor_on - _local_day(baseline.completed_at, patient)
        if dt.timedelta(0) <= age <= dt.timedelta(days=days):
            found.append(enrollment)
    return found


def check_baseline_reuse(
    patient: Patient, protocol: Protocol, anchor_on: dt.date, earlier: Enrollment
) -> None:
    baseline = _baseline_assessment(earlier)
    if earlier.patient_id != patient.id or baseline is None or baseline.completed_at is None:
        raise EnrollmentError("That course has no answered baseline of this patient to reuse.")
    days = patient.clinic.baseline_reuse_days
    age = anchor_on - _local_day(baseline.completed_at, patient)
    if not dt.timedelta(0) <= age <= dt.timedelta(days=days):
        raise EnrollmentError(
            f"That baseline was answered {age.days} days before the new course; the clinic "
            f"reuses baselines up to {days} days old. Give the course its own baseline."
        )


def _local_day(moment: dt.datetime, patient: Patient) -> dt.date:
    """The day on the patient's calendar (what "answered N days before" counts)."""
    return moment.astimezone(ZoneInfo(patient.time_zone)).date()


def _baseline_assessment(enrollment: Enrollment) -> Assessment | None:
    """The assessment of the enrollment's first time point (its baseline).

    Found by key: an answered baseline keeps its old version's time point when the course
    moves to a new protocol version.
    """
    first = enrollment.protocol.timepoints[0] if enrollment.protocol.timepoints else None
    if first is None:
        return None
    return next((a for a in enrollment.assessments if a.timepoint.key == first.key), None)


# Writing -------------------------------------------------------------------------------------


def lock(session: Session, row: Patient | Enrollment) -> None:
    """Hold the row until the commit and read it again, so that two requests changing the same
    patient or course (a double click, two coordinators) run one after the other on
    PostgreSQL. (SQLite runs every transaction alone among writers: proms.db.)"""
    session.scalar(
        select(type(row))
        .where(type(row).id == row.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def check_not_enrolled(
    session: Session, patients: Sequence[Patient], protocol: Protocol, anchors: Sequence[dt.date]
) -> None:
    """Refuse a second active course of the same protocol from the same day (a double submit);
    one query for any number of patients."""
    wanted = set(zip((p.id for p in patients), anchors, strict=True))
    found = session.execute(
        select(Enrollment.patient_id, Enrollment.anchor_on)
        .join(Protocol, Enrollment.protocol_id == Protocol.id)
        .where(
            Enrollment.patient_id.in_([p.id for p in patients]),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Protocol.slug == protocol.slug,
        )
    ).all()
    clash = next((row for row in found if (row[0], row[1]) in wanted), None)
    if clash is not None:
        patient = next(p for p in patients if p.id == clash[0])
        raise AdminError(
            f"{patient.display_name} already has this course from {clash[1].isoformat()}."
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


def enroll(
    session: Session,
    patient: Patient,
    protocol: Protocol,
    anchor_on: dt.date,
    *,
    now: dt.datetime,
    created_by: StaffUser | None = None,
    baseline_from: Enrollment | None = None,
) -> Enrollment:
    """Start a treatment course: the enrollment, its assessments and their outbox rows."""
    [enrollment] = enroll_many(
        session,
        protocol,
        [(patient, anchor_on)],
        now=now,
        created_by=created_by,
        baseline_from=baseline_from,
    )
    return enrollment


def enroll_many(
    session: Session,
    protocol: Protocol,
    courses: Sequence[tuple[Patient, dt.date]],
    *,
    now: dt.datetime,
    created_by: StaffUser | None = None,
    baseline_from: Enrollment | None = None,
) -> list[Enrollment]:
    """Start one course per (patient, anchor date), in three inserts however many there are
    (an import of thousands of rows stays well inside one request).

    The patients are locked (in id order, so two imports never deadlock), the protocol version
    with a shared lock: enrollments on one version do not wait for each other, but an edit of
    the version in place (`protocol_editing.save_edit`) waits for them, and they for it.
    """
    patients = [patient for patient, _anchor in courses]
    session.scalars(
        select(Patient)
        .where(Patient.id.in_(sorted({p.id for p in patients})))
        .order_by(Patient.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    session.scalar(select(Protocol.id).where(Protocol.id == protocol.id).with_for_update(read=True))
    session.refresh(protocol)
    if not protocol.is_active:
        raise EnrollmentError("This protocol version is retired; enroll with the current version.")
    check_not_enrolled(session, patients, protocol, [anchor for _p, anchor in courses])
    plans = [
        plan_enrollment(patient, protocol, anchor_on, now, baseline_from=baseline_from)
        for patient, anchor_on in courses
    ]
    enrollments = [
        Enrollment(
            patient=plan.patient,
            protocol=protocol,
            anchor_on=plan.anchor_on,
            created_by_id=created_by.id if created_by else None,
            baseline_from_id=baseline_from.id if baseline_from else None,
        )
        for plan in plans
    ]
    session.add_all(enrollments)
    session.flush()  # the enrollments' ids
    # Assessments and messages by plain inserts: thousands of rows in a few statements.
    windows = [
        (enrollment, window_plan)
        for enrollment, plan in zip(enrollments, plans, strict=True)
        for window_plan in plan.windows
    ]
    if not windows:
        return enrollments
    ids = session.scalars(
        insert(Assessment).returning(Assessment.id, sort_by_parameter_order=True),
        [
            {
                "enrollment_id": enrollment.id,
                "timepoint_id": window_plan.timepoint.id,
                "opens_at": window_plan.window.opens_at,
                "due_at": window_plan.window.due_at,
                "closes_at": window_plan.window.closes_at,
                "status": AssessmentStatus.CANCELLED
                if window_plan.reused
                else AssessmentStatus.SCHEDULED,
                "created_at": now,
            }
            for enrollment, window_plan in windows
        ],
    ).all()
    messages = [
        row
        for assessment_id, (enrollment, window_plan) in zip(ids, windows, strict=True)
        for row in _message_rows(
            assessment_id, window_plan.window.opens_at, enrollment.patient_id, window_plan.messages
        )
    ]
    if messages:
        session.execute(insert(Notification), messages)
    return enrollments


# Changes -------------------------------------------------------------------------------------


ANSWERED = frozenset({AssessmentStatus.COMPLETED, AssessmentStatus.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class WindowChange:
    """What a change does to one assessment."""

    timepoint: ProtocolTimepoint
    action: str  # "moved", "unchanged", "kept" (answered), "added", "cancelled"
    before: Assessment | None
    after: WindowPlan | None
    cancelled_messages: int = 0
    messages: list[PlannedMessage] = field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo | None:
        return self.after.zone if self.after else None


def anchor_change(
    enrollment: Enrollment, new_anchor: dt.date, now: dt.datetime
) -> list[WindowChange]:
    """What moving the anchor date would do: answered windows stay, the others move."""
    if enrollment.status is not EnrollmentStatus.ACTIVE:
        raise EnrollmentError("Only an active course can be moved.")
    plans = {
        p.timepoint.id: p
        for p in plan_windows(enrollment.patient, enrollment.protocol, new_anchor, now)
    }
    changes = []
    for assessment in enrollment.assessments:
        plan = plans.get(assessment.timepoint_id)
        if assessment.status in ANSWERED or plan is None:
            changes.append(WindowChange(assessment.timepoint, "kept", assessment, None))
            continue
        if assessment.status is AssessmentStatus.CANCELLED:
            changes.append(WindowChange(assessment.timepoint, "unchanged", assessment, None))
            continue
        same = (
            plan.window.opens_at == assessment.opens_at
            and plan.window.closes_at == assessment.closes_at
        )
        changes.append(
            WindowChange(
                assessment.timepoint,
                "unchanged" if same else "moved",
                assessment,
                plan,
                cancelled_messages=0 if same else _pending_count(assessment),
                messages=[] if same else plan.messages,
            )
        )
    return sorted(changes, key=lambda c: c.timepoint.position)


def _pending_count(assessment: Assessment) -> int:
    return sum(1 for row in _notifications(assessment) if row.status is NotificationStatus.PENDING)


def _notifications(assessment: Assessment) -> list[Notification]:
    session = object_session(assessment)
    assert session is not None
    return list(
        session.scalars(select(Notification).where(Notification.assessment_id == assessment.id))
    )


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


def change_anchor(
    session: Session, enrollment: Enrollment, new_anchor: dt.date, *, now: dt.datetime
) -> list[WindowChange]:
    """Move every window not yet answered and its messages to a new anchor date."""
    lock(session, enrollment)
    session.refresh(enrollment, ["assessments"])
    changes = anchor_change(enrollment, new_anchor, now)
    moved = [c for c in changes if c.action == "moved"]
    cancel_pending(session, [c.before.id for c in moved if c.before], "rescheduled")
    for change in moved:
        assert change.before is not None
        assert change.after is not None
        window = change.after.window
        change.before.opens_at = window.opens_at
        change.before.due_at = window.due_at
        change.before.closes_at = window.closes_at
        change.before.status = AssessmentStatus.SCHEDULED
    enrollment.anchor_on = new_anchor
    session.flush()
    for change in moved:
        assert change.before is not None
        replace_messages(session, change.before, change.messages)
    session.flush()
    return changes


# Why a message was cancelled when planning (or re-planning) decided it: such a row is planned
# again when its cause goes away. Rows cancelled by what happened (answered, withdrawn) stay.
REPLANNABLE = frozenset({"rescheduled", *(skip.value for skip in Skip)})


def replace_messages(
    session: Session, assessment: Assessment, messages: Sequence[PlannedMessage]
) -> int:
    """Make the window's outbox rows match its planned messages; returns how many will go.

    A row of the plan that exists is brought up to date if it was pending or cancelled by
    planning; one sent (or failed, or uncertain) stays as it was: nobody gets a message twice.
    A pending row the plan no longer has (an old window's, another channel's) is cancelled.
    """
    existing = {
        row.idempotency_key: row
        for row in session.scalars(
            select(Notification).where(Notification.assessment_id == assessment.id)
        )
    }
    planned = {
        message_key(assessment, m): m
        for m in messages
        if m.skip not in (Skip.WINDOW_CLOSED, Skip.PASSED)
    }
    for key, row in existing.items():
        if key not in planned and row.status is NotificationStatus.PENDING:
            row.status = NotificationStatus.CANCELLED
            row.cancel_reason = "rescheduled"
    fresh = []
    for key, message in planned.items():
        row = existing.get(key)
        if row is None:
            fresh.append(message)
        elif row.status is NotificationStatus.PENDING or (
            row.status is NotificationStatus.CANCELLED and row.cancel_reason in REPLANNABLE
        ):
            row.status = (
                NotificationStatus.CANCELLED if message.skip else NotificationStatus.PENDING
            )
            row.cancel_reason = message.skip.value if message.skip else None
            row.send_after = message.send_at
    write_messages(session, assessment, fresh)
    session.flush()
    return sum(1 for m in planned.values() if m.skip is None)


def plan_for(assessment: Assessment, now: dt.datetime) -> list[PlannedMessage]:
    """The messages of an assessment's window as it stands, for the patient as they are now."""
    enrollment = assessment.enrollment
    patient = enrollment.patient
    window = AssessmentWindow(
        key=assessment.timepoint.key,
        opens_at=assessment.opens_at,
        due_at=assessment.due_at,
        closes_at=assessment.closes_at,
    )
    return plan_messages(
        window,
        rule_of(assessment.timepoint),
        assessment.timepoint.reminder_offsets_days,
        recipient_of(patient),
        enrollment.protocol.channels,
        quiet_hours_of(patient.clinic),
        now,
    )


def replan_patient(
    session: Session, patient: Patient, *, now: dt.datetime, zone_changed: bool = False
) -> int:
    """Plan again the messages of every window still to come or open of the patient's active
    courses, after their contact details, channel, time zone or opt-out changed. Returns how
    many messages will go.

    A new time zone first moves the windows not yet answered to the same local days and times
    in that zone (the anchor date stays), as if the course had been planned there.
    """
    if zone_changed:
        for course in patient.enrollments:
            if course.status is EnrollmentStatus.ACTIVE:
                change_anchor(session, course, course.anchor_on, now=now)
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
    return sum(replace_messages(session, a, plan_for(a, now)) for a in assessments)


def withdraw(
    session: Session,
    enrollment: Enrollment,
    *,
    now: dt.datetime,
    reason: str,
    by: StaffUser | None = None,
) -> tuple[int, int]:
    """Stop a course: cancel its open windows and every message not yet sent, at once.

    Returns (assessments cancelled, messages cancelled). Windows that had already closed
    unanswered are left for the expiry sweep: they were missed, not cancelled.
    """
    lock(session, enrollment)
    if enrollment.status is EnrollmentStatus.WITHDRAWN:
        raise EnrollmentError("This course is already withdrawn.")
    if not reason.strip():
        raise EnrollmentError("Give the reason for withdrawing.")
    enrollment.status = EnrollmentStatus.WITHDRAWN
    enrollment.withdrawn_at = now
    enrollment.withdrawal_reason = reason.strip()
    enrollment.withdrawn_by_id = by.id if by else None
    cancelled = []
    for assessment in enrollment.assessments:
        if assessment.closes_at > now and assessment.status in OPEN_STATUSES:
            assessment.status = AssessmentStatus.CANCELLED
            cancelled.append(assessment.id)
    messages = cancel_pending(session, [a.id for a in enrollment.assessments], "withdrawn")
    session.flush()
    return len(cancelled), messages


def opt_out(
    session: Session, patient: Patient, *, now: dt.datetime, reason: str, by: StaffUser | None
) -> int:
    """Stop every message to the patient; returns how many planned messages were cancelled."""
    lock(session, patient)
    if patient.opted_out_at is not None:
        raise EnrollmentError("The patient has already opted out.")
    if not reason.strip():
        raise EnrollmentError("Give the reason the patient opted out.")
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
        raise EnrollmentError("The patient has not opted out.")
    patient.opted_out_at = None
    patient.opted_out_by_id = None
    patient.opt_out_reason = None
    session.flush()
    return replan_patient(session, patient, now=now)
