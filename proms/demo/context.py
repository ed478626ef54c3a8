"""What every step of the demo shares: the session, the moment, the seed, what was added."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin.models import (
    Clinic,
    Protocol,
)
from proms.auth.models import ClinicMembership, Role, StaffUser

if TYPE_CHECKING:
    from proms.demo.cohort import Course


@dataclass
class DemoReport:
    """What a run added (zero everywhere on a second run)."""

    added: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str, str]] = field(default_factory=list)

    def count(self, what: str, n: int = 1) -> None:
        if n:
            self.added[what] = self.added.get(what, 0) + n


@dataclass(frozen=True)
class DemoContext:
    """One run: `size` scales the patients per clinic; `now` is the moment the history ends."""

    session: Session
    today: dt.date
    now: dt.datetime
    seed: int
    report: DemoReport
    size: float = 1.0
    # The courses of the patients this run added: the later steps give them their history.
    courses: list[Course] = field(default_factory=list)


def staff_by_clinic(session: Session, role: Role) -> dict[int, int]:
    """One staff member of the role per clinic (the first made), by clinic id."""
    found: dict[int, int] = {}
    for clinic_id, user_id in session.execute(
        select(ClinicMembership.clinic_id, ClinicMembership.user_id)
        .join(StaffUser, ClinicMembership.user_id == StaffUser.id)
        .where(ClinicMembership.role == role)
        .order_by(ClinicMembership.clinic_id, StaffUser.id)
    ):
        found.setdefault(clinic_id, user_id)
    return found


def clinic_by_slug(session: Session, slug: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.slug == slug))
    assert clinic is not None, slug
    return clinic


def protocol_of(session: Session, clinic: Clinic, spec: Mapping[str, object]) -> Protocol:
    protocol = session.scalar(
        select(Protocol).where(
            Protocol.clinic_id == clinic.id,
            Protocol.slug == spec["slug"],
            Protocol.version == spec["version"],
        )
    )
    assert protocol is not None
    return protocol
