"""A small world with submitted answers for the export tests (tests/care/test_exports*.py).

Clinic A: Zelda Quixote answers the baseline (worst answers, one PASS-20 item skipped) and the
end of course (best answers) herself; a patient whose name and MRN are spreadsheet formulas has
a baseline typed in by staff from paper; a third patient has a course and no answers yet.
Clinic B: one patient with a baseline. Every answer goes through the real start, save and
submit services (or the paper form's), so it is stored, scored and compared as in production.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from proms.admin import paper
from proms.admin.models import Enrollment, Patient
from proms.admin.services import enroll_patient
from proms.auth.models import Role
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.instruments.model import InstrumentDefinition, Item
from proms.scoring.types import Direction
from proms.surveys import services as survey
from tests.helpers import World, add_patient

ANCHOR_ON = dt.date(2026, 3, 2)
ENROLLED_AT = dt.datetime(2026, 2, 16, 12, 0, tzinfo=dt.UTC)
BASELINE_AT = dt.datetime(2026, 2, 25, 15, 0, tzinfo=dt.UTC)
END_OF_COURSE_AT = dt.datetime(2026, 3, 8, 15, 0, tzinfo=dt.UTC)

ZELDA = {
    "mrn": "MRN-4471",
    "given_name": "Zelda",
    "family_name": "Quixote",
    "birth_on": dt.date(1948, 11, 9),
    "email": "zelda.quixote@example.org",
    "phone": "+12165550199",
}
# Cells a spreadsheet would run: the name and MRN of the second patient.
FORMULAS = {
    "mrn": '=HYPERLINK("https://evil.example/","open")',
    "given_name": "@SUM(A1:A9)",
    "family_name": "+1",
    "email": "formula@example.org",
}
DDE_MRN = "-2+3+cmd|' /C calc'!A0"
SKIPPED_ITEM = ("pass-20", "PASS5")


@dataclass
class ExportWorld:
    world: World
    zelda: Patient
    formula: Patient
    waiting: Patient
    other: Patient  # clinic B
    zelda_course: Enrollment


def worst(definition: InstrumentDefinition, item: Item) -> int:
    values = item.values
    return max(values) if definition.direction is Direction.HIGHER_IS_WORSE else min(values)


def best(definition: InstrumentDefinition, item: Item) -> int:
    values = item.values
    return min(values) if definition.direction is Direction.HIGHER_IS_WORSE else max(values)


def answer_online(enrollment: Enrollment, index: int, now: dt.datetime, pick, skip=None) -> None:  # type: ignore[no-untyped-def]
    """The patient answers time point `index` of the course through the survey services."""
    registry = deployment_registry(db.session)
    assessment = enrollment.assessments[index]
    plan = survey.start(db.session, registry, assessment, now=now, env="test")
    for question in plan.questions:
        key = (question.definition.code, question.item.id)
        value = None if key == skip else pick(question.definition, question.item)
        survey.save_answer(db.session, question, value, now=now)
    result = survey.submit(db.session, registry, assessment, now=now)
    assert not result.already_submitted
    db.session.commit()


def answer_on_paper(enrollment: Enrollment, index: int, now: dt.datetime, world: World) -> None:
    """Staff type in the time point from a paper form (worst answers)."""
    assessment = enrollment.assessments[index]
    questions = paper.questions(assessment, now)
    answers = {q.number: worst(q.definition, q.item) for q in questions}
    paper.enter_answers(
        assessment, answers, source="paper", now=now, by=world.user("a", Role.COORDINATOR)
    )
    db.session.commit()


def build(world: World) -> ExportWorld:
    zelda = add_patient(world.clinic_a, **ZELDA)
    formula = add_patient(world.clinic_a, **FORMULAS)
    waiting = add_patient(world.clinic_a, DDE_MRN)
    other = world.patients_b[0]
    courses = {
        patient.id: enroll_patient(db.session, patient, protocol, ANCHOR_ON, now=ENROLLED_AT)
        for patient, protocol in (
            (zelda, world.protocol_a),
            (formula, world.protocol_a),
            (waiting, world.protocol_a),
            (other, world.protocol_b),
        )
    }
    db.session.commit()
    answer_online(courses[zelda.id], 0, BASELINE_AT, worst, skip=SKIPPED_ITEM)
    answer_online(courses[zelda.id], 1, END_OF_COURSE_AT, best)
    answer_on_paper(courses[formula.id], 0, BASELINE_AT, world)
    answer_online(courses[other.id], 0, BASELINE_AT, worst)
    return ExportWorld(world, zelda, formula, waiting, other, courses[zelda.id])
