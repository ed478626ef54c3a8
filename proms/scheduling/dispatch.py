"""The dispatcher: due outbox rows out through their channels, each at most once.

One batch at a time, in two transactions around the sending:
1. Claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so schedulers never share a row;
   SQLite's transactions run one writer at a time, proms.db). Check each is still wanted (the
   questionnaire open and not answered, the course active, the patient not opted out, the
   contact on file, not superseded by a later reminder) and may go now (quiet hours, the
   patient's cap); mint its link; mark it handed over. Commit.
2. Send each message. Then record every outcome at once: sent with the provider's id; refused,
   to be tried again later with backoff (or failed, after the last try); uncertain, `unknown`.

A row handed over whose outcome was never recorded (the process was killed) may have gone: the
next sweep marks it `unknown` once its claim has lapsed, and nothing resends it. A claimed row
never handed over goes back to pending. docs/messages.md tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Channel, EnrollmentStatus, Patient
from proms.checks import public_base_url
from proms.db import trouble_status
from proms.notify.base import OutgoingMessage, Rejected, Sender, Uncertain
from proms.notify.channels import transport_of
from proms.notify.texts import MessageContext, render
from proms.scheduling.links import TOKEN_BYTES, hash_token
from proms.scheduling.models import (
    OPEN_STATUSES,
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.scheduling.planning import ATTEMPTED, PLANNED_KINDS, SUPERSEDED, quiet_hours_of
from proms.scheduling.rules import Pace, Skip, earliest_send
from proms.surveys.models import AccessToken
from proms.templating import phone

log = logging.getLogger("proms.scheduler")

# A patient's own request for a new link goes at once, quiet hours and cap aside, if it is this
# fresh: they are waiting for it. An older one (the scheduler was down) waits like the rest.
REQUEST_FRESH = dt.timedelta(hours=1)

SENT = NotificationStatus.SENT

# Outcomes are committed at the end of each batch, and at least this often during one: a slow
# channel (a few messages a second) leaves few messages "unknown" if the process is killed.
RECORD_EVERY_SECONDS = 1.0

# Reasons the dispatcher gives for not sending, beside the planning ones (rules.Skip).
COMPLETED = "completed"
WITHDRAWN = "withdrawn"
PATIENT_CAP = "patient_cap"  # the patient's daily cap or gap lasts until the window closes


@dataclass(frozen=True, slots=True)
class Settings:
    """What the dispatcher needs from the configuration."""

    worker: str
    base_url: str
    batch_size: int
    lease: dt.timedelta
    max_attempts: int
    retry_base: dt.timedelta
    pace: Pace
    link_max_age: dt.timedelta
    status_callbacks: bool  # ask Twilio to report delivery (live SMS only)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], worker: str) -> Settings:
        return cls(
            worker=worker,
            base_url=public_base_url(config),
            batch_size=int(config["DISPATCH_BATCH_SIZE"]),
            lease=dt.timedelta(seconds=int(config["DISPATCH_LEASE_SECONDS"])),
            max_attempts=int(config["RETRY_MAX_ATTEMPTS"]),
            retry_base=dt.timedelta(seconds=int(config["RETRY_BASE_SECONDS"])),
            pace=Pace(
                per_day=int(config["PATIENT_MESSAGES_PER_DAY"]),
                gap=dt.timedelta(minutes=int(config["PATIENT_MESSAGE_GAP_MINUTES"])),
            ),
            link_max_age=dt.timedelta(days=int(config["SURVEY_LINK_MAX_AGE_DAYS"])),
            status_callbacks=transport_of(config) == "live",
        )


@dataclass
class Report:
    """What one dispatch sweep did: the numbers of its log line."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retrying: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    segments: int = 0  # SMS segments handed over (what the provider bills)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: Report) -> None:
        for name in (
            "claimed",
            "sent",
            "deferred",
            "retrying",
            "failed",
            "uncertain",
            "released",
            "segments",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)

    def line(self) -> str:
        skipped = ",".join(f"{k}:{v}" for k, v in sorted(self.skipped.items())) or "0"
        return (
            f"claimed={self.claimed} sent={self.sent} skipped={skipped} deferred={self.deferred} "
            f"retrying={self.retrying} failed={self.failed} uncertain={self.uncertain} "
            f"sms_segments={self.segments}"
        )


@dataclass
class _Handed:
    """A message handed over for sending in this batch."""

    row_id: int
    token_hash: bytes
    attempts: int  # this one included
    message: OutgoingMessage


# The sweep -------------------------------------------------------------------------------------


def dispatch(
    session: Session,
    senders: Mapping[str, Sender],
    now: dt.datetime,
    settings: Settings,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Send every message due at `now`, batch after batch, until none is left or `stop()`."""
    report = Report()
    report.uncertain += recover_lapsed_claims(session, now, settings.lease)
    session.commit()
    while not stop():
        batch = dispatch_batch(session, senders, now, settings, stop=stop)
        report.add(batch)
        if batch.claimed == 0:
            break
    return report


def recover_lapsed_claims(session: Session, now: dt.datetime, lease: dt.timedelta) -> int:
    """Claims older than the lease: back to pending if never handed over, else `unknown`.

    Returns how many became unknown.
    """
    lapsed = (
        Notification.status == NotificationStatus.SENDING,
        Notification.claimed_at < now - lease,
    )
    session.execute(
        update(Notification)
        .where(*lapsed, Notification.handed_over_at.is_(None))
        .values(status=NotificationStatus.PENDING, claimed_at=None, claimed_by=None)
    )
    unknown = session.execute(
        update(Notification)
        .where(*lapsed, Notification.handed_over_at.is_not(None))
        .values(
            status=NotificationStatus.UNKNOWN,
            last_error="the scheduler stopped while sending: it is not known whether it went",
        )
    )
    return unknown.rowcount


def dispatch_batch(
    session: Session,
    senders: Mapping[str, Sender],
    now: dt.datetime,
    settings: Settings,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Claim, check and hand over one batch (one transaction), send it, record the outcomes."""
    report = Report()
    handed = _claim_and_hand_over(session, now, settings, report)
    session.commit()
    outcomes: list[dict[str, Any]] = []
    revoked: list[bytes] = []
    recorded = time.monotonic()
    # Outcomes already known are worth waiting for the database to come back: given up, their
    # messages become `unknown` once the claim lapses. Half the lease leaves the rest to spare.
    patience = settings.lease.total_seconds() / 2
    for item in handed:
        if stop():
            outcomes.append(_released(item))
            revoked.append(item.token_hash)
            report.released += 1
            continue
        outcomes.append(_send(item, senders, now, settings, report, revoked))
        if time.monotonic() - recorded >= RECORD_EVERY_SECONDS:
            _record_patiently(session, outcomes, revoked, now, patience)
            recorded = time.monotonic()
    _record_patiently(session, outcomes, revoked, now, patience)
    return report


def _record_patiently(
    session: Session,
    outcomes: list[dict[str, Any]],
    revoked: list[bytes],
    now: dt.datetime,
    patience: float,
) -> None:
    """`_record`, tried again each second while the database is unreachable (a restart), for
    at most `patience` seconds: the messages went, and only the record of it is missing."""
    give_up = time.monotonic() + patience
    while True:
        try:
            _record(session, outcomes, revoked, now)
            return
        except Exception as error:
            if trouble_status(error) is None or time.monotonic() >= give_up:
                raise
            log.warning("recording %d outcomes: database unavailable, trying again", len(outcomes))
            try:
                session.rollback()
            except Exception as again:
                if trouble_status(again) is None:
                    raise
            time.sleep(1.0)


def _record(
    session: Session, outcomes: list[dict[str, Any]], revoked: list[bytes], now: dt.datetime
) -> None:
    """Commit the outcomes so far (and empty the lists): the messages sent in one statement,
    the others (refused, uncertain, put back: few) one by one."""
    sent = {o["id"]: o["provider_message_id"] for o in outcomes if o["status"] is SENT}
    others = [o for o in outcomes if o["status"] is not SENT]
    if sent:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(list(sent)))
            .values(
                status=SENT,
                sent_at=now,
                last_error=None,
                provider_message_id=_per_row(sent, Notification.provider_message_id),
            )
        )
    if others:
        session.execute(update(Notification), others)
    if revoked:
        session.execute(
            update(AccessToken).where(AccessToken.token_hash.in_(revoked)).values(revoked_at=now)
        )
    session.commit()
    outcomes.clear()
    revoked.clear()


# Claim, check, hand over -----------------------------------------------------------------------


def _claim_and_hand_over(
    session: Session, now: dt.datetime, settings: Settings, report: Report
) -> list[_Handed]:
    ids = session.scalars(
        select(Notification.id)
        .where(
            Notification.status == NotificationStatus.PENDING,
            Notification.send_after <= now,
            (Notification.next_attempt_at.is_(None)) | (Notification.next_attempt_at <= now),
        )
        .order_by(Notification.send_after, Notification.id)
        .limit(settings.batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    report.claimed = len(ids)
    if not ids:
        return []
    rows = session.scalars(
        select(Notification)
        .where(Notification.id.in_(ids))
        .order_by(Notification.send_after, Notification.id)
        .options(
            joinedload(Notification.patient).joinedload(Patient.clinic),
            joinedload(Notification.assessment).joinedload(Assessment.enrollment),
        )
    ).all()
    recent = _recent_sends(session, {row.patient_id for row in rows}, now, settings.pace)
    latest_due = _latest_due(session, {row.assessment_id for row in rows if row.assessment_id}, now)
    handing: list[_Handed] = []
    links: list[dict[str, Any]] = []
    unsubscribes: dict[int, bytes] = {}
    for row in rows:
        reason = _unwanted(row, now, latest_due)
        if reason is not None:
            row.status = NotificationStatus.CANCELLED
            row.cancel_reason = reason
            report.skipped[reason] += 1
            continue
        assert row.assessment is not None
        at = _send_time(row, now, settings.pace, recent[row.patient_id])
        if at is None:
            row.status = NotificationStatus.CANCELLED
            row.cancel_reason = PATIENT_CAP if _pace_bound(row, now) else Skip.QUIET_HOURS.value
            report.skipped[row.cancel_reason] += 1
            continue
        if at > now:
            row.next_attempt_at = at
            report.deferred += 1
            continue
        recent[row.patient_id].append(now)
        handing.append(_hand_over(row, now, settings, report, links, unsubscribes))
    session.flush()  # what was dropped or deferred
    if handing:
        # The batch's hand-over in two statements, its links and its rows (thousands of
        # messages a second where a statement per row managed hundreds).
        session.execute(insert(AccessToken), links)
        session.execute(
            update(Notification)
            .where(Notification.id.in_([item.row_id for item in handing]))
            .values(
                status=NotificationStatus.SENDING,
                claimed_at=now,
                claimed_by=settings.worker,
                handed_over_at=now,
                attempts=Notification.attempts + 1,
                unsubscribe_hash=_per_row(unsubscribes, Notification.unsubscribe_hash),
            )
        )
    return handing


def _per_row(values: Mapping[int, Any], column: Any) -> Any:
    """A value per row id in one UPDATE (CASE id WHEN ... END); other rows keep theirs."""
    if not values:
        return column
    return case(values, value=Notification.id, else_=column)


def _recent_sends(
    session: Session, patient_ids: set[int], now: dt.datetime, pace: Pace
) -> dict[int, list[dt.datetime]]:
    """When each patient was last sent something (two local days back covers day and gap)."""
    since = now - max(dt.timedelta(days=2), pace.gap)
    moment = func.coalesce(Notification.sent_at, Notification.handed_over_at)
    found: dict[int, list[dt.datetime]] = defaultdict(list)
    for patient_id, at in session.execute(
        select(Notification.patient_id, moment).where(
            Notification.patient_id.in_(patient_ids),
            Notification.status.in_(ATTEMPTED),
            moment >= since,
        )
    ):
        found[patient_id].append(at)
    return found


def _latest_due(
    session: Session, assessment_ids: set[int], now: dt.datetime
) -> dict[int, dt.datetime]:
    """The latest planned message already due of each questionnaire (to drop earlier ones)."""
    if not assessment_ids:
        return {}
    rows = session.execute(
        select(Notification.assessment_id, func.max(Notification.send_after))
        .where(
            Notification.assessment_id.in_(assessment_ids),
            Notification.kind.in_(PLANNED_KINDS),
            Notification.status.in_((NotificationStatus.PENDING, NotificationStatus.SENDING)),
            Notification.send_after <= now,
        )
        .group_by(Notification.assessment_id)
    ).all()
    return {assessment_id: latest for assessment_id, latest in rows if assessment_id is not None}


def _unwanted(
    row: Notification, now: dt.datetime, latest_due: Mapping[int, dt.datetime]
) -> str | None:
    """Why the message should no longer go, checked at send time; None if it should."""
    patient = row.patient
    assessment = row.assessment
    if patient.opted_out_at is not None:
        return Skip.OPTED_OUT.value
    if assessment is None:
        return WITHDRAWN
    if assessment.status is AssessmentStatus.COMPLETED:
        return COMPLETED
    if (
        assessment.enrollment.status is EnrollmentStatus.WITHDRAWN
        or assessment.status is AssessmentStatus.CANCELLED
    ):
        return WITHDRAWN
    if assessment.status not in OPEN_STATUSES or now >= assessment.closes_at:
        return Skip.WINDOW_CLOSED.value
    if row.kind is not NotificationKind.NEW_LINK:
        if patient.preferred_channel is Channel.NONE:
            return Skip.BY_PHONE.value
        if row.send_after < latest_due.get(assessment.id, row.send_after):
            return SUPERSEDED
    if _address(row) is None:
        return Skip.NO_CONTACT.value
    return None


def _address(row: Notification) -> str | None:
    if row.channel is Channel.EMAIL:
        return row.patient.email or None
    if row.channel is Channel.SMS:
        return row.patient.phone or None
    return None


def _fresh_request(row: Notification, now: dt.datetime) -> bool:
    return row.kind is NotificationKind.NEW_LINK and now - row.created_at <= REQUEST_FRESH


def _pace_bound(row: Notification, now: dt.datetime) -> bool:
    """Whether quiet hours alone would have let the message go before its window closed."""
    assert row.assessment is not None
    free = earliest_send(
        now,
        row.assessment.closes_at,
        row.patient.time_zone,
        quiet_hours_of(row.patient.clinic),
        Pace(per_day=10**6, gap=dt.timedelta(0)),
        [],
    )
    return free is not None


def _send_time(
    row: Notification, now: dt.datetime, pace: Pace, recent: Sequence[dt.datetime]
) -> dt.datetime | None:
    assert row.assessment is not None
    if _fresh_request(row, now):
        return now
    return earliest_send(
        now,
        row.assessment.closes_at,
        row.patient.time_zone,
        quiet_hours_of(row.patient.clinic),
        pace,
        recent,
    )


def _hand_over(
    row: Notification,
    now: dt.datetime,
    settings: Settings,
    report: Report,
    links: list[dict[str, Any]],
    unsubscribes: dict[int, bytes],
) -> _Handed:
    """Mint the message's link (and an email's unsubscribe link) and render it; the rows to
    write are added to `links` and `unsubscribes`."""
    assert row.assessment is not None
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash = hash_token(raw)
    links.append(
        {
            "token_hash": token_hash,
            "assessment_id": row.assessment_id,
            "notification_id": row.id,
            "created_at": now,
            "expires_at": min(now + settings.link_max_age, row.assessment.closes_at),
        }
    )
    unsubscribe_url = None
    if row.channel is Channel.EMAIL:
        unsubscribe = secrets.token_urlsafe(TOKEN_BYTES)
        unsubscribes[row.id] = hash_token(unsubscribe)
        unsubscribe_url = f"{settings.base_url}/u/{unsubscribe}"
    message, segments = _message(row, f"{settings.base_url}/s/{raw}", unsubscribe_url, settings)
    report.segments += segments
    return _Handed(row.id, token_hash, row.attempts + 1, message)


def _message(
    row: Notification, link: str, unsubscribe_url: str | None, settings: Settings
) -> tuple[OutgoingMessage, int]:
    """The rendered message, and its SMS segments (0 for an email)."""
    assert row.assessment is not None
    patient = row.patient
    clinic = patient.clinic
    address = _address(row)
    assert address is not None
    last_moment = row.assessment.closes_at - dt.timedelta(minutes=1)
    rendered = render(
        MessageContext(
            kind=row.kind.value,
            language=patient.language,
            first_name=patient.given_name.split()[0] if patient.given_name.strip() else None,
            clinic_name=clinic.name,
            clinic_phone=_clinic_phone(clinic.contact_phone, clinic.time_zone)
            if clinic.contact_phone
            else None,
            link=link,
            closes_on=last_moment.astimezone(ZoneInfo(patient.time_zone)).date(),
            unsubscribe_url=unsubscribe_url,
        ),
        row.channel.value,
    )
    callback = None
    if row.channel is Channel.SMS and settings.status_callbacks:
        callback = f"{settings.base_url}/hooks/twilio/status"
    message = OutgoingMessage(
        notification_id=row.id,
        idempotency_key=row.idempotency_key,
        channel=row.channel.value,
        to=address,
        text=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        unsubscribe_url=unsubscribe_url,
        status_callback_url=callback,
    )
    return message, rendered.segments or 0


# A clinic's number as its patients write it: parsing a number costs more than rendering.
_clinic_phone = functools.lru_cache(maxsize=256)(phone)


# Sending and recording -------------------------------------------------------------------------


def _send(
    item: _Handed,
    senders: Mapping[str, Sender],
    now: dt.datetime,
    settings: Settings,
    report: Report,
    revoked: list[bytes],
) -> dict[str, Any]:
    """Send one message; the values that record its outcome."""
    try:
        provider_id = senders[item.message.channel].send(item.message)
    except Rejected as refused:
        revoked.append(item.token_hash)
        return _refused(item, refused, now, settings, report)
    except Uncertain as unclear:
        report.uncertain += 1
        log.warning("message %s: delivery unknown (%s)", item.row_id, unclear.reason)
        return {
            "id": item.row_id,
            "status": NotificationStatus.UNKNOWN,
            "last_error": unclear.reason,
        }
    report.sent += 1
    return {
        "id": item.row_id,
        "status": NotificationStatus.SENT,
        "sent_at": now,
        "provider_message_id": provider_id,
        "last_error": None,
    }


def _refused(
    item: _Handed, refused: Rejected, now: dt.datetime, settings: Settings, report: Report
) -> dict[str, Any]:
    """A definite refusal: try again later with backoff and jitter, or give up."""
    attempts = item.attempts
    delay = settings.retry_base * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)  # noqa: S311
    if refused.permanent or attempts >= settings.max_attempts:
        report.failed += 1
        log.warning("message %s failed after %d tries: %s", item.row_id, attempts, refused.reason)
        return {
            "id": item.row_id,
            "status": NotificationStatus.FAILED,
            "last_error": refused.reason,
            "handed_over_at": None,
        }
    report.retrying += 1
    return {
        "id": item.row_id,
        "status": NotificationStatus.PENDING,
        "next_attempt_at": now + delay,
        "last_error": refused.reason,
        "handed_over_at": None,
        "claimed_at": None,
        "claimed_by": None,
    }


def _released(item: _Handed) -> dict[str, Any]:
    """Handed over but not sent (the scheduler is stopping): back to pending, as it was."""
    return {
        "id": item.row_id,
        "status": NotificationStatus.PENDING,
        "handed_over_at": None,
        "claimed_at": None,
        "claimed_by": None,
        "attempts": item.attempts - 1,
    }
