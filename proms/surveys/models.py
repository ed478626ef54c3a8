"""Access tokens for patient links and survey responses."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, LargeBinary, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.admin.models import Instrument
    from proms.scheduling.models import Assessment


class ResponseStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"


class AccessToken(db.Model):
    """A patient link. Only the SHA-256 of the random token is stored."""

    __tablename__ = "access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    assessment_id: Mapped[int] = mapped_column(
        ForeignKey("assessment.id", ondelete="CASCADE"), index=True
    )
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    # The optional date-of-birth check: wrong tries, and the lock they lead to.
    failed_identity_count: Mapped[int] = mapped_column(default=0, server_default="0")
    identity_locked_until: Mapped[dt.datetime | None]
    # Staff who made the link by hand (`proms link`, the patient page); None for messages.
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )

    assessment: Mapped[Assessment] = relationship()

    __table_args__ = (
        CheckConstraint("failed_identity_count >= 0", name="failed_identity_count_not_negative"),
    )


class SurveyResponse(db.Model):
    """The answers to one instrument at one assessment: a draft until submitted."""

    __tablename__ = "survey_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"))
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instrument.id", ondelete="RESTRICT"))
    status: Mapped[ResponseStatus] = mapped_column(
        enum_type(ResponseStatus, "response_status"),
        default=ResponseStatus.DRAFT,
        server_default=ResponseStatus.DRAFT.value,
    )
    # Item id -> answer value; a missing key is an unanswered item.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[dt.datetime | None]

    assessment: Mapped[Assessment] = relationship(back_populates="responses")
    instrument: Mapped[Instrument] = relationship()

    __table_args__ = (
        UniqueConstraint("assessment_id", "instrument_id"),
        CheckConstraint(
            "(status = 'submitted') = (submitted_at IS NOT NULL)", name="submitted_has_timestamp"
        ),
    )
