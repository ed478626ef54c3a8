"""Patients with answered questionnaires, made through the real survey and scoring services.

`course` enrolls a patient with a course that started `days_ago` days ago; `answer` answers one
of its questionnaires the way the patient (or staff, from paper) would, on a given day of the
course, so the scores, their change from baseline and the alerts are the ones the app stores.
`counting_statements` collects the SQL a request runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event

from proms.admin.models import Enrollment, Patient, Protocol, SessionStatus, TreatmentSession
from proms.admin.services import enroll_patient
from proms.auth.models import StaffUser
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.scheduling.models import Assessment
from proms.surveys import services as survey
from proms.surveys.models import SurveyAnswer

# A middling answer for every item of each instrument: no alert rule fires on these.
MIDDLING = {
    "promis-pi-4a": 3,
    "promis-pf-4a": 3,
    "promis-sd-4a": 3,
    "pass-20": 2,
    "peg": 5,
    "infusion-side-effects": 0,
}
# The day of the course each questionnaire is answered (days since the first infusion).
ANSWER_DAY = {"baseline": -3, "end_of_course": 5, "month_1": 31, "month_3": 92, "month_6": 181}


def course(patient: Patient, protocol: Protocol, days_ago: int) -> Enrollment:
    """A course whose first infusion was `days_ago` days ago on the patient's calendar."""
    today = dt.datetime.now(ZoneInfo(patient.time_zone)).date()
    enrollment = enroll_patient(db.session, patient, protocol, today - dt.timedelta(days=days_ago))
    db.session.flush()
    return enrollment


def infusions(enrollment: Enrollment, missed: tuple[int, ...] = ()) -> None:
    """Record the five infusion days as given, but the `missed` ones."""
    for day in range(1, 6):
        on = enrollment.anchor_on + dt.timedelta(days=day - 1)
        given = day not in missed
        db.session.add(
            TreatmentSession(
                enrollment=enrollment,
                day_number=day,
                scheduled_on=on,
                status=SessionStatus.DONE if given else SessionStatus.MISSED,
                performed_at=dt.datetime.combine(on, dt.time(15), tzinfo=dt.UTC) if given else None,
                missed_reason=None if given else "No transport",
                side_effects=[],
            )
        )
    db.session.flush()


def assessment(enrollment: Enrollment, key: str) -> Assessment:
    return next(a for a in enrollment.assessments if a.timepoint.key == key)


def answer(
    enrollment: Enrollment,
    key: str,
    values: Mapping[str, int | Mapping[str, int | None]] | None = None,
    *,
    by: StaffUser | None = None,
) -> survey.SubmitResult:
    """Answer and send the `key` questionnaire of a course on its day (ANSWER_DAY).

    `values` gives per instrument code one value for every item, or a value per item id;
    instruments not named get MIDDLING answers. `by`: staff entering it from a paper form.
    """
    chosen = {**MIDDLING, **(values or {})}
    target = assessment(enrollment, key)
    day = enrollment.anchor_on + dt.timedelta(days=ANSWER_DAY[key])
    zone = ZoneInfo(enrollment.patient.time_zone)
    now = dt.datetime.combine(day, dt.time(12), tzinfo=zone).astimezone(dt.UTC)
    registry = deployment_registry(db.session)
    plan = survey.start(db.session, registry, target, now=now, env="test")
    answers: dict[int, dict[str, int | None]] = {}
    for question in plan.questions:
        given = chosen[question.definition.code]
        value = given.get(question.item.id) if isinstance(given, Mapping) else given
        assert value is None or value in question.item.values, (question.item.id, value)
        answers.setdefault(question.response.id, {})[question.item.id] = value
    # Every answer of a draft at once (the survey pages save them one by one; the stored rows
    # are the same), then the real submit: scores, change from baseline, alerts.
    for response in target.responses:
        response.answer_rows = [
            SurveyAnswer(item_id=item_id, value=value, answered_at=now)
            for item_id, value in answers.get(response.id, {}).items()
        ]
    db.session.flush()
    result = survey.submit(db.session, registry, target, now=now)
    assert not result.already_submitted
    if by is not None:
        for response in target.responses:
            response.entered_by_id = by.id
            response.entry_source = "paper"
    db.session.flush()
    return result


@contextmanager
def counting_statements() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements the app runs meanwhile, with their parameters (a listener on the
    engine, removed after)."""
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
