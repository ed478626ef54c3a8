"""Exports of a clinic's outcomes for analysis: tidy CSV (long, wide, item-level) and FHIR R4.

Each format is a generator of rows (or of FHIR resources) read from the database through one
read-only connection with `yield_per` (a server-side cursor on PostgreSQL; SQLite's cursor reads
as it goes), so memory does not grow with the number of rows, and the writers below turn them
into text chunks for a streamed HTTP response or a file. docs/exports.md describes every column.

Scope: the clinics the caller passes (the web page passes the clinics where the user may
export; the command line every clinic, or one), optionally one protocol (by slug, any version)
and a range of course start dates (the enrollment's anchor date).

De-identified exports (`Pseudonyms`) replace every identifier with a keyed HMAC-SHA256
pseudonym (patients, courses, responses, scores), shift every date of a patient by the same
number of days (1 to 180, earlier or later, derived from the same key), give an age band instead
of the birth date, and leave out names, MRNs and contact details. Identified exports (`Identity`)
carry the database ids and the MRN; never names or contacts in CSV (FHIR's Patient has the name).

CSV cells are neutralised against formula injection: a *text* cell that begins with `=`, `+`,
`-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's recommendation). Numbers are
written from the database's numeric columns as numbers and left alone, so a negative change
(-5.4) stays a number a spreadsheet can add up; a number can carry no formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection, Engine, Row

from proms.admin.models import Clinic, Enrollment, Patient, Protocol, ProtocolTimepoint
from proms.care.deidentify import Identity, age_band, pseudonyms, shifted
from proms.catalog.models import Instrument
from proms.catalog.services import stored_definition
from proms.db import sqlite_begin
from proms.instruments.model import ChangeThreshold, InstrumentDefinition
from proms.instruments.registry import Registry
from proms.outcomes.models import Score
from proms.scheduling.models import Assessment
from proms.surveys.models import ResponseStatus, SurveyAnswer, SurveyResponse

# Rows fetched from the database at a time, and CSV rows written per chunk of the response.
FETCH_ROWS = 1000
CHUNK_ROWS = 500

# The first characters of text that a spreadsheet reads as a formula (or, with tab and CR, as
# the start of one).
FORMULA_FIRST = frozenset("=+-@\t\r")


class ExportFormat(enum.StrEnum):
    CSV_LONG = "csv-long"
    CSV_WIDE = "csv-wide"
    ITEMS = "items"
    FHIR = "fhir"


FORMAT_LABELS = {
    ExportFormat.CSV_LONG: "Scores, long (CSV): one row per score",
    ExportFormat.CSV_WIDE: "Scores, wide (CSV): one row per course",
    ExportFormat.ITEMS: "Answers (CSV): one row per answered item",
    ExportFormat.FHIR: "FHIR R4 Bundle (JSON): patients, responses, scores",
}


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """What to export. `clinic_ids` is the scope: nothing outside it is ever read."""

    format: ExportFormat
    clinic_ids: tuple[int, ...]
    deidentified: bool = False
    protocol: str | None = None  # a protocol slug (every version of it)
    start_from: dt.date | None = None  # courses whose anchor date is on or after
    start_to: dt.date | None = None  # ... and on or before

    def filters(self) -> dict[str, Any]:
        """The request, for the audit log (ids and filters only)."""
        return {
            "format": self.format.value,
            "deidentified": self.deidentified,
            "clinic_ids": list(self.clinic_ids),
            "protocol": self.protocol,
            "from": self.start_from.isoformat() if self.start_from else None,
            "to": self.start_to.isoformat() if self.start_to else None,
        }


@dataclass
class ExportCounter:
    """How many rows (CSV) or resources (FHIR) were written so far."""

    rows: int = 0


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def days_since_start(observed_at: dt.datetime, anchor_on: dt.date, time_zone: str) -> int:
    """Days from the course's anchor day to the day (on the patient's calendar) of a reading."""
    try:
        local = observed_at.astimezone(_zone(time_zone)).date()
    except (KeyError, ValueError):
        local = observed_at.date()
    return (local - anchor_on).days


def identifiers_for(spec: ExportSpec, config: Mapping[str, Any]) -> Identity:
    """Identity, or the configured pseudonyms (ExportRefused when the key is not fit for use)."""
    if not spec.deidentified:
        return Identity()
    return pseudonyms(config)


# The connection ------------------------------------------------------------------------------


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction for the whole export.

    On PostgreSQL: REPEATABLE READ, READ ONLY, so the export's several queries see one moment.
    On SQLite: BEGIN DEFERRED, so a long download never holds the write lock (proms begins
    every other transaction IMMEDIATE); WAL readers see one moment and block no writer.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        token = sqlite_begin.set("DEFERRED")
        try:
            transaction = connection.begin()
        finally:
            sqlite_begin.reset(token)
        try:
            yield connection
        finally:
            transaction.rollback()  # nothing was written


def _stream(connection: Connection, statement: Select[Any]) -> Iterator[Row[Any]]:
    """Rows of a query, FETCH_ROWS at a time (a server-side cursor where there is one)."""
    result = connection.execute(statement.execution_options(yield_per=FETCH_ROWS))
    try:
        yield from result
    finally:
        result.close()


# Scope ---------------------------------------------------------------------------------------


def _courses(statement: Select[Any], spec: ExportSpec) -> Select[Any]:
    """`statement` (which joins Enrollment) joined to the course's patient, clinic and protocol,
    limited to the export's scope."""
    statement = (
        statement.join(Patient, Enrollment.patient_id == Patient.id)
        .join(Clinic, Patient.clinic_id == Clinic.id)
        .join(Protocol, Enrollment.protocol_id == Protocol.id)
        .where(Patient.clinic_id.in_(spec.clinic_ids))
    )
    if spec.protocol:
        statement = statement.where(Protocol.slug == spec.protocol)
    if spec.start_from:
        statement = statement.where(Enrollment.anchor_on >= spec.start_from)
    if spec.start_to:
        statement = statement.where(Enrollment.anchor_on <= spec.start_to)
    return statement


COURSE_FIELDS = (
    Patient.id.label("patient_id"),
    Patient.mrn,
    Patient.birth_on,
    Patient.time_zone,
    Clinic.slug.label("clinic"),
    Enrollment.id.label("course_id"),
    Enrollment.anchor_on,
    Enrollment.status.label("course_status"),
    Enrollment.baseline_from_id,
    Protocol.slug.label("protocol"),
    Protocol.version.label("protocol_version"),
)

SCORE_FIELDS = (
    Score.id.label("score_id"),
    Score.response_id,
    Score.timepoint_key,
    Score.instrument_code,
    Score.instrument_version,
    Score.domain,
    Score.scale,
    Score.raw_score,
    Score.t_score,
    Score.standard_error,
    Score.method,
    Score.n_answered,
    Score.scoring_version,
    Score.observed_at,
    Score.improvement,
    Score.percent_improvement,
    Score.reliable_change_index,
    Score.change_by_threshold,
    Score.change_by_individual,
    Score.change_reason,
)


def score_rows(connection: Connection, spec: ExportSpec) -> Iterator[Row[Any]]:
    """Every score in scope with its course, time point and response, by patient and time."""
    statement = _courses(
        select(
            *COURSE_FIELDS,
            *SCORE_FIELDS,
            ProtocolTimepoint.offset_days.label("timepoint_day"),
            SurveyResponse.instrument_id,
        )
        .select_from(Score)
        .join(Enrollment, Score.enrollment_id == Enrollment.id)
        .join(Assessment, Score.assessment_id == Assessment.id)
        .join(ProtocolTimepoint, Assessment.timepoint_id == ProtocolTimepoint.id)
        .join(SurveyResponse, Score.response_id == SurveyResponse.id),
        spec,
    ).order_by(Patient.id, Enrollment.id, Score.observed_at, Score.id)
    return _stream(connection, statement)


def answer_rows(connection: Connection, spec: ExportSpec) -> Iterator[Row[Any]]:
    """Every answer of every submitted response in scope, response by response."""
    statement = _courses(
        select(
            *COURSE_FIELDS,
            SurveyResponse.id.label("response_id"),
            SurveyResponse.submitted_at,
            SurveyResponse.entered_by_id,
            SurveyResponse.entry_source,
            SurveyResponse.instrument_id,
            Instrument.code.label("instrument_code"),
            Instrument.version.label("instrument_version"),
            ProtocolTimepoint.key.label("timepoint_key"),
            ProtocolTimepoint.offset_days.label("timepoint_day"),
            SurveyAnswer.id.label("answer_id"),
            SurveyAnswer.item_id,
            SurveyAnswer.value,
        )
        .select_from(SurveyAnswer)
        .join(SurveyResponse, SurveyAnswer.response_id == SurveyResponse.id)
        .join(Instrument, SurveyResponse.instrument_id == Instrument.id)
        .join(Assessment, SurveyResponse.assessment_id == Assessment.id)
        .join(ProtocolTimepoint, Assessment.timepoint_id == ProtocolTimepoint.id)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .where(SurveyResponse.status == ResponseStatus.SUBMITTED),
        spec,
    ).order_by(Patient.id, Enrollment.id, SurveyResponse.id, SurveyAnswer.id)
    return _stream(connection, statement)


def patient_rows(connection: Connection, spec: ExportSpec) -> Iterator[Row[Any]]:
    """Each patient with a course in scope, once."""
    in_scope = _courses(select(Enrollment.patient_id).select_from(Enrollment), spec)
    statement = (
        select(
            Patient.id.label("patient_id"),
            Patient.mrn,
            Patient.given_name,
            Patient.family_name,
            Patient.birth_on,
            Clinic.slug.label("clinic"),
        )
        .join(Clinic, Patient.clinic_id == Clinic.id)
        .where(Patient.id.in_(in_scope))
        .order_by(Patient.id)
    )
    return _stream(connection, statement)


# Definitions ---------------------------------------------------------------------------------


class Definitions:
    """The definition each stored response is scored with (as `scoring_definition` finds it):
    the release's definition of the answered code and version, else the stored snapshot. Read
    once per instrument row."""

    def __init__(self, connection: Connection, registry: Registry) -> None:
        self._connection = connection
        self._registry = registry
        self._by_instrument: dict[int, InstrumentDefinition] = {}

    def of(self, instrument_id: int, code: str, version: str) -> InstrumentDefinition:
        found = self._by_instrument.get(instrument_id)
        if found is None:
            try:
                found = self._registry.get(code, version)
            except KeyError:
                found = self._stored(instrument_id)
            self._by_instrument[instrument_id] = found
        return found

    def _stored(self, instrument_id: int) -> InstrumentDefinition:
        row = self._connection.execute(
            select(
                Instrument.id,
                Instrument.code,
                Instrument.version,
                Instrument.source,
                Instrument.definition,
                Instrument.definition_sha256,
            ).where(Instrument.id == instrument_id)
        ).one()
        return stored_definition(row)  # type: ignore[arg-type] - the row has the columns it reads

    def threshold(self, row: Row[Any]) -> ChangeThreshold | None:
        """The primary threshold a score's change was classified with (None: not classified)."""
        if row.change_by_threshold is None:
            return None
        definition = self.of(row.instrument_id, row.instrument_code, row.instrument_version)
        return next((t for t in definition.thresholds if t.primary and t.scale == row.scale), None)


# Rows of each format -------------------------------------------------------------------------


def _course_cells(row: Row[Any], ids: Identity) -> list[Any]:
    """The values of `course_columns`: whose course a row belongs to."""
    shift = ids.shift_days(row.patient_id)
    values: list[Any] = [ids.patient(row.patient_id)]
    if not ids.deidentified:
        values.append(row.mrn)
    values += [
        row.clinic,
        age_band(row.birth_on, row.anchor_on),
        ids.course(row.course_id),
        shifted(row.anchor_on, shift),
        row.course_status,
        ids.course(row.baseline_from_id),
        row.protocol,
        row.protocol_version,
    ]
    return values


LONG_SCORE_COLUMNS = [
    "timepoint",
    "timepoint_day",
    "days_since_course_start",
    "response",
    "instrument",
    "instrument_version",
    "domain",
    "scale",
    "raw_score",
    "t_score",
    "standard_error",
    "method",
    "n_answered",
    "scoring_version",
    "observed_at",
    "improvement",
    "percent_improvement",
    "reliable_change_index",
    "change_by_threshold",
    "change_by_individual",
    "change_reason",
    "threshold",
    "threshold_unit",
    "threshold_source",
]


def course_columns(ids: Identity) -> list[str]:
    return [
        "patient",
        *([] if ids.deidentified else ["mrn"]),
        "clinic",
        "age_band",
        "course",
        "course_start",
        "course_status",
        "baseline_from_course",
        "protocol",
        "protocol_version",
    ]


def long_header(ids: Identity) -> list[str]:
    return course_columns(ids) + LONG_SCORE_COLUMNS


def long_rows(
    connection: Connection, registry: Registry, spec: ExportSpec, ids: Identity
) -> Iterator[list[Any]]:
    """csv-long: one row per patient, course, time point, instrument and scale."""
    definitions = Definitions(connection, registry)
    for row in score_rows(connection, spec):
        values = _course_cells(row, ids)
        threshold = definitions.threshold(row)
        values += [
            row.timepoint_key,
            row.timepoint_day,
            days_since_start(row.observed_at, row.anchor_on, row.time_zone),
            ids.response(row.response_id),
            row.instrument_code,
            row.instrument_version,
            row.domain,
            row.scale,
            row.raw_score,
            row.t_score,
            row.standard_error,
            row.method,
            row.n_answered,
            row.scoring_version,
            shifted(row.observed_at, ids.shift_days(row.patient_id)),
            row.improvement,
            row.percent_improvement,
            row.reliable_change_index,
            row.change_by_threshold,
            row.change_by_individual,
            row.change_reason,
            threshold.value if threshold else None,
            threshold.unit if threshold else None,
            threshold.source if threshold else None,
        ]
        yield values


@dataclass(frozen=True, slots=True)
class WideColumn:
    timepoint: str
    instrument: str
    scale: str

    @property
    def name(self) -> str:
        return f"{self.timepoint}.{self.instrument}.{self.scale}"


def wide_columns(connection: Connection, spec: ExportSpec) -> list[WideColumn]:
    """The time point x instrument scale columns that have a score in scope, in protocol order
    (time points by their day, instruments by code, each instrument's total first)."""
    statement = _courses(
        select(
            Score.timepoint_key,
            Score.instrument_code,
            Score.scale,
            func.min(ProtocolTimepoint.offset_days).label("day"),
            func.min(ProtocolTimepoint.position).label("position"),
        )
        .select_from(Score)
        .join(Enrollment, Score.enrollment_id == Enrollment.id)
        .join(Assessment, Score.assessment_id == Assessment.id)
        .join(ProtocolTimepoint, Assessment.timepoint_id == ProtocolTimepoint.id),
        spec,
    ).group_by(Score.timepoint_key, Score.instrument_code, Score.scale)
    found = list(connection.execute(statement))
    found.sort(
        key=lambda r: (
            r.day,
            r.position,
            r.timepoint_key,
            r.instrument_code,
            r.scale != "total",
            r.scale,
        )
    )
    return [WideColumn(r.timepoint_key, r.instrument_code, r.scale) for r in found]


def wide_header(ids: Identity, columns: Sequence[WideColumn]) -> list[str]:
    return course_columns(ids) + [column.name for column in columns]


def wide_rows(
    connection: Connection, spec: ExportSpec, ids: Identity, columns: Sequence[WideColumn]
) -> Iterator[list[Any]]:
    """csv-wide: one row per course in scope (with or without answers); each time point x
    instrument scale cell holds the T-score, or the raw score of instruments without one."""
    position = {(c.timepoint, c.instrument, c.scale): n for n, c in enumerate(columns)}
    statement = _courses(
        select(
            *COURSE_FIELDS,
            Score.timepoint_key,
            Score.instrument_code,
            Score.scale,
            Score.t_score,
            Score.raw_score,
        )
        .select_from(Enrollment)
        .outerjoin(Score, Score.enrollment_id == Enrollment.id),
        spec,
    ).order_by(Patient.id, Enrollment.id, Score.observed_at, Score.id)
    for _, group in itertools.groupby(_stream(connection, statement), key=lambda r: r.course_id):
        first = next(group)
        values = _course_cells(first, ids)
        cells: list[Any] = [None] * len(columns)
        for row in itertools.chain((first,), group):
            index = position.get((row.timepoint_key, row.instrument_code, row.scale))
            if index is not None:
                cells[index] = row.t_score if row.t_score is not None else row.raw_score
        yield values + cells


ITEM_COLUMNS = [
    "timepoint",
    "timepoint_day",
    "days_since_course_start",
    "response",
    "instrument",
    "instrument_version",
    "item",
    "value",
    "entered_by",
    "entry_source",
    "submitted_at",
]


def items_header(ids: Identity) -> list[str]:
    return course_columns(ids) + ITEM_COLUMNS


def entered_by(row: Row[Any]) -> str:
    """ "staff" for answers typed in from paper or a call, else "patient"."""
    return "staff" if row.entered_by_id is not None or row.entry_source else "patient"


def item_rows(connection: Connection, spec: ExportSpec, ids: Identity) -> Iterator[list[Any]]:
    """items: one row per answer of a submitted response (an empty value: skipped on purpose)."""
    for row in answer_rows(connection, spec):
        values = _course_cells(row, ids)
        values += [
            row.timepoint_key,
            row.timepoint_day,
            days_since_start(row.submitted_at, row.anchor_on, row.time_zone),
            ids.response(row.response_id),
            row.instrument_code,
            row.instrument_version,
            row.item_id,
            row.value,
            entered_by(row),
            row.entry_source,
            shifted(row.submitted_at, ids.shift_days(row.patient_id)),
        ]
        yield values


# CSV -----------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """One CSV cell. Text that a spreadsheet would run as a formula gets a leading quote;
    numbers are written as numbers (whole numbers without ".0", the same on every database)."""
    kind = type(value)  # the common types first: this runs for every cell of every row
    if kind is str:
        return "'" + value if value[:1] in FORMULA_FIRST else value
    if value is None:
        return ""
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, enum.Enum):
        return cell(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return cell(float(value))
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return cell(str(value))


def csv_chunks(
    header: Sequence[str], rows: Iterable[Sequence[Any]], counter: ExportCounter
) -> Iterator[str]:
    """The header and rows as CSV text (RFC 4180, CRLF), CHUNK_ROWS rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([cell(name) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])
        counter.rows += 1
        if counter.rows % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# The export ----------------------------------------------------------------------------------


@dataclass
class Export:
    """A running export: its chunks (text), what to call it, and how many rows it wrote."""

    spec: ExportSpec
    chunks: Iterator[str]
    counter: ExportCounter = field(default_factory=ExportCounter)

    @property
    def content_type(self) -> str:
        if self.spec.format is ExportFormat.FHIR:
            return "application/fhir+json; charset=utf-8"
        return "text/csv; charset=utf-8"

    def filename(self, today: dt.date) -> str:
        kind = "-deidentified" if self.spec.deidentified else ""
        extension = "json" if self.spec.format is ExportFormat.FHIR else "csv"
        return f"proms-{self.spec.format.value}{kind}-{today.isoformat()}.{extension}"


def export(
    engine: Engine,
    registry: Registry,
    spec: ExportSpec,
    ids: Identity,
    *,
    now: dt.datetime,
) -> Export:
    """The export as a generator of text chunks. Nothing is read until the first chunk is
    asked for; the connection is released when the last one has been (or the generator is
    closed)."""
    counter = ExportCounter()
    return Export(spec, _chunks(engine, registry, spec, ids, now, counter), counter)


def _chunks(
    engine: Engine,
    registry: Registry,
    spec: ExportSpec,
    ids: Identity,
    now: dt.datetime,
    counter: ExportCounter,
) -> Iterator[str]:
    with read_connection(engine) as connection:
        if spec.format is ExportFormat.FHIR:
            from proms.care.fhir_export import bundle_chunks, resources

            yield from bundle_chunks(
                resources(connection, registry, spec, ids), now=now, ids=ids, counter=counter
            )
            return
        header: list[str]
        rows: Iterable[Sequence[Any]]
        if spec.format is ExportFormat.CSV_LONG:
            header, rows = long_header(ids), long_rows(connection, registry, spec, ids)
        elif spec.format is ExportFormat.CSV_WIDE:
            columns = wide_columns(connection, spec)
            header, rows = wide_header(ids, columns), wide_rows(connection, spec, ids, columns)
        else:
            header, rows = items_header(ids), item_rows(connection, spec, ids)
        yield from csv_chunks(header, rows, counter)
