"""Patient links: random tokens stored only as hashes, and what a link can do right now.

Services: flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Channel, Clinic, Enrollment, EnrollmentStatus, Patient
from proms.scheduling.links import (  # noqa: F401 - the link API of the patient side
    TOKEN_BYTES,
    hash_token,
    link_max_age,
    link_url,
    mint_token,
    token_hint,
)
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
)
from proms.surveys.models import AccessToken, SurveyResponse


class LinkState(enum.StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such token (404)
    EXPIRED = "expired"  # this link is too old or the window has closed (410)
    COMPLETED = "completed"  # already answered (200)
    WITHDRAWN = "withdrawn"  # follow-up stopped (410)
    NOT_YET_OPEN = "not_yet_open"  # come back later (200)


STATUS_CODES = {
    LinkState.OK: 200,
    LinkState.UNKNOWN: 404,
    LinkState.EXPIRED: 410,
    LinkState.COMPLETED: 200,
    LinkState.WITHDRAWN: 410,
    LinkState.NOT_YET_OPEN: 200,
}


@dataclass(frozen=True, slots=True)
class LinkCheck:
    state: LinkState
    token: AccessToken | None = None
    assessment: Assessment | None = None
    clinic: Clinic | None = None
    # An expired link while the questionnaire is still open...
    window_open: bool = False
    # ...and a contact on file: offer to send a fresh one.
    can_request_new_link: bool = False

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.state]


def _with_survey() -> Select[tuple[AccessToken]]:
    """A token with everything a survey page reads, in a few statements instead of a dozen."""
    assessment = joinedload(AccessToken.assessment)
    enrollment = assessment.joinedload(Assessment.enrollment)
    return select(AccessToken).options(
        enrollment.joinedload(Enrollment.patient).joinedload(Patient.clinic),
        enrollment.joinedload(Enrollment.protocol),
        assessment.joinedload(Assessment.timepoint),
        assessment.selectinload(Assessment.responses).joinedload(SurveyResponse.instrument),
    )


def find_token(session: Session, raw: str) -> AccessToken | None:
    if not raw or len(raw) > 100:  # ours are 43 characters; anything longer is not one of them
        return None
    return session.scalar(_with_survey().where(AccessToken.token_hash == hash_token(raw)))


def get_token(session: Session, token_id: int) -> AccessToken | None:
    return session.scalar(_with_survey().where(AccessToken.id == token_id))


def check_token(token: AccessToken | None, now: dt.datetime) -> LinkCheck:
    """What a link can do at `now`, most decisive reason first."""
    if token is None:
        return LinkCheck(LinkState.UNKNOWN)
    assessment = token.assessment
    enrollment = assessment.enrollment
    clinic = enrollment.patient.clinic
    found = {"token": token, "assessment": assessment, "clinic": clinic}
    if assessment.status is AssessmentStatus.COMPLETED:
        return LinkCheck(LinkState.COMPLETED, **found)
    if (
        enrollment.status is EnrollmentStatus.WITHDRAWN
        or assessment.status is AssessmentStatus.CANCELLED
        or enrollment.patient.opted_out_at is not None
    ):
        return LinkCheck(LinkState.WITHDRAWN, **found)
    if assessment.status is AssessmentStatus.EXPIRED or now >= assessment.closes_at:
        return LinkCheck(LinkState.EXPIRED, **found)
    if now < assessment.opens_at:
        return LinkCheck(LinkState.NOT_YET_OPEN, **found)
    if token.revoked_at is not None or now >= token.expires_at:
        can_resend = enrollment.patient.preferred_channel is not Channel.NONE and bool(
            enrollment.patient.email or enrollment.patient.phone
        )
        return LinkCheck(
            LinkState.EXPIRED, window_open=True, can_request_new_link=can_resend, **found
        )
    return LinkCheck(LinkState.OK, **found)


NEW_LINK_INTERVAL = dt.timedelta(hours=1)


def request_new_link(session: Session, token: AccessToken, *, now: dt.datetime) -> bool:
    """Queue a fresh link to the contact on file (the outbox sends it); at most one an hour.

    Returns False when one was already queued in the last hour (the patient is told the same,
    so the answer says nothing about the contact details on file).
    """
    patient: Patient = token.assessment.enrollment.patient
    # Requests for the same questionnaire take turns (the row lock on PostgreSQL; SQLite's
    # transactions already hold the write lock), so the second finds the first's message.
    session.scalar(
        select(Assessment.id).where(Assessment.id == token.assessment_id).with_for_update()
    )
    recent = session.scalar(
        select(Notification.id).where(
            Notification.assessment_id == token.assessment_id,
            Notification.kind == NotificationKind.NEW_LINK,
            Notification.created_at > now - NEW_LINK_INTERVAL,
        )
    )
    if recent is not None:
        return False
    channel = patient.preferred_channel
    if channel is Channel.NONE:
        channel = Channel.EMAIL if patient.email else Channel.SMS
    try:
        # Belt and braces: the hourly key refuses a duplicate that got past the lock.
        with session.begin_nested():
            session.add(
                Notification(
                    idempotency_key=f"assessment:{token.assessment_id}:new_link:{now:%Y-%m-%dT%H}",
                    patient_id=patient.id,
                    assessment_id=token.assessment_id,
                    kind=NotificationKind.NEW_LINK,
                    channel=channel,
                    send_after=now,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def open_assessment_of(session: Session, patient: Patient, now: dt.datetime) -> Assessment | None:
    """The patient's assessment that can be answered now (the one due soonest)."""
    for enrollment in patient.enrollments:
        if enrollment.status is not EnrollmentStatus.ACTIVE:
            continue
        for assessment in enrollment.assessments:
            if assessment.is_open(now):
                return assessment
    return None
