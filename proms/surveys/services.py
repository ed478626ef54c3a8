"""The patient's questionnaire: drafts, one question at a time, submission.

Services: flush, never commit (the view commits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proms.admin.instruments import localized, snapshot, stored_definition
from proms.admin.models import Enrollment, Patient
from proms.auth.models import StaffUser
from proms.care.models import Alert, AlertKind, Score
from proms.care.scoring import score_response
from proms.care.services import changes_from_baseline
from proms.instruments.model import InstrumentDefinition, Item
from proms.instruments.registry import Registry
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from proms.scoring.change import ChangeResult, Classification
from proms.scoring.types import Answer
from proms.surveys.links import mint_token, open_assessment_of
from proms.surveys.models import ResponseStatus, SurveyResponse

# Seconds a patient needs per question, on average, for the welcome page's estimate.
SECONDS_PER_QUESTION = 8


class SurveyError(ValueError):
    """The survey cannot do this (the message is for the patient)."""


@dataclass(frozen=True, slots=True)
class Question:
    """One screen: an item of an instrument, numbered across the whole questionnaire."""

    number: int
    response: SurveyResponse
    definition: InstrumentDefinition
    item: Item

    @property
    def is_answered(self) -> bool:
        """Answered or deliberately skipped (a stored null)."""
        return self.item.id in self.response.answers

    @property
    def value(self) -> Answer:
        value: Answer = self.response.answers.get(self.item.id)
        return value

    @property
    def label(self) -> str | None:
        """The chosen option's label, None when skipped or not reached."""
        for option in self.item.options:
            if option.value == self.value:
                return option.label
        return None


@dataclass(frozen=True, slots=True)
class SurveyPlan:
    assessment: Assessment
    questions: tuple[Question, ...]

    @property
    def total(self) -> int:
        return len(self.questions)

    def question(self, number: int) -> Question | None:
        if 1 <= number <= len(self.questions):
            return self.questions[number - 1]
        return None

    def first_unanswered(self) -> int | None:
        for question in self.questions:
            if not question.is_answered:
                return question.number
        return None

    @property
    def minutes(self) -> int:
        return max(1, round(self.total * SECONDS_PER_QUESTION / 60))


def definitions_to_send(registry: Registry, assessment: Assessment) -> list[InstrumentDefinition]:
    """The current definitions of the time point's instruments, in the protocol's order."""
    return [registry.get(code) for code in assessment.timepoint.instrument_codes]


def check_sendable(
    session: Session, registry: Registry, assessment: Assessment, env: str
) -> list[InstrumentDefinition]:
    """The definitions this patient would see, in their language; NotSendableError if refused."""
    language = assessment.enrollment.patient.language
    definitions = [
        localized(session, definition, language)
        for definition in definitions_to_send(registry, assessment)
    ]
    for definition in definitions:
        definition.check_sendable(env)
    return definitions


class NoOpenQuestionnaire(SurveyError):
    """The patient has nothing to answer today."""


def make_staff_link(
    session: Session,
    registry: Registry,
    patient: Patient,
    *,
    now: dt.datetime,
    env: str,
    max_age: dt.timedelta,
    created_by: StaffUser | None = None,
) -> tuple[Assessment, str]:
    """A new link to the patient's open questionnaire, for staff to hand over; raw token.

    Raises NoOpenQuestionnaire, or NotSendableError when production may not send it.
    """
    assessment = open_assessment_of(session, patient, now)
    if assessment is None:
        raise NoOpenQuestionnaire("This patient has no questionnaire open today.")
    check_sendable(session, registry, assessment, env)
    raw = mint_token(session, assessment, now=now, max_age=max_age, created_by=created_by)
    return assessment, raw


def planned_question_count(registry: Registry, assessment: Assessment) -> int:
    """How many questions the welcome page announces (before anything is created)."""
    responses = _responses(assessment)
    if responses:
        return sum(len(_definition(r).items) for r in responses)
    return sum(len(d.items) for d in definitions_to_send(registry, assessment))


def start(
    session: Session, registry: Registry, assessment: Assessment, *, now: dt.datetime, env: str
) -> SurveyPlan:
    """Create the drafts of every instrument (once) and mark the assessment in progress.

    Each draft points at the exact definition the patient sees, so a later wording import
    does not change what an earlier answer meant. In production, an instrument with only our
    summary wording is refused (NotSendableError) before anything is created.
    """
    # Locked and read again: a second "Start" (a double click) waits here, then finds the drafts.
    session.scalar(
        select(Assessment)
        .where(Assessment.id == assessment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    session.refresh(assessment, ["responses"])
    existing = {response.instrument.code for response in _responses(assessment)}
    for definition in check_sendable(session, registry, assessment, env):
        if definition.code in existing:
            continue
        session.add(
            SurveyResponse(
                assessment=assessment,
                instrument=snapshot(session, definition),
                answers={},
                started_at=now,
                updated_at=now,
            )
        )
    if assessment.status is AssessmentStatus.SCHEDULED:
        assessment.status = AssessmentStatus.IN_PROGRESS
        assessment.started_at = now
    session.flush()
    session.refresh(assessment, ["responses"])
    return load_plan(assessment)


def load_plan(assessment: Assessment) -> SurveyPlan:
    """The questions of an assessment whose drafts exist, in the protocol's instrument order."""
    order = {code: index for index, code in enumerate(assessment.timepoint.instrument_codes)}
    responses = sorted(
        _responses(assessment), key=lambda r: (order.get(r.instrument.code, len(order)), r.id)
    )
    questions = []
    for response in responses:
        definition = _definition(response)
        for item in definition.items:
            questions.append(Question(len(questions) + 1, response, definition, item))
    return SurveyPlan(assessment, tuple(questions))


def save_answer(session: Session, question: Question, value: Answer, *, now: dt.datetime) -> None:
    """Store one answer (None: skipped) in the draft; the row is locked against a second tab."""
    response = session.scalar(
        select(SurveyResponse)
        .where(SurveyResponse.id == question.response.id)
        .with_for_update()
        # The row is already in the session from load_plan: read it again under the lock,
        # or a second tab's answer saved in between would be overwritten.
        .execution_options(populate_existing=True)
    )
    assert response is not None
    if response.status is ResponseStatus.SUBMITTED:
        raise SurveyError("These answers have already been sent.")
    if value is not None and value not in question.item.values:
        raise SurveyError("Choose one of the answers shown.")
    # A new dict: the JSON column notices assignment, not changes inside it.
    response.answers = {**response.answers, question.item.id: value}
    response.updated_at = now
    session.flush()


@dataclass(frozen=True, slots=True)
class SubmitResult:
    already_submitted: bool
    scores: tuple[Score, ...] = ()
    alerts: tuple[Alert, ...] = ()


def submit(
    session: Session, registry: Registry, assessment: Assessment, *, now: dt.datetime
) -> SubmitResult:
    """Send the answers: score, compare with baseline, alert, complete, cancel reminders.

    All in the caller's transaction. The assessment row is locked first, so a double submit
    (two tabs, a retry) finds it completed and changes nothing.
    """
    locked = session.scalar(
        select(Assessment).where(Assessment.id == assessment.id).with_for_update()
    )
    assert locked is not None
    session.refresh(locked)
    if locked.status is AssessmentStatus.COMPLETED:
        return SubmitResult(already_submitted=True)
    if locked.status not in (AssessmentStatus.SCHEDULED, AssessmentStatus.IN_PROGRESS):
        raise SurveyError("This questionnaire can no longer be answered.")

    # The drafts too, read again under their locks: an answer saved by another tab just before
    # is scored with the rest, so the scores always match the stored answers.
    responses = list(
        session.scalars(
            select(SurveyResponse)
            .where(SurveyResponse.assessment_id == locked.id)
            .order_by(SurveyResponse.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    scores: list[Score] = []
    alerts: list[Alert] = []
    enrollment: Enrollment = locked.enrollment
    patient = enrollment.patient
    for response in responses:
        response.status = ResponseStatus.SUBMITTED
        response.submitted_at = now
        session.flush()
        scores.extend(score_response(session, registry, response))
        definition = _definition(response)
        severe = definition.alert_items(response.answers)
        if severe:
            alerts.append(
                Alert(
                    patient_id=patient.id,
                    clinic_id=patient.clinic_id,
                    assessment_id=locked.id,
                    kind=AlertKind.SIDE_EFFECT,
                    detail={"instrument": definition.code, "items": list(severe)},
                )
            )
    for change in changes_from_baseline(session, registry, enrollment):
        if change.score.assessment_id == locked.id and is_worsening(change.change):
            alerts.append(
                Alert(
                    patient_id=patient.id,
                    clinic_id=patient.clinic_id,
                    assessment_id=locked.id,
                    score_id=change.score.id,
                    kind=AlertKind.WORSENING,
                    detail=_worsening_detail(change.change),
                )
            )
    session.add_all(alerts)
    locked.status = AssessmentStatus.COMPLETED
    locked.completed_at = now
    session.execute(
        update(Notification)
        .where(
            Notification.assessment_id == locked.id,
            Notification.status == NotificationStatus.PENDING,
        )
        .values(status=NotificationStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return SubmitResult(False, tuple(scores), tuple(alerts))


def is_worsening(change: ChangeResult) -> bool:
    """A meaningful worsening for one patient.

    The individual criterion (threshold and reliable change) where the scores have standard
    errors; the instrument's threshold alone where they cannot have one (summed scores).
    """
    if change.by_individual is Classification.WORSENED:
        return True
    return (
        change.by_individual is Classification.NOT_COMPARABLE
        and change.reliable_change_index is None
        and change.baseline is not None
        and change.by_threshold is Classification.WORSENED
    )


def _worsening_detail(change: ChangeResult) -> dict[str, object]:
    assert change.baseline is not None
    return {
        "instrument": change.current.instrument_code,
        "scale": change.current.scale,
        "baseline": change.baseline.value,
        "current": change.current.value,
        "improvement": change.improvement,
        "reliable_change_index": change.reliable_change_index,
        "threshold": change.threshold.value,
        "threshold_unit": change.threshold.unit,
        "threshold_source": change.threshold.source,
    }


def _responses(assessment: Assessment) -> list[SurveyResponse]:
    return list(assessment.responses)


def _definition(response: SurveyResponse) -> InstrumentDefinition:
    return stored_definition(response.instrument)
