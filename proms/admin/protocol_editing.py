"""Editing protocols: a plain spec, its validation, versions, and moving enrollments between them.

A protocol version with enrollments is never changed: an edit makes the next version and
retires the old one, whose enrollments stay on it until a coordinator moves them. Moving is
previewed with the same function that does it (`version_move_preview`), so what the
coordinator reads is what saving does. Flush, never commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proms.admin import enrollment as enrollments
from proms.admin.errors import AdminError
from proms.admin.models import (
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Protocol,
    ProtocolTimepoint,
)
from proms.auth.models import StaffUser
from proms.catalog.services import deployment_registry
from proms.instruments.registry import Registry
from proms.scheduling.models import Assessment, AssessmentStatus

SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
KEY_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
CHANNELS = ("email", "sms")
MAX_TIMEPOINTS = 30


# The spec: what the editor edits ------------------------------------------------------------


@dataclass
class InstrumentSpec:
    code: str
    version: str

    def __str__(self) -> str:
        return f"{self.code}@{self.version}"


@dataclass
class TimepointSpec:
    key: str
    label: str
    offset_days: int
    window_before_days: int = 0
    window_after_days: int = 0
    send_time_local: str = "10:00"  # HH:MM, the patient's local time
    reminder_offsets_days: list[int] = field(default_factory=list)
    instruments: list[InstrumentSpec] = field(default_factory=list)


@dataclass
class ProtocolSpec:
    slug: str
    name: str
    description: str = ""
    anchor_label: str = "First infusion day"
    channels: list[str] = field(default_factory=lambda: ["email", "sms"])
    horizon_days: int = 180
    requires_identity_check: bool = False
    timepoints: list[TimepointSpec] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def spec_of(protocol: Protocol) -> ProtocolSpec:
    """The stored version as the editor shows it."""
    return ProtocolSpec(
        slug=protocol.slug,
        name=protocol.name,
        description=protocol.description,
        anchor_label=protocol.anchor_label,
        channels=list(protocol.channels),
        horizon_days=protocol.horizon_days,
        requires_identity_check=protocol.requires_identity_check,
        timepoints=[
            TimepointSpec(
                key=tp.key,
                label=tp.label,
                offset_days=tp.offset_days,
                window_before_days=tp.window_before_days,
                window_after_days=tp.window_after_days,
                send_time_local=tp.send_time_local.strftime("%H:%M"),
                reminder_offsets_days=list(tp.reminder_offsets_days),
                instruments=[
                    InstrumentSpec(code, tp.instrument_versions.get(code, ""))
                    for code in tp.instrument_codes
                ],
            )
            for tp in protocol.timepoints
        ],
    )


def spec_from_json(data: dict[str, Any]) -> ProtocolSpec:
    """A bundled protocol file (proms/admin/protocols/*.json) as a spec."""
    return ProtocolSpec(
        slug=data["slug"],
        name=data["name"],
        description=data.get("description", ""),
        anchor_label=data.get("anchor_label", "First infusion day"),
        channels=list(data.get("channels", ["email", "sms"])),
        horizon_days=data.get("horizon_days", 180),
        requires_identity_check=data.get("requires_identity_check", False),
        timepoints=[
            TimepointSpec(
                key=tp["key"],
                label=tp["label"],
                offset_days=tp["offset_days"],
                window_before_days=tp["window_before_days"],
                window_after_days=tp["window_after_days"],
                send_time_local=tp["send_time_local"],
                reminder_offsets_days=list(tp["reminder_offsets_days"]),
                instruments=[
                    InstrumentSpec(entry["code"], entry.get("version", ""))
                    for entry in tp["instruments"]
                ],
            )
            for tp in data["timepoints"]
        ],
    )


# Validation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a spec cannot be saved, with where it is (for the form to show it there)."""

    message: str
    field: str | None = None  # a ProtocolSpec or TimepointSpec field name
    index: int | None = None  # the time point's index in the list (0-based)
    key: str = ""

    @property
    def where(self) -> str:
        if self.index is None:
            return ""
        return f"Time point {self.index + 1}" + (f" ({self.key})" if self.key else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InvalidProtocol(AdminError):
    """The spec has problems; `problems` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = list(problems)


def parse_time(value: str) -> dt.time | None:
    """HH:MM (or HH:MM:SS), or None when it is not a time of day."""
    if not re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value.strip()):
        return None
    try:
        return dt.time.fromisoformat(value.strip().zfill(5 if value.count(":") == 1 else 8))
    except ValueError:
        return None


def validate(spec: ProtocolSpec, registry: Registry) -> list[Problem]:
    """Every problem of the spec, protocol fields first, then time point by time point."""
    problems = _protocol_problems(spec)
    for index, timepoint in enumerate(spec.timepoints):
        problems.extend(
            Problem(message, name, index, timepoint.key)
            for name, message in _timepoint_problems(spec, timepoint, registry)
        )
    problems.extend(_sequence_problems(spec.timepoints))
    return problems


def _protocol_problems(spec: ProtocolSpec) -> list[Problem]:
    problems = []
    if not SLUG_RE.fullmatch(spec.slug) or len(spec.slug) > 64:
        problems.append(
            Problem(
                "The short name takes lowercase letters, digits and hyphens (at most 64), "
                "e.g. ketamine-course.",
                "slug",
            )
        )
    for name, label, limit in (("name", "name", 200), ("anchor_label", "day 0 label", 100)):
        value = getattr(spec, name).strip()
        if not value or len(value) > limit:
            problems.append(Problem(f"Give the {label} (at most {limit} characters).", name))
    if not spec.channels:
        problems.append(Problem("Choose at least one channel for messages.", "channels"))
    elif len(set(spec.channels)) != len(spec.channels) or not set(spec.channels) <= set(CHANNELS):
        problems.append(
            Problem("Channels are email and sms, each at most once, in order.", "channels")
        )
    if not 1 <= spec.horizon_days <= 3650:
        problems.append(Problem("The horizon is 1 to 3650 days.", "horizon_days"))
    if not spec.timepoints:
        problems.append(Problem("Add at least one time point.", "timepoints"))
    elif len(spec.timepoints) > MAX_TIMEPOINTS:
        problems.append(Problem(f"At most {MAX_TIMEPOINTS} time points.", "timepoints"))
    return problems


def _timepoint_problems(
    spec: ProtocolSpec, tp: TimepointSpec, registry: Registry
) -> Iterable[tuple[str, str]]:
    if not KEY_RE.fullmatch(tp.key) or len(tp.key) > 32:
        yield "key", "The key takes lowercase letters, digits and underscores, e.g. month_3."
    if not tp.label.strip() or len(tp.label) > 100:
        yield "label", "Give a label (at most 100 characters)."
    if tp.window_before_days < 0 or tp.window_after_days < 0:
        field_name = "window_before_days" if tp.window_before_days < 0 else "window_after_days"
        yield field_name, "A window cannot be negative."
    if tp.offset_days > spec.horizon_days:
        yield (
            "offset_days",
            f"Day {tp.offset_days} is past the protocol's horizon of {spec.horizon_days} days.",
        )
    if parse_time(tp.send_time_local) is None:
        yield "send_time_local", "The send time is a time of day such as 10:00."
    yield from (("reminder_offsets_days", m) for m in _reminder_problems(tp))
    yield from (("instruments", m) for m in _instrument_problems(tp, registry))


def _reminder_problems(tp: TimepointSpec) -> Iterable[str]:
    reminders = tp.reminder_offsets_days
    if any(days <= 0 for days in reminders):
        yield "Reminders are days after the invitation: 1 or more."
    if any(b <= a for a, b in pairwise(reminders)):
        yield "List reminders in increasing order, each once."
    length = max(tp.window_before_days, 0) + max(tp.window_after_days, 0)
    late = [days for days in reminders if days > length]
    if late:
        yield (
            f"A reminder {late[0]} days after the invitation falls after the window closes "
            f"(the window closes {length} days after the invitation; the invitation goes when "
            "it opens)."
        )


def _instrument_problems(tp: TimepointSpec, registry: Registry) -> Iterable[str]:
    if not tp.instruments:
        yield "Choose at least one questionnaire."
    seen: set[str] = set()
    for entry in tp.instruments:
        if entry.code in seen:
            yield f"{entry.code} is listed twice."
        seen.add(entry.code)
        try:
            registry.get(entry.code, entry.version)
        except KeyError:
            yield f"{entry} is not in this deployment's questionnaires."


def _sequence_problems(timepoints: Sequence[TimepointSpec]) -> Iterable[Problem]:
    first_use: dict[str, int] = {}
    for index, tp in enumerate(timepoints):
        if tp.key in first_use:
            yield Problem(
                f"The key {tp.key} is already used by time point {first_use[tp.key] + 1}.",
                "key",
                index,
                tp.key,
            )
        first_use.setdefault(tp.key, index)
    for index, (before, after) in enumerate(pairwise(timepoints), 1):
        if after.offset_days <= before.offset_days:
            yield Problem(
                f"Day {after.offset_days} must come after time point {index}'s day "
                f"{before.offset_days}: list time points in order.",
                "offset_days",
                index,
                after.key,
            )
        elif before.offset_days + before.window_after_days >= (
            after.offset_days - after.window_before_days
        ):
            yield Problem(
                f"Its window (from day {after.offset_days - after.window_before_days}) overlaps "
                f"time point {index}'s (to day {before.offset_days + before.window_after_days}).",
                "window_before_days",
                index,
                after.key,
            )


# Saving --------------------------------------------------------------------------------------


def check(session: Session, spec: ProtocolSpec) -> None:
    problems = validate(spec, deployment_registry(session))
    if problems:
        raise InvalidProtocol(problems)


def latest_version(session: Session, clinic_id: int, slug: str) -> Protocol | None:
    return session.scalar(
        select(Protocol)
        .where(Protocol.clinic_id == clinic_id, Protocol.slug == slug)
        .order_by(Protocol.version.desc())
        .limit(1)
    )


def enrollment_count(session: Session, protocol: Protocol, *, active_only: bool = False) -> int:
    query = select(func.count(Enrollment.id)).where(Enrollment.protocol_id == protocol.id)
    if active_only:
        query = query.where(Enrollment.status == EnrollmentStatus.ACTIVE)
    return session.scalar(query) or 0


def create_protocol(
    session: Session, clinic: Clinic, spec: ProtocolSpec, by: StaffUser | None
) -> Protocol:
    """Version 1 of a new protocol (InvalidProtocol, or AdminError when the slug is taken)."""
    check(session, spec)
    if latest_version(session, clinic.id, spec.slug) is not None:
        raise InvalidProtocol(
            [Problem(f"This clinic already has a protocol named {spec.slug}.", "slug")]
        )
    protocol = Protocol(
        clinic=clinic, slug=spec.slug, version=1, created_by_id=by.id if by else None
    )
    apply_spec(protocol, spec)
    session.add(protocol)
    session.flush()
    return protocol


def save_edit(
    session: Session, protocol: Protocol, spec: ProtocolSpec, by: StaffUser | None
) -> Protocol:
    """Change a version in place while nobody is enrolled on it, else make the next version.

    The version is locked first (enrolling holds a shared lock on it), so an enrollment made at
    the same moment is either counted here or made after the edit, never on time points being
    replaced.
    """
    session.scalar(select(Protocol.id).where(Protocol.id == protocol.id).with_for_update())
    session.refresh(protocol)
    if spec.slug != protocol.slug:
        raise InvalidProtocol([Problem("The short name of a protocol cannot change.", "slug")])
    latest = latest_version(session, protocol.clinic_id, protocol.slug)
    if latest is not None and latest.id != protocol.id:
        raise AdminError(f"Edit the latest version (version {latest.version}) instead.")
    check(session, spec)
    if enrollment_count(session, protocol) == 0:
        protocol.timepoints.clear()
        session.flush()  # the old rows go before new ones take their keys and positions
        apply_spec(protocol, spec)
        session.flush()
        return protocol
    successor = Protocol(
        clinic_id=protocol.clinic_id,
        slug=protocol.slug,
        version=protocol.version + 1,
        is_active=True,
        created_by_id=by.id if by else None,
    )
    apply_spec(successor, spec)
    protocol.is_active = False
    session.add(successor)
    session.flush()
    return successor


def apply_spec(protocol: Protocol, spec: ProtocolSpec) -> None:
    """Set a version's fields and time points from a spec (an instrument without a version
    follows the catalogue's current one)."""
    protocol.name = spec.name.strip()
    protocol.description = spec.description.strip()
    protocol.anchor_label = spec.anchor_label.strip()
    protocol.channels = list(spec.channels)
    protocol.horizon_days = spec.horizon_days
    protocol.requires_identity_check = spec.requires_identity_check
    protocol.timepoints = [
        ProtocolTimepoint(
            key=tp.key,
            label=tp.label.strip(),
            position=position,
            offset_days=tp.offset_days,
            window_before_days=tp.window_before_days,
            window_after_days=tp.window_after_days,
            send_time_local=parse_time(tp.send_time_local),
            reminder_offsets_days=list(tp.reminder_offsets_days),
            instrument_codes=[entry.code for entry in tp.instruments],
            instrument_versions={e.code: e.version for e in tp.instruments if e.version},
        )
        for position, tp in enumerate(spec.timepoints, start=1)
    ]


def protocol_snapshot(protocol: Protocol) -> dict[str, Any]:
    """The version as JSON for the audit log: its fields and time points."""
    return {"id": protocol.id, "version": protocol.version, "is_active": protocol.is_active} | (
        spec_of(protocol).to_json()
    )


# Moving enrollments to another version -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionChange:
    """What moving an enrollment does to one time point."""

    key: str
    label: str
    # "added", "moved", "unchanged", "cancelled", "kept" (answered), "closed" (added, but its
    # window has already closed: nothing is created)
    action: str
    assessment: Assessment | None
    timepoint: ProtocolTimepoint | None  # in the new version, when it has the key
    plan: enrollments.WindowPlan | None
    new_messages: bool = False  # pending messages are replaced by the plan's


def check_movable(enrollment: Enrollment, new_protocol: Protocol) -> None:
    old = enrollment.protocol
    if enrollment.status is not EnrollmentStatus.ACTIVE:
        raise AdminError("Only an active course can move to another version.")
    if new_protocol.clinic_id != old.clinic_id or new_protocol.slug != old.slug:
        raise AdminError("An enrollment moves only to another version of its own protocol.")
    if new_protocol.id == old.id:
        raise AdminError("The course is already on this version.")
    if not new_protocol.is_active:
        raise AdminError("That version is retired; move to the current version.")


def version_move_preview(
    enrollment: Enrollment, new_protocol: Protocol, now: dt.datetime
) -> list[VersionChange]:
    """What moving the enrollment to `new_protocol` would do, time point by time point."""
    check_movable(enrollment, new_protocol)
    plans = {
        plan.timepoint.key: plan
        for plan in enrollments.plan_windows(
            enrollment.patient, new_protocol, enrollment.anchor_on, now
        )
    }
    old_channels = enrollment.protocol.channels
    changes = []
    for assessment in enrollment.assessments:
        plan = plans.pop(assessment.timepoint.key, None)
        changes.append(
            _change_of(
                assessment, plan, now, channels_changed=old_channels != new_protocol.channels
            )
        )
    for plan in plans.values():
        closed = plan.window.closes_at <= now
        changes.append(
            VersionChange(
                plan.timepoint.key,
                plan.timepoint.label,
                "closed" if closed else "added",
                None,
                plan.timepoint,
                plan,
            )
        )
    return sorted(changes, key=_due)


def _due(change: VersionChange) -> dt.datetime:
    if change.plan is not None:
        return change.plan.window.due_at
    assert change.assessment is not None
    return change.assessment.due_at


def _change_of(
    assessment: Assessment,
    plan: enrollments.WindowPlan | None,
    now: dt.datetime,
    *,
    channels_changed: bool,
) -> VersionChange:
    old = assessment.timepoint

    def change(action: str, new_messages: bool = False) -> VersionChange:
        tp = plan.timepoint if plan else None
        return VersionChange(old.key, old.label, action, assessment, tp, plan, new_messages)

    if assessment.status in enrollments.ANSWERED:
        return change("kept")
    if plan is None:
        return change(
            "cancelled" if assessment.status is AssessmentStatus.SCHEDULED else "unchanged"
        )
    if assessment.status is AssessmentStatus.CANCELLED:
        return change("unchanged")
    same = (
        plan.window.opens_at == assessment.opens_at
        and plan.window.closes_at == assessment.closes_at
    )
    if not same:
        return change("moved", new_messages=True)
    # Same window, other reminders or channels: the messages still to come are planned again.
    reminders_changed = old.reminder_offsets_days != plan.timepoint.reminder_offsets_days
    still_open = assessment.status is AssessmentStatus.SCHEDULED and assessment.closes_at > now
    return change("unchanged", new_messages=still_open and (reminders_changed or channels_changed))


def move_to_version(
    session: Session,
    enrollment: Enrollment,
    new_protocol: Protocol,
    now: dt.datetime,
    by: StaffUser | None = None,
) -> list[VersionChange]:
    """Move the enrollment to `new_protocol`: answered assessments never change.

    The course is locked and read again first: a second move sent at the same moment (a
    double click, two coordinators) waits, then finds the course moved and changes nothing.
    """
    enrollments.lock(session, enrollment)
    session.refresh(enrollment, ["assessments"])
    if enrollment.protocol_id == new_protocol.id:
        return []
    changes = version_move_preview(enrollment, new_protocol, now)
    cancelled = [c.assessment for c in changes if c.action == "cancelled" and c.assessment]
    replaced = [c.assessment for c in changes if c.new_messages and c.assessment]
    enrollments.cancel_pending(session, [a.id for a in cancelled + replaced], "rescheduled")
    for assessment in cancelled:
        assessment.status = AssessmentStatus.CANCELLED
    added = []
    for change in changes:
        if change.action == "added" and change.plan is not None:
            added.append((_new_assessment(enrollment, change.plan), change.plan))
        elif change.assessment is not None and change.timepoint is not None:
            _relink(change)
    enrollment.protocol_id = new_protocol.id
    session.add_all(assessment for assessment, _ in added)
    session.flush()
    session.expire(enrollment, ["protocol"])
    for change in changes:
        if change.new_messages and change.assessment is not None and change.plan is not None:
            enrollments.replace_messages(session, change.assessment, change.plan.messages)
    for assessment, plan in added:
        enrollments.write_messages(session, assessment, plan.messages)
    session.flush()
    return changes


def _relink(change: VersionChange) -> None:
    """Point an unanswered assessment at the new version's time point (and its window)."""
    assert change.assessment is not None
    assert change.timepoint is not None
    if change.action == "kept":
        return  # answered: never changed
    change.assessment.timepoint_id = change.timepoint.id
    if change.action == "moved" and change.plan is not None:
        window = change.plan.window
        change.assessment.opens_at = window.opens_at
        change.assessment.due_at = window.due_at
        change.assessment.closes_at = window.closes_at
        change.assessment.status = AssessmentStatus.SCHEDULED


def _new_assessment(enrollment: Enrollment, plan: enrollments.WindowPlan) -> Assessment:
    window = plan.window
    return Assessment(
        enrollment=enrollment,
        timepoint_id=plan.timepoint.id,
        opens_at=window.opens_at,
        due_at=window.due_at,
        closes_at=window.closes_at,
        status=AssessmentStatus.SCHEDULED,
    )


def active_enrollments(session: Session, protocol: Protocol) -> list[Enrollment]:
    return list(
        session.scalars(
            select(Enrollment)
            .where(
                Enrollment.protocol_id == protocol.id,
                Enrollment.status == EnrollmentStatus.ACTIVE,
            )
            .order_by(Enrollment.anchor_on, Enrollment.id)
        )
    )


def move_all(
    session: Session,
    old_protocol: Protocol,
    new_protocol: Protocol,
    now: dt.datetime,
    by: StaffUser | None = None,
) -> list[tuple[Enrollment, list[VersionChange]]]:
    """Move every active enrollment of a version to `new_protocol`."""
    return [
        (enrollment, move_to_version(session, enrollment, new_protocol, now, by))
        for enrollment in active_enrollments(session, old_protocol)
    ]
