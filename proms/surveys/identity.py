"""The optional date-of-birth check before the first question, and its lockout.

Like staff sign-in (proms.auth.services), the policy, the counting and the lock live here, and
the view only shows the outcome. Wrong dates are counted per link in the database; after
`max_tries` the link locks for `lock_for`, and a right date clears the count. Flush, never
commit: the view commits whatever the outcome, so a wrong try is counted even when refused.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from proms.admin.models import Patient
from proms.surveys.models import AccessToken


class IdentityOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    MISMATCH = "mismatch"  # a wrong (or impossible) date; the patient may try again
    LOCKED = "locked"  # too many wrong dates: no tries until `locked_until`


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    max_tries: int
    lock_for: dt.timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IdentityPolicy:
        return cls(
            max_tries=int(config["IDENTITY_MAX_TRIES"]),
            lock_for=dt.timedelta(minutes=int(config["IDENTITY_LOCK_MINUTES"])),
        )


@dataclass(frozen=True, slots=True)
class IdentityResult:
    outcome: IdentityOutcome
    locked_until: dt.datetime | None = None


def locked_until(token: AccessToken, now: dt.datetime) -> dt.datetime | None:
    """The end of the link's lock, while it lasts."""
    until = token.identity_locked_until
    return until if until is not None and until > now else None


def check_birth_date(
    session: Session,
    token: AccessToken,
    patient: Patient,
    given: dt.date | None,
    *,
    now: dt.datetime,
    policy: IdentityPolicy,
) -> IdentityResult:
    """Compare the date the patient typed (None: not a real date) with the one on record.

    While the link is locked every try is refused without looking at the date.
    """
    until = locked_until(token, now)
    if until is not None:
        return IdentityResult(IdentityOutcome.LOCKED, until)
    if given is not None and given == patient.birth_on:
        token.failed_identity_count = 0
        session.flush()
        return IdentityResult(IdentityOutcome.CONFIRMED)
    until = _count_failure(session, token, now=now, policy=policy)
    if until is not None:
        return IdentityResult(IdentityOutcome.LOCKED, until)
    return IdentityResult(IdentityOutcome.MISMATCH)


def _count_failure(
    session: Session, token: AccessToken, *, now: dt.datetime, policy: IdentityPolicy
) -> dt.datetime | None:
    """Count one wrong date of birth; lock the link after `max_tries`. Returns the lock's end.

    The count is incremented in the database (`SET n = n + 1`), never read and written back,
    so wrong tries sent at the same moment all count, on SQLite as on PostgreSQL.
    """
    failures = session.scalar(
        update(AccessToken)
        .where(
            AccessToken.id == token.id,
            # Not while locked: a try that arrives after another one locked the link is refused.
            or_(
                AccessToken.identity_locked_until.is_(None),
                AccessToken.identity_locked_until <= now,
            ),
        )
        .values(failed_identity_count=AccessToken.failed_identity_count + 1)
        .returning(AccessToken.failed_identity_count)
        .execution_options(synchronize_session=False)
    )
    if failures is None:
        return session.scalar(
            select(AccessToken.identity_locked_until).where(AccessToken.id == token.id)
        )
    if failures < policy.max_tries:
        return None
    until = now + policy.lock_for
    session.execute(
        update(AccessToken)
        .where(AccessToken.id == token.id)
        .values(failed_identity_count=0, identity_locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return until
