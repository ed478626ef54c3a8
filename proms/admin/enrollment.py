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
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, object_session

from proms.admin.errors import AdminError
from proms.admin.models import Enrollment, EnrollmentStatus, Patient, Protocol, ProtocolTimepoint
from proms.auth.models import StaffUser
from proms.scheduling.models import (
    OPEN_STATUSES,
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from proms.scheduling.planning import (  # noqa: F401 - the enrollment API, planning included
    REPLANNABLE,
    WindowPlan,
    _message_rows,
    cancel_pending,
    lock,
    message_key,
    opt_in,
    opt_out,
    plan_for,
    plan_windows,
    quiet_hours_of,
    recipient_of,
    replace_messages,
    replan_messages,
    rule_of,
    write_messages,
)
from proms.scheduling.rules import PlannedMessage

EnrollmentError = AdminError


# Plans ---------------------------------------------------------------------------------------


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
        replace_messages(session, change.before, change.messages, now=now)
    session.flush()
    return changes


def replan_patient(
    session: Session, patient: Patient, *, now: dt.datetime, zone_changed: bool = False
) -> int:
    """Plan again the messages of the patient's active courses after their details changed
    (`planning.replan_messages`); returns how many messages will go.

    A new time zone first moves the windows not yet answered to the same local days and times
    in that zone (the anchor date stays), as if the course had been planned there.
    """
    if zone_changed:
        for course in patient.enrollments:
            if course.status is EnrollmentStatus.ACTIVE:
                change_anchor(session, course, course.anchor_on, now=now)
    return replan_messages(session, patient, now=now)


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
