"""The audit log for admins: one clinic's events, newest first, filtered, in words.

A clinic's log is every event recorded with its `clinic_id`, plus the events that name no
clinic (sign-ins, sign-outs, password changes, lists across clinics) by staff who are members
of it now. Events of no one in particular (a sign-in attempt with an unknown address, a
command-line change without a clinic) are in no clinic's log; docs/audit.md says where to read
them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, select, union_all
from sqlalchemy.orm import Session

from proms.admin.models import Clinic, Patient
from proms.auth.models import AuditEvent, ClinicMembership, StaffUser

PER_PAGE = 50

# What each action means, as a sentence with the actor as its subject ("Dana Lee viewed ...").
ACTION_WORDS: dict[str, str] = {
    "alert.acknowledged": "acknowledged an alert",
    "alert.list": "viewed the alerts inbox",
    "alert.resolved": "resolved an alert",
    "audit.view": "viewed the audit log",
    "clinic.updated": "changed the clinic's settings",
    "enrollment.anchor_changed": "moved the start of a course",
    "enrollment.created": "enrolled a patient in a course",
    "enrollment.moved": "moved a course to another protocol version",
    "enrollment.withdrawn": "withdrew a patient from a course",
    "export.finished": "finished an export of the clinic's data",
    "export.started": "started an export of the clinic's data",
    "import.enrollments": "imported patients and courses from a file",
    "instrument.imported": "imported the wording of a questionnaire",
    "link.created": "made a questionnaire link for a patient",
    "login.failed": "tried to sign in",
    "login.locked": "tried to sign in while the address was locked",
    "login.succeeded": "signed in",
    "logout": "signed out",
    "note.added": "added a note to a patient's record",
    "notification.marked_sent": "marked a message as sent",
    "notification.resent": "sent a message again",
    "notification.sent_now": "sent an invitation now",
    "password.changed": "changed their password",
    "password.set": "set a password with a one-time link",
    "patient.created": "added a patient",
    "patient.enroll_form": "opened the enrollment form of a patient",
    "patient.list": "viewed a list of patients",
    "patient.opted_in": "opted a patient back in to messages",
    "patient.opted_out": "opted a patient out of messages",
    "patient.summary": "opened the printable summary of a patient",
    "patient.updated": "changed a patient's details",
    "patient.view": "viewed a patient",
    "protocol.created": "created a protocol",
    "protocol.updated": "changed a protocol",
    "protocol.versioned": "made a new version of a protocol",
    "report.cohort": "viewed the cohort report",
    "report.cohort.export": "downloaded the cohort report",
    "responses.entered": "entered a patient's answers from paper",
    "scores.rescored": "rescored the stored answers",
    "staff.created": "created a staff account",
    "staff.deactivated": "deactivated a staff account",
    "staff.granted": "gave a staff member a role",
    "staff.invited": "invited a staff member",
    "staff.password_change_forced": "asked a staff member to choose a new password",
    "staff.reactivated": "reactivated a staff account",
    "staff.removed_from_clinic": "removed a staff member from the clinic",
    "staff.roles_changed": "changed a staff member's roles",
    "staff.unlocked": "cleared the failed sign-ins of an address",
    "treatment_session.recorded": "recorded an infusion day",
    "worklist.view": "viewed the worklist",
}
# Filters for a kind of event: an action's first part (`patient.` is every patient event).
ACTION_GROUPS: dict[str, str] = {
    "alert.": "Alerts",
    "audit.": "The audit log",
    "clinic.": "Clinic settings",
    "enrollment.": "Courses",
    "export.": "Exports",
    "login.": "Sign-ins",
    "note.": "Staff notes",
    "notification.": "Messages",
    "patient.": "Patients: views and changes",
    "protocol.": "Protocols",
    "report.": "Reports",
    "staff.": "Staff accounts",
}
# Who acted, when no staff account did (`actor_email` holds one of these forms).
ACTOR_FORMS = {
    "cli:": "the command line, as {rest}",
    "patient:": "the patient ({rest})",
}


def action_words(action: str) -> str:
    """What an action means, for an action this module knows or one added since."""
    known = ACTION_WORDS.get(action)
    if known is not None:
        return known
    return action.replace(".", ": ").replace("_", " ")


def action_choices() -> list[tuple[str, str]]:
    """The action filter's options: every kind (a group), then every known action."""
    groups = [(prefix, f"{label} (all)") for prefix, label in ACTION_GROUPS.items()]
    actions = sorted(
        ((action, words[0].upper() + words[1:]) for action, words in ACTION_WORDS.items()),
        key=lambda choice: choice[1],
    )
    return groups + actions


# Reading the log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which of a clinic's events to show. Dates are whole days on the clinic's calendar."""

    clinic: Clinic
    action: str = ""  # one action, or a group: a prefix ending in "."
    actor_id: int | None = None
    patient_id: int | None = None
    from_on: dt.date | None = None
    to_on: dt.date | None = None  # inclusive
    upto_id: int | None = None  # no event recorded after this one
    # The clinic's staff: their events without a clinic (sign-ins, lists across clinics) are
    # in the clinic's log too.
    staff_ids: Sequence[int] = ()

    def described(self) -> dict[str, Any]:
        """The filters in use, for the audit event of reading the log (ids only)."""
        chosen = {
            "action": self.action or None,
            "actor_id": self.actor_id,
            "patient_id": self.patient_id,
            "from": self.from_on.isoformat() if self.from_on else None,
            "to": self.to_on.isoformat() if self.to_on else None,
        }
        return {key: value for key, value in chosen.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as the page shows it."""

    event: AuditEvent
    who: str
    is_staff: bool
    what: str
    patient: Patient | None
    changes: list[Change] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    browser: str = "—"


@dataclass(frozen=True, slots=True)
class EventPage:
    rows: list[EventRow]
    number: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.number > 1


def staff_of(session: Session, clinic: Clinic) -> list[StaffUser]:
    """The clinic's staff (any role, active or not), for the "staff member" filter."""
    members = select(ClinicMembership.user_id).where(ClinicMembership.clinic_id == clinic.id)
    return list(
        session.scalars(
            select(StaffUser)
            .where(StaffUser.id.in_(members))
            .order_by(StaffUser.full_name, StaffUser.id)
        )
    )


def _filters(wanted: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.action.endswith("."):
        conditions.append(AuditEvent.action.startswith(wanted.action, autoescape=True))
    elif wanted.action:
        conditions.append(AuditEvent.action == wanted.action)
    if wanted.actor_id is not None:
        conditions.append(AuditEvent.actor_id == wanted.actor_id)
    if wanted.patient_id is not None:
        conditions.append(AuditEvent.patient_id == wanted.patient_id)
    if wanted.upto_id is not None:
        conditions.append(AuditEvent.id <= wanted.upto_id)
    zone = ZoneInfo(wanted.clinic.time_zone)
    if wanted.from_on is not None:
        start = dt.datetime.combine(wanted.from_on, dt.time(), zone)
        conditions.append(AuditEvent.occurred_at >= start.astimezone(dt.UTC))
    if wanted.to_on is not None:
        end = dt.datetime.combine(wanted.to_on + dt.timedelta(days=1), dt.time(), zone)
        conditions.append(AuditEvent.occurred_at < end.astimezone(dt.UTC))
    return conditions


def events(
    session: Session, wanted: AuditFilter, *, page: int, per_page: int = PER_PAGE
) -> EventPage:
    """One page of the clinic's events, newest first, in one statement.

    The clinic's own events (the index on clinic_id, occurred_at) and its staff's events without
    a clinic (the partial index on occurred_at of those) are read newest first, each cut at the
    page's end before they are merged: a page reads about as many rows as it shows, however
    long the log (the second read skips other clinics' staff's events: a few more rows on a
    server of many clinics).
    """
    offset = (page - 1) * per_page
    enough = offset + per_page + 1
    scopes = [AuditEvent.clinic_id == wanted.clinic.id]
    if wanted.staff_ids:
        # The ids as a list, not a subquery: a subquery's join would collect every event of
        # the staff without a clinic, then sort them.
        scopes.append(
            and_(AuditEvent.clinic_id.is_(None), AuditEvent.actor_id.in_(wanted.staff_ids))
        )
    newest_first = (AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    branches = [
        select(AuditEvent.id, AuditEvent.occurred_at)
        .where(scope, *_filters(wanted))
        .order_by(*newest_first)
        .limit(enough)
        .subquery()
        for scope in scopes
    ]
    merged = union_all(*(select(b.c.id, b.c.occurred_at) for b in branches)).subquery()
    shown = (
        select(merged.c.id)
        .order_by(merged.c.occurred_at.desc(), merged.c.id.desc())
        .offset(offset)
        .limit(per_page + 1)
        .subquery()
    )
    found = session.execute(
        select(AuditEvent, StaffUser.full_name, Patient)
        .join(shown, shown.c.id == AuditEvent.id)
        .outerjoin(StaffUser, StaffUser.id == AuditEvent.actor_id)
        .outerjoin(Patient, Patient.id == AuditEvent.patient_id)
        .order_by(*newest_first)
    ).all()
    rows = [describe(event, name, patient) for event, name, patient in found[:per_page]]
    return EventPage(rows=rows, number=page, has_next=len(found) > per_page)


# Saying it in words --------------------------------------------------------------------------


def describe(event: AuditEvent, actor_name: str | None, patient: Patient | None) -> EventRow:
    detail = dict(event.detail or {})
    before = detail.pop("before", None) or {}
    after = detail.pop("after", None) or {}
    changes = [
        Change(_label(name), _value(before.get(name)), _value(after.get(name)))
        for name in sorted(before.keys() | after.keys())
    ]
    return EventRow(
        event=event,
        who=_who(event, actor_name),
        is_staff=actor_name is not None,
        what=action_words(event.action),
        patient=patient,
        changes=changes,
        facts=[(_label(key), _value(value)) for key, value in sorted(detail.items())],
        browser=short_user_agent(event.user_agent),
    )


def _who(event: AuditEvent, actor_name: str | None) -> str:
    if actor_name is not None:
        return actor_name
    email = event.actor_email or ""
    for prefix, form in ACTOR_FORMS.items():
        if email.startswith(prefix):
            return form.format(rest=email.removeprefix(prefix))
    if email:
        return f"someone signing in as {email}"
    return "the system"


def _label(name: str) -> str:
    return name.replace("_", " ")


def _value(value: Any) -> str:
    """A stored value as text: nothing as a dash, lists as their items, yes and no."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


# (marker in the user agent, name), first match wins: Edge and Opera also say "Chrome", Chrome
# also says "Safari".
BROWSERS: Sequence[tuple[str, str]] = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
)
SYSTEMS: Sequence[tuple[str, str]] = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def short_user_agent(agent: str | None) -> str:
    """ "Firefox 128 on Windows" from a browser's user agent; a program's own name otherwise."""
    if not agent:
        return "—"
    for marker, name in BROWSERS:
        at = agent.find(marker)
        if at >= 0:
            major = agent[at + len(marker) :].split(".")[0].split(" ")[0]
            browser = f"{name} {major}" if major.isdigit() else name
            system = next((label for key, label in SYSTEMS if key in agent), None)
            return f"{browser} on {system}" if system else browser
    first = agent.split(" ")[0]
    return first if len(first) <= 40 else first[:39] + "…"
