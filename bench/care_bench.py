"""Benchmark the care team's pages on PostgreSQL against fetching the same rows by primary key.

Generates a clinic network's worth of data in a throwaway PostgreSQL database (migrated with
`proms db upgrade`, or made from the models with --schema create-all; dropped at the end): at
--scale 1.0, 100,000 patients in four clinics (one has 70% of them), about 100,000 treatment
courses on the bundled ketamine protocol (most patients one, some two, some none yet) with their
infusion days and 500,000 questionnaire windows, the responses of every window answered
(response rates falling from baseline to six months), each item's answer, about 2,000,000 scores
made by the real scoring engine and classified against the course's baseline by the real change
rules (patients who improve, stay the same or worsen), the alerts those raise, and the outbox (an
invitation and reminders per window). Written with COPY; --scale 0.1 is a tenth (CI's run).

Then a clinician signs in to the real Flask app (the test client, the app as `create_app` builds
it, on that database) and, in the same run:
  page      each page N times after a warm-up: the patient list (first page, a middle page,
            every filter it offers), the page of the patient with the most scores, and the cohort
            report (once the app has it); median and p95 of the request's wall time
  baseline  the rows that page shows fetched by primary key (`WHERE id = ANY(...)`, a statement
            per table, on one connection), alternating with the page: for the list its patients,
            their latest course, latest score per domain, alerts not resolved and next window;
            for the patient page the patient and every course, infusion day, window, response,
            answer, score, alert and message of theirs
and prints ratio = page / baseline (targets: patient page at most 3x, list at most 10x; the
cohort report under 1 s, absolute). Last, every SQL statement each page ran is captured with its
parameters and EXPLAINed; every sequential scan of a large table is named with its statement and
the share of the table it keeps (under 20%: a finding, an index would serve it; most of the
table: a report over the whole cohort reading what it must).

Targets are reported, not asserted: the script exits non-zero only on errors (a page that does
not answer 200, a table or column the generator needs that the schema lacks, a failed query).

    .venv/bin/python bench/care_bench.py [--scale 1.0] [--runs 30] [--budget 30]
    .venv/bin/python bench/care_bench.py --scale 0.1 --keep      # keeps the database, prints it
    .venv/bin/python bench/care_bench.py --reuse URL [--only WORDS] [--analyze] [--plans]

--reuse measures a kept database again (adding the tables and indexes the models gained since,
not new columns); --only
measures the pages whose name has WORDS; --analyze runs EXPLAIN ANALYZE and lists each page's
slowest statements; --plans prints every statement's plan. A page runs --runs times or for
--budget seconds, whichever comes first, but at least 5 times.

PROMS_BENCH_POSTGRES_URL (or --url) is the server to create the database on (default
postgresql+psycopg://postgres@127.0.0.1:5432/); a URL that names a database gets a schema of its
own in that database instead (CI's role may not create databases).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pg

from proms import create_app
from proms.admin.models import Clinic, Protocol
from proms.admin.services import create_clinic
from proms.auth import mfa
from proms.auth.models import ClinicMembership, Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff
from proms.catalog.services import snapshot
from proms.db import Base, db, utcnow
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import bundled_registry
from proms.outcomes import alerts
from proms.outcomes import services as outcomes
from proms.schema import upgrade
from proms.scoring import SCORING_VERSION, score
from proms.scoring.change import (
    ChangeResult,
    Measurement,
    Threshold,
    classify_change,
)
from proms.scoring.types import Direction, Method, ScoreResult

SERVER = os.environ.get("PROMS_BENCH_POSTGRES_URL", _pg.DEFAULT_SERVER)
SEED = 11
PASSWORD = "bench correct horse battery"  # noqa: S105 - a throwaway database's account
CLINICIAN = "clinician@bench.example.org"
ADMIN = "admin@bench.example.org"
PROTOCOL = "ketamine-infusion-course"
UTC = dt.UTC

# slug, name, time zone, share of the patients
CLINICS = (
    ("bench-main", "Main Pain Service", "America/New_York", 0.70),
    ("bench-north", "North Pain Clinic", "America/Chicago", 0.15),
    ("bench-west", "West Pain Clinic", "America/Los_Angeles", 0.10),
    ("bench-small", "Small Pain Clinic", "America/Denver", 0.05),
)
PATIENTS_AT_FULL_SCALE = 100_000

# Tables whose whole-table read on a page is a finding (they grow with patients and time).
LARGE_TABLES = (
    "patient",
    "enrollment",
    "treatment_session",
    "assessment",
    "survey_response",
    "survey_answer",
    "score",
    "alert",
    "notification",
    "audit_event",
)

TARGETS = {"list": 10.0, "patient": 3.0}
# A sequential scan that keeps less than this share of its table is a finding.
SELECTIVE = 0.2
REPORT_TARGET_SECONDS = 1.0
MIN_RUNS = 5

# Share of windows answered, by time point (falling over time, as in practice), before the
# patient's own engagement; and how much of a course's effect is left at each time point.
ANSWER_RATE = {
    "baseline": 0.85,
    "end_of_course": 0.60,
    "month_1": 0.42,
    "month_3": 0.30,
    "month_6": 0.25,
}
EFFECT_LEFT = {
    "baseline": 0.0,
    "end_of_course": 1.0,
    "month_1": 0.95,
    "month_3": 0.85,
    "month_6": 0.75,
}
# Kinds of course: (share, effect on "badness", 0 the best answer to every item, 1 the worst).
RESPONDERS = ((0.30, 0.22), (0.25, 0.11), (0.35, 0.0), (0.10, -0.10))
DOMAIN_EFFECT = {
    "pain_interference": 1.0,
    "physical_function": 0.6,
    "sleep_disturbance": 0.7,
    "pain_anxiety": 1.1,
    "pain": 1.0,
}
SIDE_EFFECTS = ("nausea", "dizziness", "dissociation", "headache", "sedation")


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


GIVEN = words(
    "Ada Ben Carmen Dev Elena Farah George Hana Ivan Jade Kofi Lucia Mateo Nia Omar Priya Quinn "
    "Rosa Sven Tara Umar Vera Wen Xavier Yara Zoe Alma Bruno Chloe Diego Esther Femi Gita Hugo"
)
FAMILY_START = words(
    "Ab Bar Cal Dar El Fen Gar Hal Ib Jan Kal Lor Mar Nor Ol Pel Quin Ros Sal Tor Ul Val Wes"
)
FAMILY_END = words("ton ley son man field wood well more ford ridge cott ez ova ini berg")

# The columns the generator fills, table by table, parents first (the order of writing).
COLUMNS = {
    "patient": words(
        "id clinic_id mrn given_name family_name birth_on email phone preferred_channel "
        "time_zone language opted_out_at created_at"
    ),
    "enrollment": words(
        "id patient_id protocol_id anchor_on status withdrawn_at withdrawal_reason created_at"
    ),
    "treatment_session": words(
        "id enrollment_id day_number scheduled_on status performed_at dose_mg_per_kg "
        "side_effects notes missed_reason recorded_by_id recorded_at"
    ),
    "assessment": words(
        "id enrollment_id timepoint_id opens_at due_at closes_at status started_at "
        "completed_at created_at"
    ),
    "survey_response": words(
        "id assessment_id instrument_id status started_at updated_at submitted_at "
        "entered_by_id entry_source"
    ),
    "survey_answer": words("id response_id item_id value answered_at"),
    "score": words(
        "id response_id scale patient_id enrollment_id assessment_id timepoint_key "
        "instrument_code instrument_version domain observed_at raw_score t_score "
        "standard_error n_answered method scoring_version scored_at"
    )
    + outcomes.CHANGE_COLUMNS,
    "alert": words(
        "id patient_id clinic_id assessment_id score_id kind tier rule timepoint_key status "
        "detail created_at acknowledged_at acknowledged_by_id acknowledgement_note resolved_at "
        "resolved_by_id resolution_note notified_at"
    ),
    "notification": words(
        "id idempotency_key patient_id assessment_id kind channel send_after status attempts "
        "sent_at cancel_reason created_at"
    ),
}

# Data ------------------------------------------------------------------------------------------


@dataclass
class Table:
    """Rows of one table in `columns` order, written with COPY a chunk at a time."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...] | str] = field(default_factory=list)  # values, or a line
    written: int = 0
    last_id: int = 0

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def add(self, **values: object) -> None:
        self.rows.append(tuple(values[name] for name in self.columns))


@dataclass(frozen=True, slots=True)
class Timepoint:
    id: int
    key: str
    offset_days: int
    before: int
    after: int
    send_time: dt.time
    reminders: tuple[int, ...]
    instruments: tuple[tuple[str, str], ...]  # (code, version)


@dataclass(frozen=True, slots=True)
class Setup:
    """What the app made before the bulk rows: clinics, protocols, staff, instrument rows."""

    clinics: list[tuple[int, str, float]]  # id, slug, share of the patients
    zones: dict[int, ZoneInfo]  # by clinic id
    protocol_ids: dict[int, int]  # by clinic id
    timepoints: dict[int, list[Timepoint]]  # by clinic id, in order
    instrument_ids: dict[tuple[str, str], int]
    clinician_id: int
    admin_id: int


class Generator:
    """Patients, courses, windows, answers, scores, alerts and messages, a patient at a time."""

    def __init__(self, setup: Setup, patients: int, now: dt.datetime) -> None:
        self.setup = setup
        self.patients = patients
        self.now = now
        self.today = now.date()
        self.rng = random.Random(SEED)
        self.tables = {name: Table(name, columns) for name, columns in COLUMNS.items()}
        registry = bundled_registry()
        self.definitions: dict[tuple[str, str], InstrumentDefinition] = {
            key: registry.get(*key) for key in setup.instrument_ids
        }
        self.forms = {key: definition.form() for key, definition in self.definitions.items()}
        self.scores: dict[tuple[object, ...], tuple[ScoreResult, ...]] = {}
        # Per questionnaire: each item's id and answer values, lowest first.
        self.items = {
            key: [(item.id, sorted(item.values)) for item in definition.items]
            for key, definition in self.definitions.items()
        }
        self.thresholds = {
            (key, t.scale): t.to_threshold()
            for key, definition in self.definitions.items()
            for t in definition.thresholds
            if t.primary
        }

    def run(self, write: Callable[[dict[str, Table]], None], chunk: int = 2000) -> None:
        """Every patient; `write` takes the rows every `chunk` patients."""
        for clinic_id, slug, share in self.setup.clinics:
            for n in range(max(1, round(self.patients * share))):
                self.patient(clinic_id, slug, n)
                if len(self.tables["patient"].rows) >= chunk:
                    write(self.tables)
        write(self.tables)

    def patient(self, clinic_id: int, slug: str, n: int) -> None:
        rng, today = self.rng, self.today
        patient_id = self.tables["patient"].new_id()
        channel = rng.choices(("email", "sms", "none"), (0.7, 0.25, 0.05))[0]
        draw = rng.random()
        if draw < 0.125:
            anchors = []  # registered, no course yet
        elif draw < 0.875:
            anchors = [today - dt.timedelta(days=rng.randint(-21, 730))]
        else:  # a returning patient
            first = today - dt.timedelta(days=rng.randint(200, 730))
            again = first + dt.timedelta(days=rng.randint(150, 400))
            anchors = [first, min(again, today - dt.timedelta(days=rng.randint(0, 20)))]
        registered = anchors[0] if anchors else today - dt.timedelta(days=rng.randint(0, 60))
        email = channel == "email" or rng.random() < 0.5
        phone = channel == "sms" or rng.random() < 0.4
        self.tables["patient"].add(
            id=patient_id,
            clinic_id=clinic_id,
            mrn=f"{slug[6:8].upper()}{n:07d}",
            given_name=rng.choice(GIVEN),
            family_name=rng.choice(FAMILY_START) + rng.choice(FAMILY_END),
            birth_on=dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 55 * 365)),
            email=f"p{patient_id}@example.org" if email else None,
            phone=f"+1216555{patient_id % 10000:04d}" if phone else None,
            preferred_channel=channel,
            time_zone=self.setup.zones[clinic_id].key,
            language="es" if rng.random() < 0.12 else "en",
            opted_out_at=_at(today - dt.timedelta(days=3)) if rng.random() < 0.01 else None,
            created_at=_at(registered - dt.timedelta(days=20)),
        )
        badness = _clamp(rng.gauss(0.62, 0.12))
        engagement = _clamp(rng.gauss(1.0, 0.18), 0.3, 1.25)
        for anchor in anchors:
            badness = self.course(clinic_id, patient_id, channel, anchor, badness, engagement)

    def course(
        self,
        clinic_id: int,
        patient_id: int,
        channel: str,
        anchor: dt.date,
        badness: float,
        engagement: float,
    ) -> float:
        """One treatment course; the patient's state after it (a next course starts there)."""
        rng, now = self.rng, self.now
        enrollment_id = self.tables["enrollment"].new_id()
        created = _at(anchor - dt.timedelta(days=21))
        timepoints = self.setup.timepoints[clinic_id]
        last = timepoints[-1]
        withdrawn_at = None
        status = "active"
        if rng.random() < 0.03:
            withdrawn = _at(anchor + dt.timedelta(days=rng.randint(1, 90)))
            withdrawn_at, status = min(withdrawn, now - dt.timedelta(hours=1)), "withdrawn"
        elif anchor + dt.timedelta(days=last.offset_days + last.after) < self.today:
            status = "completed"
        self.tables["enrollment"].add(
            id=enrollment_id,
            patient_id=patient_id,
            protocol_id=self.setup.protocol_ids[clinic_id],
            anchor_on=anchor,
            status=status,
            withdrawn_at=withdrawn_at,
            withdrawal_reason="Patient's request" if withdrawn_at else None,
            created_at=created,
        )
        self.infusions(enrollment_id, anchor, withdrawn_at)
        draw, effect = rng.random(), 0.0
        for share, size in RESPONDERS:
            if draw < share:
                effect = size
                break
            draw -= share
        domains = {domain: _clamp(badness + rng.gauss(0, 0.08)) for domain in DOMAIN_EFFECT}
        baseline: dict[tuple[str, str], Measurement] = {}
        state = domains
        zone = self.setup.zones[clinic_id]
        for tp in timepoints:
            day = anchor + dt.timedelta(days=tp.offset_days)
            opens = _local(day - dt.timedelta(days=tp.before), tp.send_time, zone)
            closes = _local(day + dt.timedelta(days=tp.after + 1), dt.time(0), zone)
            chance = ANSWER_RATE[tp.key] * engagement
            draw = rng.random()
            started = completed = None
            if withdrawn_at is not None and opens > withdrawn_at:
                window = "cancelled"
            elif closes <= now:
                window = "completed" if draw < chance else "expired"
            elif opens <= now:  # open now: some answered already, some begun
                window = (
                    "completed"
                    if draw < chance * 0.6
                    else "in_progress"
                    if draw < chance * 0.6 + 0.08
                    else "scheduled"
                )
            else:
                window = "scheduled"
            if window in ("completed", "in_progress"):
                latest = min(closes, now)
                started = opens + (latest - opens) * (rng.random() ** 2) * 0.9
                if window == "completed":
                    taken = dt.timedelta(minutes=rng.randint(3, 25))
                    completed = min(started + taken, latest - dt.timedelta(seconds=1))
            assessment_id = self.tables["assessment"].new_id()
            self.tables["assessment"].add(
                id=assessment_id,
                enrollment_id=enrollment_id,
                timepoint_id=tp.id,
                opens_at=opens,
                due_at=_local(day, tp.send_time, zone),
                closes_at=closes,
                status=window,
                started_at=started,
                completed_at=completed,
                created_at=created,
            )
            self.messages(patient_id, channel, assessment_id, tp, opens, closes, window, completed)
            left = EFFECT_LEFT[tp.key]
            state = {
                domain: _clamp(b - effect * DOMAIN_EFFECT[domain] * left + rng.gauss(0, 0.04))
                for domain, b in domains.items()
            }
            if completed is not None and started is not None:
                where = (patient_id, clinic_id, enrollment_id, assessment_id)
                self.responses(where, tp, state, started, completed, baseline)
            elif started is not None:  # begun: the first questionnaire's first answers
                self.draft(assessment_id, tp.instruments[0], state, started)
        return _clamp(statistics.fmean(state.values()) + rng.uniform(0.0, 0.15))  # relapse

    def infusions(
        self, enrollment_id: int, anchor: dt.date, withdrawn_at: dt.datetime | None
    ) -> None:
        rng, table = self.rng, self.tables["treatment_session"]
        for day in range(1, 6):
            on = anchor + dt.timedelta(days=day - 1)
            effects: list[str] = []
            missed = None
            if on >= self.today or (withdrawn_at is not None and on > withdrawn_at.date()):
                status = "planned"
            elif rng.random() < 0.94:
                status = "done"
                if rng.random() < 0.25:
                    effects.append(rng.choice(SIDE_EFFECTS))
                if rng.random() < 0.005:
                    effects.append("hallucinations")
            else:
                status, missed = "missed", "Unwell on the day"
            recorded = status != "planned"
            table.add(
                id=table.new_id(),
                enrollment_id=enrollment_id,
                day_number=day,
                scheduled_on=on,
                status=status,
                performed_at=_at(on) if status == "done" else None,
                dose_mg_per_kg=0.5 if status == "done" else None,
                side_effects=effects,
                notes="",
                missed_reason=missed,
                recorded_by_id=self.setup.clinician_id if recorded else None,
                recorded_at=_at(on, dt.time(17)) if recorded else None,
            )

    def messages(
        self,
        patient_id: int,
        channel: str,
        assessment_id: int,
        tp: Timepoint,
        opens: dt.datetime,
        closes: dt.datetime,
        window: str,
        completed: dt.datetime | None,
    ) -> None:
        """The window's invitation and reminders, as the outbox holds them by now."""
        table = self.tables["notification"]
        planned = [("invite", 0, opens)] + [
            ("reminder", number, opens + dt.timedelta(days=days))
            for number, days in enumerate(tp.reminders, start=1)
        ]
        for kind, number, at in planned:
            if at >= closes:
                continue
            reason = None
            if channel == "none":
                status, reason = "cancelled", "no_contact"
            elif window == "cancelled":
                status, reason = "cancelled", "withdrawn"
            elif completed is not None and completed <= at:
                status, reason = "cancelled", "completed"
            else:
                status = "sent" if at <= self.now else "pending"
            table.add(
                id=table.new_id(),
                idempotency_key=f"assessment:{assessment_id}:{opens.date().isoformat()}:"
                f"{kind}:{number}:{channel}",
                patient_id=patient_id,
                assessment_id=assessment_id,
                kind=kind,
                channel=channel,
                send_after=at,
                status=status,
                attempts=1 if status == "sent" else 0,
                sent_at=at + dt.timedelta(seconds=40) if status == "sent" else None,
                cancel_reason=reason,
                created_at=opens - dt.timedelta(days=20),
            )

    def answers(self, key: tuple[str, str], state: dict[str, float]) -> dict[str, int | None]:
        """One questionnaire's answers from the patient's state (per domain, 0 best, 1 worst)."""
        rng = self.rng
        definition = self.definitions[key]
        if definition.domain not in state:  # the side-effect checklist
            ids = [item_id for item_id, _values in self.items[key]]
            answers: dict[str, int | None] = dict.fromkeys(ids, 0)
            if rng.random() < 0.2:
                answers[rng.choice(ids)] = rng.choice((1, 1, 2))
            if rng.random() < 0.012:
                answers[ids[rng.randrange(2)]] = 3  # severe hallucinations or dissociation
            return answers
        badness = state[definition.domain]
        higher_is_worse = definition.direction is Direction.HIGHER_IS_WORSE
        items = self.items[key]
        skipped = rng.randrange(len(items)) if rng.random() < 0.02 else -1
        answers = {}
        for n, (item_id, values) in enumerate(items):
            if n == skipped:
                answers[item_id] = None
                continue
            q = _clamp(rng.gauss(badness, 0.15))
            answers[item_id] = values[round((q if higher_is_worse else 1 - q) * (len(values) - 1))]
        return answers

    def draft(
        self, assessment_id: int, key: tuple[str, str], state: dict[str, float], at: dt.datetime
    ) -> None:
        responses, answers = self.tables["survey_response"], self.tables["survey_answer"]
        response_id = responses.new_id()
        responses.add(
            id=response_id,
            assessment_id=assessment_id,
            instrument_id=self.setup.instrument_ids[key],
            status="draft",
            started_at=at,
            updated_at=at,
            submitted_at=None,
            entered_by_id=None,
            entry_source=None,
        )
        for item_id, value in list(self.answers(key, state).items())[:2]:
            answers.add(
                id=answers.new_id(),
                response_id=response_id,
                item_id=item_id,
                value=value,
                answered_at=at,
            )

    def responses(
        self,
        where: tuple[int, int, int, int],  # patient, clinic, enrollment, assessment
        tp: Timepoint,
        state: dict[str, float],
        started: dt.datetime,
        completed: dt.datetime,
        baseline: dict[tuple[str, str], Measurement],
    ) -> None:
        """A submitted window: every questionnaire answered, scored, compared, alerted."""
        patient_id, _clinic_id, enrollment_id, assessment_id = where
        responses, answer_rows = self.tables["survey_response"], self.tables["survey_answer"]
        scores = self.tables["score"]
        on_paper = self.rng.random() < 0.03
        at = completed.isoformat()
        for key in tp.instruments:
            definition = self.definitions[key]
            response_id = responses.new_id()
            responses.add(
                id=response_id,
                assessment_id=assessment_id,
                instrument_id=self.setup.instrument_ids[key],
                status="submitted",
                started_at=started,
                updated_at=completed,
                submitted_at=completed,
                entered_by_id=self.setup.admin_id if on_paper else None,
                entry_source="paper" if on_paper else None,
            )
            answers = self.answers(key, state)
            for item_id, value in answers.items():  # the most rows: COPY lines made here
                number = "\\N" if value is None else value
                answer_rows.rows.append(
                    f"{answer_rows.new_id()}\t{response_id}\t{item_id}\t{number}\t{at}"
                )
            for due in alerts.side_effect_alerts(definition, answers):
                self.alert(where, tp.key, due, completed)
            for result in self.scored(key, answers):
                value = result.t_score if result.t_score is not None else result.raw_score
                current = Measurement(*key, result.scale, float(value), result.standard_error)
                change = None
                if tp.key == "baseline":
                    baseline[(key[0], result.scale)] = current
                else:
                    threshold = self.threshold(key, result.scale)
                    if threshold is not None:
                        before = baseline.get((key[0], result.scale))
                        change = _classify(before, current, definition.direction, threshold)
                values = outcomes.change_values(change) if change else outcomes.NO_CHANGE_VALUES
                score_id = scores.new_id()
                scores.add(
                    id=score_id,
                    response_id=response_id,
                    scale=result.scale,
                    patient_id=patient_id,
                    enrollment_id=enrollment_id,
                    assessment_id=assessment_id,
                    timepoint_key=tp.key,
                    instrument_code=key[0],
                    instrument_version=key[1],
                    domain=definition.domain,
                    observed_at=completed,
                    raw_score=result.raw_score,
                    t_score=result.t_score,
                    standard_error=result.standard_error,
                    n_answered=result.n_answered,
                    method=result.method.value,
                    scoring_version=SCORING_VERSION,
                    scored_at=completed,
                    **values,
                )
                due = alerts.severity_alerts(
                    definition, result.scale, result.t_score, result.raw_score, score_id
                )
                worse = alerts.worsening_alert(change, score_id) if change else None
                for found in [*due, *([worse] if worse else [])]:
                    self.alert(where, tp.key, found, completed)

    def threshold(self, key: tuple[str, str], scale: str) -> Threshold | None:
        """The instrument's primary threshold for a scale, as the change rules take it."""
        return self.thresholds.get((key, scale))

    def scored(
        self, key: tuple[str, str], answers: dict[str, int | None]
    ) -> tuple[ScoreResult, ...]:
        """The scales of a questionnaire that have a score: the real engine (answers repeat)."""
        memo = (key, *answers.values())
        found = self.scores.get(memo)
        if found is None:
            found = tuple(r for r in score(self.forms[key], answers) if r.method is not Method.NONE)
            self.scores[memo] = found
        return found

    def alert(
        self,
        where: tuple[int, int, int, int],
        timepoint_key: str,
        due: alerts.DueAlert,
        created: dt.datetime,
    ) -> None:
        """An alert the real rules raise: most resolved once a fortnight old, some not yet."""
        patient_id, clinic_id, _enrollment_id, assessment_id = where
        rng, by = self.rng, self.setup.clinician_id
        old = created < self.now - dt.timedelta(days=14)
        draw = rng.random()
        if old:
            status = "resolved" if draw < 0.8 else "acknowledged" if draw < 0.95 else "open"
        else:
            status = "acknowledged" if draw < 0.3 else "open"
        seen = created + dt.timedelta(hours=rng.randint(1, 72))
        done = seen + dt.timedelta(days=rng.randint(0, 10))
        acknowledged = status == "acknowledged" or (status == "resolved" and draw < 0.6)
        table = self.tables["alert"]
        table.add(
            id=table.new_id(),
            **alerts.alert_row(
                due,
                patient_id=patient_id,
                clinic_id=clinic_id,
                assessment_id=assessment_id,
                timepoint_key=timepoint_key,
            ),
            status=status,
            created_at=created,
            acknowledged_at=seen if acknowledged else None,
            acknowledged_by_id=by if acknowledged else None,
            acknowledgement_note="Called the patient" if acknowledged else None,
            resolved_at=done if status == "resolved" else None,
            resolved_by_id=by if status == "resolved" else None,
            resolution_note="Reviewed at the visit" if status == "resolved" else None,
            notified_at=created + dt.timedelta(minutes=5),
        )


@functools.lru_cache(maxsize=500_000)
def _classify(
    before: Measurement | None, current: Measurement, direction: Direction, threshold: Threshold
) -> ChangeResult:
    """The real change rules; the same few score pairs come back again and again."""
    return classify_change(before, current, direction=direction, threshold=threshold)


def _clamp(x: float, low: float = 0.0, high: float = 1.0) -> float:
    return low if x < low else high if x > high else x


def _at(day: dt.date, at: dt.time = dt.time(15)) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=UTC)


@functools.lru_cache(maxsize=100_000)
def _local(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


# Set-up and load -------------------------------------------------------------------------------


def app_config(url: str) -> dict[str, Any]:
    """The app as a development server runs it, on the benchmark's database."""
    return {
        "ENV": "development",
        "SECRET_KEY": "bench-" + "k" * 40,
        "DATABASE_URL": url,
        "MESSAGE_TRANSPORT": "null",
        "PUBLIC_BASE_URL": "https://proms.example.org",
        # A cheap hash: signing in is not what is measured.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024,
        "ARGON2_PARALLELISM": 1,
        "RATELIMIT_ENABLED": False,
    }


def create_schema(url: str, how: str) -> None:
    if how == "upgrade":
        upgrade(url)
        return
    import proms.models  # noqa: F401 - every table on the metadata

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()


def catch_up(url: str) -> None:
    """A kept database given the tables and indexes the models gained since it was made.

    Columns are not added: a model with a new column needs a new database.
    """
    import proms.models  # noqa: F401 - every table on the metadata

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)  # only what is missing
    with engine.begin() as connection:
        known = {
            index["name"]
            for table in Base.metadata.tables
            for index in sa.inspect(connection).get_indexes(table)
        }
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                if index.name not in known:
                    index.create(connection)
                    connection.execute(sa.text(f'ANALYZE "{table.name}"'))
    engine.dispose()


def set_up(app: Flask) -> Setup:
    """Clinics (each offered the bundled protocol), two staff members, instrument rows."""
    registry = bundled_registry()
    with app.app_context():
        hasher = hasher_from_config(app.config)
        clinics: list[tuple[Clinic, float]] = [
            (
                create_clinic(
                    db.session, slug=slug, name=name, time_zone=zone, contact_phone="+12165550100"
                ),
                share,
            )
            for slug, name, zone, share in CLINICS
        ]
        staff = {
            role: create_staff(
                db.session,
                hasher,
                email=email,
                full_name=f"Bench {role.value}",
                password=PASSWORD,
                clinic=clinics[0][0],
                role=role,
            ).id
            for email, role in ((CLINICIAN, Role.CLINICIAN), (ADMIN, Role.ADMIN))
        }
        admin = db.session.get(StaffUser, staff[Role.ADMIN])
        assert admin is not None
        for clinic, _share in clinics[1:]:
            admin.memberships.append(ClinicMembership(clinic=clinic, role=Role.ADMIN))
        timepoints: dict[int, list[Timepoint]] = {}
        protocol_ids: dict[int, int] = {}
        instrument_ids: dict[tuple[str, str], int] = {}
        for clinic, _share in clinics:
            protocol = db.session.scalars(
                sa.select(Protocol).where(
                    Protocol.clinic_id == clinic.id, Protocol.slug == PROTOCOL
                )
            ).one()
            protocol_ids[clinic.id] = protocol.id
            timepoints[clinic.id] = []
            for tp in protocol.timepoints:
                keys = tuple(
                    (code, tp.instrument_versions.get(code) or registry.get(code).version)
                    for code in tp.instrument_codes
                )
                for key in keys:
                    if key not in instrument_ids:
                        instrument_ids[key] = snapshot(db.session, registry.get(*key)).id
                timepoints[clinic.id].append(
                    Timepoint(
                        id=tp.id,
                        key=tp.key,
                        offset_days=tp.offset_days,
                        before=tp.window_before_days,
                        after=tp.window_after_days,
                        send_time=tp.send_time_local,
                        reminders=tuple(sorted(tp.reminder_offsets_days)),
                        instruments=keys,
                    )
                )
        setup = Setup(
            clinics=[(clinic.id, clinic.slug, share) for clinic, share in clinics],
            zones={clinic.id: ZoneInfo(clinic.time_zone) for clinic, _share in clinics},
            protocol_ids=protocol_ids,
            timepoints=timepoints,
            instrument_ids=instrument_ids,
            clinician_id=staff[Role.CLINICIAN],
            admin_id=staff[Role.ADMIN],
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return setup


def generate(url: str, scale: float, now: dt.datetime) -> tuple[dict[str, int], float]:
    """Fill the database; the rows written by table, and the seconds spent writing them."""
    setup = set_up(create_app(app_config(url)))
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        try:  # Foreign keys unchecked while loading (the rows are consistent); superuser only.
            connection.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            connection.rollback()
        present = {name: _pg.table_columns(connection, name) for name in COLUMNS}
        generator = Generator(setup, round(PATIENTS_AT_FULL_SCALE * scale), now)
        for table in generator.tables.values():
            absent = set(table.columns) - present[table.name]
            if absent:
                raise SystemExit(f"the table {table.name} lacks {sorted(absent)}")
            unfilled = _pg.required_columns(connection, table.name) - set(table.columns)
            if unfilled:
                raise SystemExit(
                    f"the table {table.name} needs values the generator does not make: "
                    f"{sorted(unfilled)} (teach bench/care_bench.py about them)"
                )

        writing = [0.0]

        def write(tables: dict[str, Table]) -> None:
            start = time.perf_counter()
            for table in tables.values():  # parents first
                if table.rows:
                    table.written += _pg.copy_rows(
                        connection, table.name, table.columns, table.rows
                    )
                    table.rows.clear()
            connection.commit()
            writing[0] += time.perf_counter() - start

        generator.run(write)
        for name in COLUMNS:
            _pg.reset_sequence(connection, name)
        connection.commit()
    start = time.perf_counter()
    with psycopg.connect(_pg.psycopg_dsn(url), autocommit=True) as connection:
        _pg.vacuum_analyze(connection)
    writing[0] += time.perf_counter() - start
    return {name: table.written for name, table in generator.tables.items()}, writing[0]


def counts(url: str) -> dict[str, int]:
    """The rows of a kept database, by table."""
    found = {}
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        for name in COLUMNS:
            row = connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()  # noqa: S608
            found[name] = int(row[0]) if row else 0
    return found


# Measuring -------------------------------------------------------------------------------------


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PATIENT_LINK = re.compile(r'href="/patients/(\d+)"')


class PageError(Exception):
    """A page did not answer as a page should."""


def signed_in(app: Flask, email: str) -> Any:
    """A browser signed in as `email`, with its second step when two-step sign-in asks for it
    (admins must use it: the bench's admin gets a key here, on data made before it had one)."""
    with app.app_context():
        user = db.session.scalars(sa.select(StaffUser).where(StaffUser.email == email)).one()
        if user.mfa_secret is None and mfa.is_required(db.session, user):
            user.mfa_secret = mfa.new_secret()
            user.mfa_enabled_at = utcnow()
            db.session.commit()
        secret = user.mfa_secret
    client = app.test_client()
    found = CSRF.search(client.get("/login").get_data(as_text=True))
    if found is None:
        raise PageError("no CSRF token on /login")
    response = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": found[1]}
    )
    if response.status_code == 302 and response.headers["Location"] == "/login/code":
        found = CSRF.search(client.get("/login/code").get_data(as_text=True))
        if found is None:
            raise PageError("no CSRF token on /login/code")
        code = mfa.code_at(secret, mfa.time_step(utcnow()))
        response = client.post("/login/code", data={"code": code, "csrf_token": found[1]})
    if response.status_code != 302:
        raise PageError(f"signing in as {email} answered {response.status_code}")
    return client


@dataclass
class Page:
    name: str
    path: str
    kind: str  # "list", "patient" or "report"
    baseline_ids: Callable[[str], dict[str, list[int]]] | None = None  # from the page's HTML
    call: Callable[[], object] | None = None  # a service measured without a request
    reset: Callable[[], None] | None = None  # before each run, untimed (a cache emptied)
    times: list[float] = field(default_factory=list)
    baseline_times: list[float] = field(default_factory=list)
    baseline_rows: dict[str, int] = field(default_factory=dict)
    statements: list[tuple[str, Any, bool]] = field(default_factory=list)
    plans: list[_pg.Plan] = field(default_factory=list)
    note: str = ""


def fetch_by_ids(engine: sa.Engine, ids: dict[str, list[int]]) -> int:
    """The baseline: every row by primary key, a statement per table, on one connection."""
    rows = 0
    with engine.connect() as connection:
        for table, wanted in ids.items():
            if wanted:
                rows += len(
                    connection.execute(
                        sa.text(f'SELECT * FROM "{table}" WHERE id = ANY(:ids)'),  # noqa: S608
                        {"ids": wanted},
                    ).all()
                )
    return rows


def list_rows(engine: sa.Engine, now: dt.datetime) -> Callable[[str], dict[str, list[int]]]:
    """What a patient list page shows, by id: its patients and what it says of each."""

    def ids(html: str) -> dict[str, list[int]]:
        patients = list(dict.fromkeys(int(n) for n in PATIENT_LINK.findall(html)))
        queries = {
            "enrollment": "SELECT DISTINCT ON (patient_id) id FROM enrollment "
            "WHERE patient_id = ANY(:p) ORDER BY patient_id, anchor_on DESC, id DESC",
            "score": "SELECT DISTINCT ON (patient_id, domain) id FROM score "
            "WHERE patient_id = ANY(:p) AND scale = 'total' "
            "ORDER BY patient_id, domain, observed_at DESC, id DESC",
            "alert": "SELECT id FROM alert WHERE patient_id = ANY(:p) AND status <> 'resolved'",
            "assessment": "SELECT DISTINCT ON (e.patient_id) a.id FROM assessment a "
            "JOIN enrollment e ON e.id = a.enrollment_id WHERE e.patient_id = ANY(:p) "
            "AND a.status IN ('scheduled', 'in_progress') AND a.closes_at > :now "
            "ORDER BY e.patient_id, a.due_at",
        }
        found = {"patient": patients}
        with engine.connect() as connection:
            for table, query in queries.items():
                found[table] = list(connection.scalars(sa.text(query), {"p": patients, "now": now}))
        return found

    return ids


def patient_rows(engine: sa.Engine, patient_id: int) -> Callable[[str], dict[str, list[int]]]:
    """Everything of one patient, by id."""
    queries = {
        "patient": "SELECT id FROM patient WHERE id = :p",
        "enrollment": "SELECT id FROM enrollment WHERE patient_id = :p",
        "treatment_session": "SELECT t.id FROM treatment_session t JOIN enrollment e "
        "ON e.id = t.enrollment_id WHERE e.patient_id = :p",
        "assessment": "SELECT a.id FROM assessment a JOIN enrollment e ON e.id = a.enrollment_id "
        "WHERE e.patient_id = :p",
        "survey_response": "SELECT r.id FROM survey_response r JOIN assessment a "
        "ON a.id = r.assessment_id JOIN enrollment e ON e.id = a.enrollment_id "
        "WHERE e.patient_id = :p",
        "survey_answer": "SELECT s.id FROM survey_answer s JOIN survey_response r "
        "ON r.id = s.response_id JOIN assessment a ON a.id = r.assessment_id "
        "JOIN enrollment e ON e.id = a.enrollment_id WHERE e.patient_id = :p",
        "score": "SELECT id FROM score WHERE patient_id = :p",
        "alert": "SELECT id FROM alert WHERE patient_id = :p",
        "notification": "SELECT id FROM notification WHERE patient_id = :p",
    }

    def ids(_html: str) -> dict[str, list[int]]:
        with engine.connect() as connection:
            return {
                table: list(connection.scalars(sa.text(query), {"p": patient_id}))
                for table, query in queries.items()
            }

    return ids


def measure(
    app: Flask, client: Any, page: Page, baseline: sa.Engine, runs: int, budget: float
) -> None:
    """The page and its baseline, alternately, after a warm-up; then its statements, once.

    `runs` times, or as many as fit in `budget` seconds, but at least MIN_RUNS.
    """
    with app.app_context():
        engine = db.engine

    def once() -> str:
        if page.call is not None:  # a service, in an app context of its own as a request has
            with app.app_context():
                page.call()
                db.session.rollback()
            return ""
        response = client.get(page.path)
        if response.status_code != 200:
            raise PageError(f"{page.name} ({page.path}) answered {response.status_code}")
        return str(response.get_data(as_text=True))

    ids: dict[str, list[int]] | None = None
    began = time.perf_counter()
    for n in range(runs + 3):
        if n >= 3 + MIN_RUNS and time.perf_counter() - began > budget:
            break
        if page.reset is not None:
            page.reset()
        start = time.perf_counter()
        body = once()
        elapsed = time.perf_counter() - start
        if ids is None and page.baseline_ids is not None:
            ids = page.baseline_ids(body)
            page.baseline_rows = {table: len(found) for table, found in ids.items()}
        if n >= 3:
            page.times.append(elapsed)
        if ids is not None and any(ids.values()):
            start = time.perf_counter()
            fetch_by_ids(baseline, ids)
            if n >= 3:
                page.baseline_times.append(time.perf_counter() - start)

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        page.statements.append((statement, parameters, executemany))

    if page.reset is not None:
        page.reset()
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        once()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)


def explain_all(url: str, pages: Sequence[Page], *, analyze: bool) -> None:
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        sizes = _pg.table_sizes(connection, LARGE_TABLES)
        for page in pages:
            for statement, parameters, executemany in page.statements:
                if executemany or not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                page.plans.append(
                    _pg.explain(connection, statement, parameters, sizes, analyze=analyze)
                )


def quantile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


# The run ---------------------------------------------------------------------------------------


def heavy_patient(url: str, clinic_slug: str) -> int:
    """The patient of the clinician's clinic with the most scores."""
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        row = connection.execute(
            "SELECT s.patient_id FROM score s JOIN patient p ON p.id = s.patient_id "
            "JOIN clinic c ON c.id = p.clinic_id WHERE c.slug = %s "
            "GROUP BY s.patient_id ORDER BY count(*) DESC, s.patient_id LIMIT 1",
            (clinic_slug,),
        ).fetchone()
    if row is None:
        raise SystemExit("no scores were generated")
    return int(row[0])


def pages_to_measure(app: Flask, url: str, baseline: sa.Engine, now: dt.datetime) -> list[Page]:
    from proms.care import services as care

    patients_per_page = app.config["PATIENTS_PER_PAGE"]
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        in_clinic = connection.execute(
            "SELECT count(*) FROM patient p JOIN clinic c ON c.id = p.clinic_id WHERE c.slug = %s",
            (CLINICS[0][0],),
        ).fetchone()[0]  # type: ignore[index]
    middle = max(1, math.ceil(in_clinic / patients_per_page) // 2)
    rows = list_rows(baseline, now)
    pages = [
        Page("patient list, first page", "/patients", "list", rows),
        Page(f"patient list, page {middle}", f"/patients?page={middle}", "list", rows),
    ]
    for key in getattr(care, "FILTERS", {}):
        pages.append(Page(f"patient list, filter {key}", f"/patients?filter={key}", "list", rows))
    heavy = heavy_patient(url, CLINICS[0][0])
    pages.append(
        Page(
            "patient page (most scores)",
            f"/patients/{heavy}",
            "patient",
            patient_rows(baseline, heavy),
        )
    )
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    if "/reports/cohort" not in rules:
        return [*pages, Page("cohort report", "", "report", note="not in the app yet")]
    year = f"start={(now - dt.timedelta(days=365)).date()}&end={now.date()}"
    report = f"/reports/cohort?protocol={PROTOCOL}"
    counted = forget_snapshots(baseline)
    pages += [
        Page("cohort report, counted", report, "report", reset=counted),
        Page("cohort report, from its snapshot", report, "report"),
        Page("cohort report, a year, counted", f"{report}&{year}", "report", reset=counted),
        Page(
            "cohort report CSV, counted",
            f"/reports/cohort.csv?protocol={PROTOCOL}",
            "report",
            reset=counted,
        ),
    ]
    from proms.care import cohort
    from proms.catalog.services import deployment_registry

    def service() -> object:
        clinics = list(db.session.scalars(sa.select(Clinic.id)))
        return cohort.cohort_report(
            db.session,
            deployment_registry(db.session),
            clinic_ids=clinics,
            protocol_slug=PROTOCOL,
            now=dt.datetime.now(UTC),
        )

    pages.append(Page("cohort report, counted by the service", "", "report", call=service))
    return pages


def forget_snapshots(engine: sa.Engine) -> Callable[[], None] | None:
    """Empties the report pages' cache of computed reports (when the schema has one), so that
    a page counts its cohort afresh, as the first visit after the cache's few minutes does."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("cohort_snapshot"):
            return None

    def forget() -> None:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM cohort_snapshot"))

    return forget


def report_line(page: Page) -> str:
    if not page.times:
        return f"  {page.name:<38} {page.note}"
    ms = 1000.0
    median, p95 = statistics.median(page.times) * ms, quantile(page.times, 0.95) * ms
    queries = sum(1 for _s, _p, many in page.statements if not many)
    line = f"  {page.name:<38} {queries:>5} {len(page.times):>4} {median:>9.1f} {p95:>8.1f}"
    if page.kind == "report":
        verdict = "met" if median / ms < REPORT_TARGET_SECONDS else "MISSED"
        return f"{line} {'-':>20} {'-':>7}  under {REPORT_TARGET_SECONDS:.0f} s: {verdict}"
    if not page.baseline_times:
        return f"{line} {'(nothing shown)':>20}"
    base = statistics.median(page.baseline_times) * ms
    ratio = median / base
    target = TARGETS[page.kind]
    verdict = "met" if ratio <= target else "MISSED"
    shown = sum(page.baseline_rows.values())
    return f"{line} {base:>9.2f} ({shown:>6,}) {ratio:>6.1f}x  at most {target:.0f}x: {verdict}"


PARAMETER = re.compile(r"%\([a-z_0-9]+\)s(?:::[A-Z]+)?")
PARAMETER_LIST = re.compile(r"\?(?:, \?)+")


def shape(statement: str) -> str:
    """A statement with its parameters (and expanded IN lists) as one `?` each."""
    return PARAMETER_LIST.sub("?...", PARAMETER.sub("?", " ".join(statement.split())))


def report_plans(pages: Sequence[Page], *, everything: bool) -> None:
    """Each statement whose plan reads a large table whole, once, with the pages that ran it.

    A scan that keeps under SELECTIVE of its table is a finding (an index would serve it): its
    whole plan is printed. One that keeps most of the table (a report over the whole cohort)
    is listed with its share.
    """
    found: dict[str, tuple[_pg.Plan, list[str]]] = {}
    for page in pages:
        for plan in page.plans:
            if plan.seq_scans:
                found.setdefault(shape(plan.statement), (plan, []))[1].append(page.name)
    explained = sum(len(page.plans) for page in pages)
    if not found:
        print(f"  query plans: no sequential scan of a large table ({explained} statements)")
        return
    selective = sum(
        1 for plan, _names in found.values() if min(s.share for s in plan.seq_scans) < SELECTIVE
    )
    print(
        f"  query plans: {explained} statements; {len(found)} distinct ones read a large table "
        f"whole, {selective} of them to keep under {SELECTIVE:.0%} of it (an index would serve):"
    )
    for text, (plan, names) in sorted(
        found.items(), key=lambda item: min(s.share for s in item[1][0].seq_scans)
    ):
        print(f"  - on {', '.join(dict.fromkeys(names))}:")
        print(f"    {text[:300]}{' ...' if len(text) > 300 else ''}")
        for scan in plan.seq_scans:
            print(
                f"    Seq Scan on {scan.table} keeps ~{scan.rows:,.0f} rows ({scan.share:.1%} of "
                f"the table) {scan.filter[:240]}"
            )
        if everything or min(s.share for s in plan.seq_scans) < SELECTIVE:
            print("      " + plan.text.replace("\n", "\n      "))


def report_slowest(pages: Sequence[Page], count: int = 5) -> None:
    """Under EXPLAIN ANALYZE: each page's slowest statements, and its share of the page."""
    print("  slowest statements (EXPLAIN ANALYZE, run once more each):")
    for page in pages:
        timed = sorted(
            (p for p in page.plans if p.milliseconds is not None),
            key=lambda p: -(p.milliseconds or 0.0),
        )
        if not timed:
            continue
        total = sum(p.milliseconds or 0.0 for p in timed)
        print(f"  - {page.name}: {total:,.1f} ms in {len(timed)} statements; slowest:")
        for plan in timed[:count]:
            print(f"    {plan.milliseconds:>10,.1f} ms  {shape(plan.statement)[:200]}")


def run(
    url: str,
    args: argparse.Namespace,
    generated: dict[str, int],
    now: dt.datetime,
    seconds: float | None = None,
    written: float = 0.0,
) -> list[str]:
    """Measure every page; print the table and the plans; the errors found."""
    errors: list[str] = []
    app = create_app(app_config(url))
    baseline = sa.create_engine(url)
    pages = [
        page
        for page in pages_to_measure(app, url, baseline, now)
        if not args.only or args.only in page.name
    ]
    clinician = signed_in(app, CLINICIAN)
    admin = signed_in(app, ADMIN)  # the report across all four clinics
    for page in pages:
        if not (page.path or page.call):
            continue
        client = admin if page.kind == "report" else clinician
        try:
            measure(app, client, page, baseline, args.runs, args.budget)
        except PageError as exc:
            errors.append(str(exc))
            page.note = f"ERROR: {exc}"
    explain_all(url, [p for p in pages if p.statements], analyze=args.analyze)
    with psycopg.connect(_pg.psycopg_dsn(url)) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    made = "a database kept earlier" if seconds is None else f"scale {args.scale}"
    print(
        f"care bench: PostgreSQL {version}, {made}: "
        + ", ".join(f"{n:,} {name}" for name, n in generated.items())
    )
    if seconds is not None:
        print(f"  generated in {seconds:.1f} s, {written:.1f} s of it writing (COPY, ANALYZE)")
    load = " ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"  load average {load} on {os.cpu_count()} CPUs (other work on the machine skews both)")
    print(
        f"  {'page':<38} {'stmts':>5} {'runs':>4} {'median ms':>9} {'p95 ms':>8} "
        f"{'baseline ms (rows)':>20} {'ratio':>7}  target"
    )
    for page in pages:
        print(report_line(page))
    report_plans(pages, everything=args.plans)
    if args.analyze:
        report_slowest(pages)
    if args.plans:
        print("  every statement's plan:")
        for page in pages:
            for plan in page.plans:
                print(f"-- {page.name}\n{plan.statement}\n{plan.text}\n")
    baseline.dispose()
    with app.app_context():
        db.engine.dispose()
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 100,000 patients")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page, at most")
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds per page (at least 5 runs each)"
    )
    parser.add_argument("--url", default=SERVER, help="the PostgreSQL server (or database)")
    parser.add_argument("--schema", choices=("upgrade", "create-all"), default="upgrade")
    parser.add_argument("--keep", action="store_true", help="keep the database; print its URL")
    parser.add_argument("--reuse", metavar="URL", help="measure a database kept by --keep")
    parser.add_argument("--analyze", action="store_true", help="EXPLAIN ANALYZE the statements")
    parser.add_argument("--plans", action="store_true", help="print every statement's plan")
    parser.add_argument("--only", metavar="WORDS", help="measure only pages whose name has WORDS")
    args = parser.parse_args()
    now = dt.datetime.now(UTC)
    if args.reuse:
        catch_up(args.reuse)
        errors = run(args.reuse, args, counts(args.reuse), now)
    else:
        with _pg.scratch_database(args.url, "bench_care", keep=args.keep) as url:
            create_schema(url, args.schema)
            start = time.perf_counter()
            generated, written = generate(url, args.scale, now)
            seconds = time.perf_counter() - start
            errors = run(url, args, generated, now, seconds, written)
            if args.keep:
                print(f"  kept: --reuse '{url}'")
    if errors:
        raise SystemExit("errors: " + "; ".join(errors))


if __name__ == "__main__":
    main()
