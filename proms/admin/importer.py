"""The enrollment import: a CSV file of patients, each created or updated by MRN and enrolled.

The whole file is checked before anything is written (`check_file`): every bad row is reported
with its line, column and reason, and a file with any problem imports nothing. A clean file is
then written in the caller's transaction (`apply`): flush, never commit. Checking reads the
database (existing patients, protocols, courses), so the preview a coordinator reads is what
importing does, and the same file imported twice changes nothing the second time.

Values go through the same cleaners as the patient form (`proms.admin.patients`), so a phone
number or a time zone refused on one is refused on the other with the same words.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin import courses, enrollment, patients
from proms.admin.errors import AdminError
from proms.admin.models import (
    Channel,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Patient,
    Protocol,
)
from proms.auth.audit import snapshot
from proms.auth.models import StaffUser
from proms.auth.services import RequestInfo, record_event

COLUMNS = (
    "mrn",
    "given_name",
    "family_name",
    "birth_date",
    "email",
    "phone",
    "timezone",
    "language",
    "protocol",
    "anchor_date",
)
REQUIRED_COLUMNS = ("mrn", "given_name", "family_name", "protocol", "anchor_date")
MAX_ROWS = 5_000
# A 5,000-row file is about 750 KB. The upload page carries the file to its confirm step in a
# signed form field, which must stay under MAX_FORM_MEMORY_SIZE (2 MB) even uncompressed.
MAX_BYTES = 1024 * 1024

NOT_UTF8 = (
    "The file is not UTF-8: save it as CSV UTF-8 (in Excel: Save As, "
    "“CSV UTF-8 (Comma delimited)”) and try again."
)
# A spreadsheet evaluates a cell that starts with one of these as a formula.
FORMULA_STARTS = {
    "=": "“=”",
    "+": "“+”",
    "-": "“-”",
    "@": "“@”",
    "\t": "a tab",
    "\r": "a carriage return",
}
PHONE_WITH_CODE = re.compile(r"\+[0-9 ().-]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# What the audit log and the report name for each stored field.
FIELD_COLUMNS = {
    "given_name": "given_name",
    "family_name": "family_name",
    "birth_on": "birth_date",
    "email": "email",
    "phone": "phone",
    "time_zone": "timezone",
    "language": "language",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a file, or one cell of it, cannot be imported."""

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"line {self.line}" if self.line else "",
                f"column {self.column}" if self.column else "",
            )
            if part
        )
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # where the row starts in the file (the header is usually line 1)
    cells: dict[str, str]


@dataclass(slots=True)
class RowPlan:
    """What importing one row does, and after `apply`, what it did."""

    line: int
    mrn: str
    name: str
    patient: Patient | None  # None until a new patient is created
    values: dict[str, Any]  # a new patient's fields, or an existing one's changed fields
    before: dict[str, Any]  # an existing patient's changed fields as they were (for the audit)
    protocol: Protocol
    anchor_on: dt.date
    already_enrolled: bool = False
    enrollment: Enrollment | None = None  # the course `apply` created

    @property
    def is_new(self) -> bool:
        return "mrn" in self.values

    @property
    def changed(self) -> list[str]:
        """The columns that change an existing patient."""
        return [] if self.is_new else [FIELD_COLUMNS[name] for name in self.values]

    @property
    def patient_action(self) -> str:
        if self.is_new:
            return "new"
        return "updated" if self.values else "unchanged"

    @property
    def enrollment_action(self) -> str:
        return "already enrolled" if self.already_enrolled else "new course"


@dataclass(slots=True)
class ImportPlan:
    clinic: Clinic
    rows: list[RowPlan]
    problems: list[Problem]
    digest: str  # SHA-256 of the file, for the audit log

    @property
    def is_clean(self) -> bool:
        return not self.problems

    def count(self, attribute: str, value: str) -> int:
        return sum(1 for row in self.rows if getattr(row, attribute) == value)

    @property
    def summary(self) -> str:
        rows = len(self.rows)
        return (
            f"{rows} row{'' if rows == 1 else 's'}: "
            f"{self.count('patient_action', 'new')} new, "
            f"{self.count('patient_action', 'updated')} updated, "
            f"{self.count('patient_action', 'unchanged')} unchanged patients; "
            f"{self.count('enrollment_action', 'new course')} new courses, "
            f"{self.count('enrollment_action', 'already enrolled')} already enrolled."
        )


# Reading the file -----------------------------------------------------------------------------


def decode(content: bytes) -> str:
    """UTF-8 text, with or without a byte order mark; AdminError otherwise."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdminError(NOT_UTF8) from exc


def read_rows(content: bytes) -> tuple[list[Row], list[Problem]]:
    """The data rows by column name, or the problems of the file's text and header."""
    try:
        text = decode(content)
    except AdminError as exc:
        return [], [Problem(None, None, str(exc))]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = _records(reader)
        header = next(records, None)
        if header is None:
            return [], [Problem(None, None, "The file is empty. " + _expected())]
        columns, problems = _columns(*header)
        if problems:
            return [], problems
        rows, problems = _rows(records, columns)
        if not rows and not problems:
            return [], [Problem(None, None, "The file has a header but no rows to import.")]
        return rows, problems
    except csv.Error as exc:
        return [], [Problem(reader.line_num, None, f"This is not readable CSV ({exc}).")]


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record that is not blank."""
    start = 1
    for record in reader:
        if any(cell.strip() for cell in record):
            yield start, record
        start = reader.line_num + 1


def _expected() -> str:
    return "The first line names the columns: " + ", ".join(COLUMNS) + "."


def _columns(line: int, header: list[str]) -> tuple[list[str], list[Problem]]:
    columns = [name.strip().lower() for name in header]
    problems = []
    unknown = [name or "(empty)" for name in columns if name not in COLUMNS]
    if unknown:
        problems.append(
            Problem(
                line,
                None,
                f"Unknown column{'s' if len(unknown) > 1 else ''}: "
                f"{', '.join(unknown)}. {_expected()}",
            )
        )
    doubled = sorted({name for name in columns if name and columns.count(name) > 1})
    if doubled:
        problems.append(Problem(line, None, f"Columns named twice: {', '.join(doubled)}."))
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        problems.append(
            Problem(
                line,
                None,
                f"Missing column{'s' if len(missing) > 1 else ''}: "
                f"{', '.join(missing)}. {_expected()}",
            )
        )
    return columns, problems


def _rows(
    records: Iterable[tuple[int, list[str]]], columns: list[str]
) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    for line, record in records:
        if len(rows) == MAX_ROWS:
            return [], [Problem(None, None, f"The file has more than {MAX_ROWS:,} rows: split it.")]
        if len(record) != len(columns):
            problems.append(
                Problem(
                    line, None, f"This row has {len(record)} cells; the header has {len(columns)}."
                )
            )
            continue
        rows.append(Row(line, dict(zip(columns, record, strict=True))))
    return rows, problems


def cell_problem(column: str, raw: str) -> str | None:
    """Why a cell is refused before its value is read: a formula or a control character."""
    text = raw.lstrip(" ")
    start = text[:1]
    if start in FORMULA_STARTS and not (column == "phone" and PHONE_WITH_CODE.fullmatch(text)):
        return (
            f"The value starts with {FORMULA_STARTS[start]}, as a spreadsheet formula does: "
            "formulas are refused, not evaluated. Enter the value itself."
        )
    if CONTROL.search(raw):
        return "The value contains a line break, tab or other control character: remove it."
    return None


def parse_date(value: str) -> dt.date:
    if not ISO_DATE.fullmatch(value):
        raise AdminError("Write the date as YYYY-MM-DD, such as 2026-03-09.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise AdminError(f"There is no such date as {value}.") from exc


# Checking every row ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    """What checking rows needs from the database, read once per file."""

    clinic: Clinic
    today: dt.date
    patients: dict[str, Patient]
    protocols: dict[str, Protocol]
    active: dict[tuple[int, str], list[dt.date]]  # (patient id, protocol slug) -> anchors
    seen: dict[str, int] = field(default_factory=dict)  # MRN -> first line


def check_file(session: Session, clinic: Clinic, content: bytes, *, today: dt.date) -> ImportPlan:
    """What importing the file would do, or every problem that stops it."""
    digest = hashlib.sha256(content).hexdigest()
    rows, problems = read_rows(content)
    if not rows:
        return ImportPlan(clinic, [], problems, digest)
    context = _context(session, clinic, rows, today)
    plans = [plan for row in rows if (plan := _check_row(context, row, problems))]
    problems.sort(key=lambda problem: problem.line or 0)  # stable: a row's cells stay in order
    return ImportPlan(clinic, plans if not problems else [], problems, digest)


def _context(session: Session, clinic: Clinic, rows: Sequence[Row], today: dt.date) -> _Context:
    mrns = sorted({row.cells["mrn"].strip() for row in rows})
    found: dict[str, Patient] = {}
    for start in range(0, len(mrns), 500):  # stay far below any database's parameter limit
        chunk = mrns[start : start + 500]
        query = select(Patient).where(Patient.clinic_id == clinic.id, Patient.mrn.in_(chunk))
        found.update((p.mrn, p) for p in session.scalars(query))
    protocols: dict[str, Protocol] = {}
    query = select(Protocol).where(Protocol.clinic_id == clinic.id, Protocol.is_active)
    for protocol in session.scalars(query.order_by(Protocol.version)):
        protocols[protocol.slug] = protocol  # the latest active version wins
    active: dict[tuple[int, str], list[dt.date]] = {}
    ids = [p.id for p in found.values()]
    for start in range(0, len(ids), 500):
        courses = (
            select(Enrollment.patient_id, Protocol.slug, Enrollment.anchor_on)
            .join(Protocol, Enrollment.protocol_id == Protocol.id)
            .where(
                Enrollment.patient_id.in_(ids[start : start + 500]),
                Enrollment.status == EnrollmentStatus.ACTIVE,
            )
        )
        for patient_id, slug, anchor_on in session.execute(courses):
            active.setdefault((patient_id, slug), []).append(anchor_on)
    return _Context(clinic, today, found, protocols, active)


class _RowChecker:
    """Collects one row's cleaned values and every problem of its cells."""

    def __init__(self, row: Row, problems: list[Problem]) -> None:
        self.row = row
        self.problems = problems
        self.failed = False

    def raw(self, column: str) -> str | None:
        """The cell stripped; None when it is refused (reported) or not in the file."""
        value = self.row.cells.get(column)
        if value is None:
            return None
        if problem := cell_problem(column, value):
            self.fail(column, problem)
            return None
        return value.strip()

    def fail(self, column: str, message: str) -> None:
        self.failed = True
        self.problems.append(Problem(self.row.line, column, message))

    def value(self, column: str, clean: Callable[[str], Any], required: str = "") -> Any:
        """`clean(cell)`, or None: the cell is empty (an error if `required`) or refused."""
        text = self.raw(column)
        if not text:
            if text is not None and required:
                self.fail(column, f"Enter the {required}.")
            return None
        try:
            return clean(text)
        except AdminError as exc:
            self.fail(column, str(exc))
            return None


def _check_row(context: _Context, row: Row, problems: list[Problem]) -> RowPlan | None:
    check = _RowChecker(row, problems)
    mrn = check.value("mrn", patients.clean_mrn, "MRN")
    if mrn is not None:
        if mrn in context.seen:
            check.fail(
                "mrn", f"MRN {mrn} is also on line {context.seen[mrn]}: one row per patient."
            )
        context.seen.setdefault(mrn, row.line)
    existing = context.patients.get(mrn) if mrn else None
    given = _name(check, "given_name", "given name", existing)
    family = _name(check, "family_name", "family name", existing)
    clinic_zone = context.clinic.time_zone
    values = {
        "given_name": given,
        "family_name": family,
        "birth_on": check.value(
            "birth_date", lambda v: patients.check_birth_on(parse_date(v), context.today)
        ),
        "email": check.value("email", patients.clean_email),
        "phone": check.value("phone", lambda v: patients.clean_phone(v, clinic_zone)),
        "time_zone": check.value("timezone", lambda v: patients.clean_time_zone(v, clinic_zone)),
        "language": check.value("language", patients.clean_language),
    }
    protocol = check.value("protocol", lambda v: _protocol(context, v), "protocol")
    anchor_on = check.value(
        "anchor_date", lambda v: courses.check_anchor_on(parse_date(v)), "anchor date"
    )
    if check.failed or mrn is None:
        return None
    assert protocol is not None
    assert anchor_on is not None
    plan = _plan(context.clinic, row.line, mrn, existing, values, protocol, anchor_on)
    _check_course(check, context, plan)
    return None if check.failed else plan


def _name(check: _RowChecker, column: str, what: str, existing: Patient | None) -> str | None:
    # An existing patient keeps a name left empty; a new one needs both.
    required = "" if existing is not None else what
    return check.value(column, lambda v: patients.clean_name(v, what), required)


def _protocol(context: _Context, slug: str) -> Protocol:
    protocol = context.protocols.get(slug)
    if protocol is None:
        offered = ", ".join(sorted(context.protocols)) or "none"
        raise AdminError(
            f"The clinic has no active protocol {slug!r}. Its protocols are: {offered}."
        )
    return protocol


def _plan(
    clinic: Clinic,
    line: int,
    mrn: str,
    existing: Patient | None,
    given: dict[str, Any],
    protocol: Protocol,
    anchor_on: dt.date,
) -> RowPlan:
    """A new patient's fields (defaults filled in), or an existing one's changed fields."""
    if existing is None:
        values = {
            "mrn": mrn,
            **given,
            "preferred_channel": _channel(given["email"], given["phone"]),
            "time_zone": given["time_zone"] or clinic.time_zone,
            "language": given["language"] or "en",
        }
        name = f"{values['family_name']}, {values['given_name']}"
        return RowPlan(line, mrn, name, None, values, {}, protocol, anchor_on)
    changes = {
        name: value
        for name, value in given.items()
        if value is not None and value != getattr(existing, name)
    }
    before = snapshot(existing, changes)
    return RowPlan(line, mrn, existing.display_name, existing, changes, before, protocol, anchor_on)


def _channel(email: str | None, phone: str | None) -> Channel:
    """A new patient's channel: email if there is an address, else text messages, else none."""
    if email:
        return Channel.EMAIL
    return Channel.SMS if phone else Channel.NONE


def _check_course(check: _RowChecker, context: _Context, plan: RowPlan) -> None:
    """The row's course: enrollable, and not a second active course of the same protocol."""
    birth_on = plan.values.get("birth_on", plan.patient.birth_on if plan.patient else None)
    try:
        # A stand-in with what the patient will have; never added to the session.
        enrollment.check_enrollable(
            Patient(clinic_id=context.clinic.id, birth_on=birth_on), plan.protocol
        )
    except AdminError as exc:
        column = (
            "birth_date"
            if birth_on is None and plan.protocol.requires_identity_check
            else "protocol"
        )
        check.fail(column, str(exc))
        return
    if plan.patient is None:
        return
    anchors = context.active.get((plan.patient.id, plan.protocol.slug), [])
    if plan.anchor_on in anchors:
        plan.already_enrolled = True
    elif anchors:
        check.fail(
            "anchor_date",
            f"{plan.name} is in an active course of {plan.protocol.slug} from "
            f"{anchors[0].isoformat()}: change that course's anchor date on the patient's page, "
            "or withdraw it first.",
        )


# Importing ------------------------------------------------------------------------------------


def apply(session: Session, plan: ImportPlan, *, now: dt.datetime, user: StaffUser | None) -> None:
    """Write a clean plan: create or update each patient, enroll them. Flush, never commit."""
    if not plan.is_clean:
        raise AdminError("The file has problems: nothing was imported.")
    replan: list[tuple[Patient, bool]] = []
    for row in plan.rows:
        if row.patient is None:
            row.patient = Patient(clinic=plan.clinic, **row.values)
            session.add(row.patient)
        else:
            changed = {n for n, v in row.values.items() if getattr(row.patient, n) != v}
            for name, value in row.values.items():
                setattr(row.patient, name, value)
            if changed & patients.MESSAGE_FIELDS:
                replan.append((row.patient, "time_zone" in changed))
    session.flush()  # every patient at once, then their courses
    for patient, zone_changed in replan:  # their planned messages follow the new details
        enrollment.replan_patient(session, patient, now=now, zone_changed=zone_changed)
    by_protocol: dict[int, list[RowPlan]] = {}
    for row in plan.rows:
        if not row.already_enrolled:
            by_protocol.setdefault(row.protocol.id, []).append(row)
    for rows in by_protocol.values():  # every course of a protocol at once
        courses = []
        for row in rows:
            assert row.patient is not None
            courses.append((row.patient, row.anchor_on))
        made = enrollment.enroll_many(session, rows[0].protocol, courses, now=now, created_by=user)
        for row, course in zip(rows, made, strict=True):
            row.enrollment = course


def audit(
    session: Session,
    plan: ImportPlan,
    *,
    actor: StaffUser | None = None,
    actor_email: str | None = None,
    origin: RequestInfo | None = None,
) -> None:
    """One event for the import, one per patient created or changed and per course started."""
    record = functools.partial(
        record_event,
        session,
        actor=actor,
        actor_email=actor_email,
        origin=origin,
        clinic_id=plan.clinic.id,
    )
    via = {"via": "import", "file_sha256": plan.digest}
    record("import.enrollments", detail={**via, "summary": plan.summary, "rows": len(plan.rows)})
    for row in plan.rows:
        assert row.patient is not None, "audit after apply"
        where = {**via, "line": row.line}
        if row.is_new:
            after = snapshot(row.patient, patients.AUDIT_FIELDS)
            record(
                "patient.created",
                patient_id=row.patient.id,
                detail={**where, "before": {}, "after": after},
            )
        elif row.values:
            after = snapshot(row.patient, row.values)
            detail = {**where, "before": row.before, "after": after}
            record("patient.updated", patient_id=row.patient.id, detail=detail)
        if row.enrollment is not None:
            course = {
                "enrollment_id": row.enrollment.id,
                "protocol": row.protocol.slug,
                "protocol_version": row.protocol.version,
                "anchor_on": row.anchor_on.isoformat(),
            }
            record("enrollment.created", patient_id=row.patient.id, detail={**where, **course})
