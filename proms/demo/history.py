"""What happened to the demo's courses up to now: messages sent, answers submitted and scored,
alerts raised and dealt with, courses withdrawn, windows closed."""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.orm import joinedload, selectinload

from proms.admin.models import Channel, Enrollment, Patient
from proms.admin.services import withdraw_enrollment
from proms.auth.models import Role, StaffUser
from proms.care import alerts as alerts_service
from proms.catalog.models import Instrument
from proms.catalog.services import deployment_registry, localized, snapshot
from proms.demo.cohort import (
    ABANDONED_SHARE,
    ALERT_HANDLED_AFTER,
    ALERT_HANDLING,
    ALERT_NOTES,
    BASELINE_RESPONSE_RATE,
    OPENED_ONLY_SHARE,
    PROMPTED_BY,
    RESOLUTION_NOTES,
    RESPONSE_RATES,
    SMS_DELIVERY,
    Course,
    by_offset,
    draw_answers,
    logistic,
    logit,
)
from proms.demo.context import DemoContext, staff_by_clinic
from proms.instruments.registry import Registry
from proms.outcomes.models import Alert
from proms.outcomes.services import record_submission
from proms.scheduling.links import hash_token
from proms.scheduling.models import Assessment, AssessmentStatus, Notification, NotificationStatus
from proms.scheduling.services import complete_finished_enrollments, expire_closed_assessments
from proms.surveys.models import AccessToken, ResponseStatus, SurveyAnswer, SurveyResponse


@dataclass
class _Plan:
    """What happened to one assessment window up to now."""

    assessment: Assessment
    course: Course
    first: bool  # the course's baseline
    answered_at: dt.datetime | None = None
    entry_source: str | None = None  # "paper" or "phone" when staff entered the answers
    abandoned: bool = False  # began, did not finish
    sent: list[Notification] = field(default_factory=list)
    opened: dict[int, dt.datetime] = field(default_factory=dict)  # notification id -> when


def load_answers(ctx: DemoContext) -> None:
    """Every window of the new courses up to now: messages sent, answers submitted, scored.

    The submission is the survey's (`proms.surveys.services.submit`) in bulk: the assessment
    completed, its responses submitted and its remaining reminders cancelled at the moment
    the patient sent it; then each assessment's outcomes are recorded in time order by the
    same `record_submission` as a patient's submit, so every follow-up is compared with its
    baseline and raises the alerts it would have.
    """
    if not ctx.courses:
        return
    session = ctx.session
    registry = deployment_registry(session)
    by_enrollment = {course.enrollment.id: course for course in ctx.courses}
    firsts = {course.enrollment.protocol.timepoints[0].id for course in ctx.courses}
    assessments = session.scalars(
        select(Assessment)
        .where(Assessment.enrollment_id.in_(list(by_enrollment)))
        .options(
            joinedload(Assessment.timepoint),
            joinedload(Assessment.enrollment).joinedload(Enrollment.patient),
        )
        .order_by(Assessment.enrollment_id, Assessment.due_at)
    ).all()
    messages: dict[int, list[Notification]] = defaultdict(list)
    for row in session.scalars(
        select(Notification)
        .where(
            Notification.assessment_id.in_(
                select(Assessment.id).where(Assessment.enrollment_id.in_(list(by_enrollment)))
            ),
            Notification.status == NotificationStatus.PENDING,
        )
        .order_by(Notification.send_after, Notification.id)
    ):
        assert row.assessment_id is not None
        messages[row.assessment_id].append(row)
    plans = [
        _plan(ctx, by_enrollment[a.enrollment_id], a, a.timepoint_id in firsts, messages[a.id])
        for a in assessments
        if a.status is AssessmentStatus.SCHEDULED
    ]
    _record_messages(ctx, plans)
    answered = sorted(
        (p for p in plans if p.answered_at is not None),
        key=lambda p: (p.answered_at, p.assessment.id),
    )
    _store_answers(ctx, registry, plans)
    _submit(ctx, registry, answered)
    ctx.report.count("answered questionnaires", len(answered))
    _date_alerts(ctx, [p.assessment.id for p in answered])


def _plan(
    ctx: DemoContext,
    course: Course,
    assessment: Assessment,
    first: bool,
    messages: list[Notification],
) -> _Plan:
    """Whether and when the patient answered this window, and which messages went."""
    rng = course.rng
    plan = _Plan(assessment, course, first)
    cutoff = min(ctx.now, assessment.closes_at, course.withdrawn_at or ctx.now)
    if assessment.opens_at >= cutoff:
        return plan  # not open yet (or after the course was withdrawn)
    offset = assessment.timepoint.offset_days
    rate = BASELINE_RESPONSE_RATE if first else by_offset(RESPONSE_RATES, offset)
    answers = rng.random() < logistic(logit(rate) + course.engagement)
    channels = [m for m in messages if m.channel is not Channel.NONE]
    if answers:
        if channels:
            choice = rng.choices(range(3), weights=PROMPTED_BY)[0]
            prompt = channels[min(choice, len(channels) - 1)]
            # Most answer within hours of the message; some a day or two later.
            delay = dt.timedelta(minutes=rng.randint(5, 360))
            if rng.random() < 0.15:
                delay += dt.timedelta(days=rng.randint(1, 2))
            at = prompt.send_after + delay
            if at < cutoff:
                plan.answered_at = at
                plan.opened[prompt.id] = at - dt.timedelta(minutes=rng.randint(3, 12))
        else:
            # No messages (reached by phone, or no contact): staff enter the answers given on
            # paper at the clinic or read out on the phone.
            span = (assessment.closes_at - assessment.opens_at).total_seconds()
            at = assessment.opens_at + dt.timedelta(seconds=span * rng.uniform(0.3, 0.9))
            if at < cutoff:
                plan.answered_at = at
                plan.entry_source = "paper" if first or offset <= 4 else "phone"
    until = plan.answered_at or cutoff
    plan.sent = [m for m in channels if m.send_after < until]
    if plan.answered_at is None and plan.sent:
        draw = rng.random()
        last = plan.sent[-1]
        seen = last.send_after + dt.timedelta(minutes=rng.randint(10, 600))
        if draw < ABANDONED_SHARE and seen < cutoff:
            plan.abandoned = True
            plan.opened[last.id] = seen
        elif draw < ABANDONED_SHARE + OPENED_ONLY_SHARE and seen < cutoff:
            plan.opened[last.id] = seen
    return plan


def _record_messages(ctx: DemoContext, plans: Sequence[_Plan]) -> None:
    """The messages that went as the scheduler records them (none is actually sent): handed
    over and sent at their time, SMS with the provider's delivery report, each with the link
    the scheduler minted (stored as a hash of a random token nobody holds), opened or not."""
    rows: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    max_age = dt.timedelta(days=int(current_app.config["SURVEY_LINK_MAX_AGE_DAYS"]))
    for plan in plans:
        rng = plan.course.rng
        for message in plan.sent:
            at = message.send_after
            delivery, delivered_at, error = None, None, None
            if message.channel is Channel.SMS:
                delivery = rng.choices(
                    [s for s, _ in SMS_DELIVERY], weights=[w for _, w in SMS_DELIVERY]
                )[0]
                if delivery == "delivered":
                    delivered_at = at + dt.timedelta(seconds=rng.randint(3, 90))
                elif delivery == "undelivered":
                    error = "provider reported undelivered (error 30003)"
            rows.append(
                {
                    "id": message.id,
                    "status": NotificationStatus.SENT,
                    "attempts": 1,
                    "claimed_at": at,
                    "claimed_by": "demo",
                    "handed_over_at": at,
                    "sent_at": at,
                    "provider_message_id": f"demo-{message.id}",
                    "delivery_status": delivery,
                    "delivered_at": delivered_at,
                    "last_error": error,
                }
            )
            links.append(
                {
                    "token_hash": hash_token(secrets.token_urlsafe(32)),
                    "assessment_id": plan.assessment.id,
                    "notification_id": message.id,
                    "created_at": at,
                    "expires_at": min(at + max_age, plan.assessment.closes_at),
                    "last_used_at": plan.opened.get(message.id),
                }
            )
    if rows:
        ctx.session.execute(update(Notification), rows)
        ctx.session.execute(insert(AccessToken.__table__), links)
    ctx.report.count("messages sent", len(rows))


def _store_answers(ctx: DemoContext, registry: Registry, plans: Sequence[_Plan]) -> None:
    """The answers as the survey saves them: a response per questionnaire in the patient's
    language, a row per item; a draft where the patient began and stopped."""
    session = ctx.session
    staff = staff_by_clinic(session, Role.COORDINATOR)
    instruments: dict[tuple[str, str, str], Instrument] = {}
    responses: list[dict[str, object]] = []
    answer_sets: list[tuple[tuple[int, int], tuple[dict[str, int | None], dt.datetime]]] = []
    started: list[dict[str, object]] = []
    for plan in plans:
        if plan.answered_at is None and not plan.abandoned:
            continue
        course = plan.course
        patient = course.patient
        end = plan.answered_at or max(plan.opened.values())
        definitions = [
            registry.get(code, plan.assessment.timepoint.instrument_versions.get(code))
            for code in plan.assessment.timepoint.instrument_codes
        ]
        questions = sum(len(d.items) for d in definitions)
        begun = end - dt.timedelta(seconds=8 * questions + course.rng.randint(30, 240))
        started.append(
            {"id": plan.assessment.id, "status": AssessmentStatus.IN_PROGRESS, "started_at": begun}
        )
        stop = len(definitions) if plan.answered_at else course.rng.randint(1, len(definitions))
        for definition in definitions[:stop]:
            key = (definition.code, definition.version, patient.language)
            if key not in instruments:
                instruments[key] = snapshot(
                    session, localized(session, definition, patient.language)
                )
            answers = draw_answers(
                course, definition, plan.assessment.timepoint.offset_days, first=plan.first
            )
            if plan.answered_at is None and definition is definitions[stop - 1]:
                answers = dict(list(answers.items())[: course.rng.randint(1, len(answers))])
            responses.append(
                {
                    "assessment_id": plan.assessment.id,
                    "instrument_id": instruments[key].id,
                    "status": ResponseStatus.DRAFT,
                    "started_at": begun,
                    "updated_at": end,
                    "entered_by_id": staff.get(patient.clinic_id) if plan.entry_source else None,
                    "entry_source": plan.entry_source,
                }
            )
            answer_sets.append(((plan.assessment.id, instruments[key].id), (answers, end)))
    if not responses:
        return
    session.execute(update(Assessment), started)
    # Plain executemany inserts (RETURNING ids would cost a statement a row on SQLite); the
    # new responses are found again by their natural key.
    session.execute(insert(SurveyResponse.__table__), responses)
    ids = {
        (assessment_id, instrument_id): response_id
        for assessment_id, instrument_id, response_id in session.execute(
            select(
                SurveyResponse.assessment_id, SurveyResponse.instrument_id, SurveyResponse.id
            ).where(SurveyResponse.assessment_id.in_([row["id"] for row in started]))
        )
    }
    session.execute(
        insert(SurveyAnswer.__table__),
        [
            {"response_id": ids[key], "item_id": item, "value": value, "answered_at": at}
            for key, (answers, at) in answer_sets
            for item, value in answers.items()
        ],
    )


def _submit(ctx: DemoContext, registry: Registry, answered: Sequence[_Plan]) -> None:
    """What the survey's submit does, for every answered window: the assessment completed,
    its responses submitted, the reminders still to go cancelled; then its outcomes recorded
    by `record_submission`, in the order the patients sent them."""
    session = ctx.session
    if not answered:
        return
    ids = [plan.assessment.id for plan in answered]
    session.execute(
        update(Assessment),
        [
            {
                "id": p.assessment.id,
                "status": AssessmentStatus.COMPLETED,
                "completed_at": p.answered_at,
            }
            for p in answered
        ],
    )
    completed = (
        select(Assessment.completed_at)
        .where(Assessment.id == SurveyResponse.assessment_id)
        .scalar_subquery()
    )
    session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.assessment_id.in_(ids))
        .values(status=ResponseStatus.SUBMITTED, submitted_at=completed, updated_at=completed)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Notification)
        .where(
            Notification.assessment_id.in_(ids),
            Notification.status == NotificationStatus.PENDING,
        )
        .values(status=NotificationStatus.CANCELLED, cancel_reason="completed")
        .execution_options(synchronize_session=False)
    )
    responses: dict[int, list[SurveyResponse]] = defaultdict(list)
    for response in session.scalars(
        select(SurveyResponse)
        .where(SurveyResponse.assessment_id.in_(ids))
        .options(selectinload(SurveyResponse.instrument), selectinload(SurveyResponse.answer_rows))
        .order_by(SurveyResponse.id)
    ):
        responses[response.assessment_id].append(response)
    for plan in answered:
        record_submission(session, registry, plan.assessment, responses[plan.assessment.id])


def _date_alerts(ctx: DemoContext, assessment_ids: Sequence[int]) -> None:
    """Date the alerts when their answers were submitted, not when the demo ran; those older
    than a few weeks were dealt with by the care team (most resolved, with a note)."""
    session = ctx.session
    if not assessment_ids:
        return
    completed = (
        select(Assessment.completed_at)
        .where(Assessment.id == Alert.assessment_id)
        .scalar_subquery()
    )
    session.execute(
        update(Alert)
        .where(Alert.assessment_id.in_(assessment_ids))
        .values(created_at=completed)
        .execution_options(synchronize_session=False)
    )
    clinicians = {
        clinic_id: session.get(StaffUser, user_id)
        for clinic_id, user_id in staff_by_clinic(session, Role.CLINICIAN).items()
    }
    rng = random.Random(f"{ctx.seed}:alerts")  # noqa: S311 - synthetic data
    alerts = session.scalars(
        select(Alert)
        .join(Patient, Alert.patient_id == Patient.id)
        .where(Alert.assessment_id.in_(assessment_ids))
        .order_by(Patient.clinic_id, Patient.mrn, Alert.created_at, Alert.rule)
        .execution_options(populate_existing=True)
    ).all()
    for alert in alerts:
        draw = rng.random()
        clinician = clinicians.get(alert.clinic_id)
        if alert.created_at > ctx.now - ALERT_HANDLED_AFTER or clinician is None:
            continue
        if draw >= sum(ALERT_HANDLING):
            continue  # one that slipped through
        # The inbox's own actions, at the time the clinician took them.
        seen = alert.created_at + dt.timedelta(hours=rng.randint(1, 48))
        alerts_service.acknowledge(session, alert, clinician, rng.choice(ALERT_NOTES), now=seen)
        if draw < ALERT_HANDLING[0]:
            done = seen + dt.timedelta(days=rng.randint(0, 10), hours=rng.randint(1, 8))
            alerts_service.resolve(
                session, alert, clinician, rng.choice(RESOLUTION_NOTES), now=done
            )


def load_withdrawals(ctx: DemoContext) -> None:
    """Courses the patient stopped part-way: withdrawn on the day, as a coordinator would."""
    if not ctx.courses:
        return
    ctx.session.expire_all()  # what the bulk statements wrote, read again
    for course in ctx.courses:
        if course.withdrawn_at is None or course.withdrawn_at >= ctx.now:
            continue
        withdraw_enrollment(
            ctx.session,
            course.enrollment,
            now=course.withdrawn_at,
            reason="Demo: the patient asked to stop follow-up.",
        )


def close_windows(ctx: DemoContext) -> None:
    """What the scheduler's sweeps would have done by now: missed windows expired, courses
    whose windows are all over completed."""
    if not ctx.courses:
        return
    expire_closed_assessments(ctx.session, ctx.now)
    complete_finished_enrollments(ctx.session)
