"""Paper answers: staff type in a questionnaire answered on paper or on the phone.

The answers go through the patient side's own services (start, save, submit), so they are
stored, scored, compared with baseline and raise alerts exactly like a patient's; the responses
then record who entered them and from what. Flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.orm import object_session

from proms.admin.errors import AdminError
from proms.auth.models import StaffUser
from proms.catalog.services import deployment_registry
from proms.scheduling.models import Assessment
from proms.surveys import services as survey
from proms.surveys.models import SurveyResponse

SOURCES = {"paper": "Paper form", "phone": "Read out on the phone"}

# Staff transcribe the clinic's own (licensed) paper form; the screen shows proms' summaries only
# as labels, so the "send only official wording" rule of production does not apply.
TRANSCRIPTION = "transcription"


def questions(assessment: Assessment, now: dt.datetime) -> survey.SurveyPlan:
    """The questions of an open assessment, drafts created if the patient had not started."""
    session = object_session(assessment)
    assert session is not None
    if not assessment.is_open(now):
        raise AdminError("This questionnaire is not open: answers can be entered while it is.")
    registry = deployment_registry(session)
    return survey.start(session, registry, assessment, now=now, env=TRANSCRIPTION)


def enter_answers(
    assessment: Assessment,
    answers: Mapping[str, int | None],
    *,
    source: str,
    now: dt.datetime,
    by: StaffUser,
) -> survey.SubmitResult:
    """Save every answer (key "<response id>:<item id>"; None: not answered) and submit."""
    if source not in SOURCES:
        raise AdminError("Choose where the answers come from.")
    session = object_session(assessment)
    assert session is not None
    plan = questions(assessment, now)
    for question in plan.questions:
        key = f"{question.response.id}:{question.item.id}"
        if key not in answers:
            raise AdminError(f"Question {question.number} is missing from the form.")
        try:
            survey.save_answer(session, question, answers[key], now=now)
        except survey.SurveyError as exc:
            raise AdminError(f"Question {question.number}: {exc}") from exc
    result = survey.submit(session, deployment_registry(session), assessment, now=now)
    if result.already_submitted:
        raise AdminError("These answers were sent already; nothing was changed.")
    for response in assessment.responses:
        mark(response, source, by)
    session.flush()
    return result


def mark(response: SurveyResponse, source: str, by: StaffUser) -> None:
    response.entered_by_id = by.id
    response.entry_source = source
