"""Paper answers: staff type in a questionnaire answered on paper or on the phone.

The answers go through the patient side's own services (start, save, submit), so they are
stored, scored, compared with baseline and raise alerts exactly like a patient's; the responses
then record who entered them and from what. Opening the form writes nothing (the assessment
stays "not started"); only a complete, valid form does. Flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import object_session

from proms.admin.errors import AdminError
from proms.auth.models import StaffUser
from proms.catalog.services import deployment_registry
from proms.instruments.model import InstrumentDefinition, Item
from proms.scheduling.models import Assessment
from proms.surveys import services as survey

SOURCES = {"paper": "Paper form", "phone": "Read out on the phone"}

# Staff transcribe the clinic's own (licensed) paper form; the screen shows proms' summaries only
# as labels, so the "send only official wording" rule of production does not apply.
TRANSCRIPTION = "transcription"


@dataclass(frozen=True, slots=True)
class PaperQuestion:
    """One question of the paper form, numbered as the patient's survey numbers it."""

    number: int
    definition: InstrumentDefinition
    item: Item
    value: int | None = None  # a draft's answer, if the patient had begun online
    is_answered: bool = False


def questions(assessment: Assessment, now: dt.datetime) -> list[PaperQuestion]:
    """The questions of an open assessment, without creating anything.

    If the patient had begun online, their saved answers fill the form; otherwise the
    questions are those the patient would get, in the protocol's order.
    """
    session = object_session(assessment)
    assert session is not None
    if not assessment.is_open(now):
        raise AdminError("This questionnaire is not open: answers can be entered while it is.")
    if assessment.responses:
        plan = survey.load_plan(assessment)
        return [
            PaperQuestion(q.number, q.definition, q.item, q.value, q.is_answered)
            for q in plan.questions
        ]
    registry = deployment_registry(session)
    found: list[PaperQuestion] = []
    for definition in survey.check_sendable(session, registry, assessment, TRANSCRIPTION):
        for item in definition.items:
            found.append(PaperQuestion(len(found) + 1, definition, item))
    return found


def enter_answers(
    assessment: Assessment,
    answers: Mapping[int, int | None],
    *,
    source: str,
    now: dt.datetime,
    by: StaffUser,
) -> survey.SubmitResult:
    """Save every answer (by question number; None: not answered) and submit."""
    if source not in SOURCES:
        raise AdminError("Choose where the answers come from.")
    session = object_session(assessment)
    assert session is not None
    if not assessment.is_open(now):
        raise AdminError("This questionnaire is not open: answers can be entered while it is.")
    plan = survey.start(
        session, deployment_registry(session), assessment, now=now, env=TRANSCRIPTION
    )
    if set(answers) != {q.number for q in plan.questions}:
        raise AdminError("The questions changed while the form was open: enter them again.")
    for question in plan.questions:
        try:
            survey.save_answer(session, question, answers[question.number], now=now)
        except survey.SurveyError as exc:
            raise AdminError(f"Question {question.number}: {exc}") from exc
    result = survey.submit(session, deployment_registry(session), assessment, now=now)
    if result.already_submitted:
        raise AdminError("These answers were sent already; nothing was changed.")
    for response in assessment.responses:
        response.entered_by_id = by.id
        response.entry_source = source
    session.flush()
    return result
