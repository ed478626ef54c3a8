"""The patient's questionnaire: drafts, one question at a time, submission.

Services: flush, never commit (the view commits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload, selectinload

from proms.admin.models import Enrollment, Patient
from proms.auth.models import StaffUser
from proms.catalog.services import localized, snapshot, stored_definition
from proms.db import utcnow
from proms.instruments.model import InstrumentDefinition, Item
from proms.instruments.registry import Registry
from proms.outcomes.models import Alert, Score
from proms.outcomes.services import record_submission
from proms.scheduling.models import (
    OPEN_STATUSES,
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationStatus,
)
from proms.scoring.types import Answer
from proms.surveys.links import mint_token, open_assessment_of
from proms.surveys.models import ResponseStatus, SurveyAnswer, SurveyResponse

# Seconds a patient needs per question, on average, for the welcome page's estimate.
SECONDS_PER_QUESTION = 8
# The review shows a long questionnaire's answers (PASS-20) in parts of at most this many: a
# page a phone loads in about 1.5 KB, and a list short enough to look over.
REVIEW_PART_SIZE = 10


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

    @property
    def parts(self) -> tuple[Part, ...]:
        """The questions by questionnaire, at most REVIEW_PART_SIZE a part, for the review."""
        parts: list[Part] = []
        for question in self.questions:
            last = parts[-1] if parts else None
            if (
                last is None
                or last.response is not question.response
                or len(last.questions) == REVIEW_PART_SIZE
            ):
                parts.append(Part(len(parts) + 1, question.response, question.definition, []))
            parts[-1].questions.append(question)
        return tuple(parts)

    def part(self, number: int) -> Part | None:
        parts = self.parts
        return parts[number - 1] if 1 <= number <= len(parts) else None


@dataclass(frozen=True, slots=True)
class Part:
    """One questionnaire of the assessment, as the review shows it."""

    number: int
    response: SurveyResponse
    definition: InstrumentDefinition
    questions: list[Question]

    @property
    def answered(self) -> int:
        return sum(1 for question in self.questions if question.label is not None)


def definitions_to_send(registry: Registry, assessment: Assessment) -> list[InstrumentDefinition]:
    """The time point's instruments in the versions it pins, in the protocol's order."""
    timepoint = assessment.timepoint
    return [
        registry.get(code, timepoint.instrument_versions.get(code))
        for code in timepoint.instrument_codes
    ]


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


class AlreadySubmitted(SurveyError):
    """The answers were sent before this change arrived: nothing was changed."""


def save_answer(session: Session, question: Question, value: Answer, *, now: dt.datetime) -> None:
    """Store one answer (None: skipped) while its response is still a draft.

    A compare-and-set claims the draft (`UPDATE ... WHERE status = 'draft'`): it holds the row
    (PostgreSQL) or the database (SQLite, BEGIN IMMEDIATE) until the commit, so a submit
    cannot slip in between, and a change that arrives after the submit finds no draft and is
    refused with AlreadySubmitted. The answer is an upsert of its own row: a second tab saving
    another question at the same moment writes another row and loses nothing.
    """
    if value is not None and value not in question.item.values:
        raise SurveyError("Choose one of the answers shown.")
    claimed = session.execute(
        update(SurveyResponse)
        .where(
            SurveyResponse.id == question.response.id,
            SurveyResponse.status == ResponseStatus.DRAFT,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise AlreadySubmitted("These answers have already been sent.")
    insert = _upsert_for(session)
    statement = insert(SurveyAnswer).values(
        response_id=question.response.id, item_id=question.item.id, value=value, answered_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SurveyAnswer.response_id, SurveyAnswer.item_id],
            set_={"value": statement.excluded.value, "answered_at": statement.excluded.answered_at},
        )
    )


def _upsert_for(session: Session):  # type: ignore[no-untyped-def]
    """The INSERT construct with ON CONFLICT of the session's database."""
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert


@dataclass(frozen=True, slots=True)
class SubmitResult:
    already_submitted: bool
    scores: tuple[Score, ...] = ()
    alerts: tuple[Alert, ...] = ()


def submit(
    session: Session, registry: Registry, assessment: Assessment, *, now: dt.datetime
) -> SubmitResult:
    """Send the answers: complete, record the outcomes (scores, alerts), cancel reminders.

    All in the caller's transaction. The assessment is claimed first (compare-and-set), so a
    double submit (two tabs, a retry) finds it completed and changes nothing.
    """
    # Compare-and-set: only one submit can move the assessment from open to completed. It holds
    # the assessment row (PostgreSQL; SQLite holds the whole database from BEGIN IMMEDIATE), so a
    # second submit waits here, then finds it completed and changes nothing.
    claimed = session.execute(
        update(Assessment)
        .where(Assessment.id == assessment.id, Assessment.status.in_(OPEN_STATUSES))
        .values(status=AssessmentStatus.COMPLETED, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    locked = session.scalar(
        select(Assessment)
        .where(Assessment.id == assessment.id)
        .options(
            joinedload(Assessment.timepoint),
            joinedload(Assessment.enrollment).joinedload(Enrollment.patient),
        )
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    if claimed.rowcount != 1:
        if locked.status is AssessmentStatus.COMPLETED:
            return SubmitResult(already_submitted=True)
        raise SurveyError("This questionnaire can no longer be answered.")

    # Close the drafts the same way: a save that holds a draft finishes first (and is scored
    # with the rest); a save that comes after finds no draft and changes nothing.
    session.execute(
        update(SurveyResponse)
        .where(
            SurveyResponse.assessment_id == locked.id,
            SurveyResponse.status == ResponseStatus.DRAFT,
        )
        .values(status=ResponseStatus.SUBMITTED, submitted_at=now)
        .execution_options(synchronize_session=False)
    )
    # Read after the update: the answers scored are exactly the answers stored.
    responses = session.scalars(
        select(SurveyResponse)
        .where(SurveyResponse.assessment_id == locked.id)
        .options(selectinload(SurveyResponse.instrument), selectinload(SurveyResponse.answer_rows))
        .order_by(SurveyResponse.id)
        .execution_options(populate_existing=True)
    ).all()
    # A save that held a draft when this submit arrived finished first, and is scored with the
    # rest; `now` was taken before it, so the submission is stamped after its last answer.
    latest = max((row.answered_at for r in responses for row in r.answer_rows), default=now)
    if latest > now:
        now = max(utcnow(), latest)
        locked.completed_at = now
        for response in responses:
            response.submitted_at = now
    outcome = record_submission(session, registry, locked, responses)
    session.execute(
        update(Notification)
        .where(
            Notification.assessment_id == locked.id,
            Notification.status == NotificationStatus.PENDING,
        )
        .values(status=NotificationStatus.CANCELLED, cancel_reason="completed")
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return SubmitResult(False, outcome.scores, outcome.alerts)


def _responses(assessment: Assessment) -> list[SurveyResponse]:
    return list(assessment.responses)


def _definition(response: SurveyResponse) -> InstrumentDefinition:
    return stored_definition(response.instrument)
