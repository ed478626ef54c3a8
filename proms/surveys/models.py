"""Access tokens for patient links and survey responses."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, enum_type, utcnow

if TYPE_CHECKING:
    from proms.catalog.models import Instrument
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
        # The cohort report's message funnel: the links used to start, by message.
        Index(None, "last_used_at", "notification_id"),
    )


class SurveyAnswer(db.Model):
    """One item's answer in a response: a row per item, written by an upsert.

    Rows rather than one JSON document per response: saving an answer touches only its own row,
    so two tabs answering different questions at the same moment can never overwrite each
    other, and item-level export and analysis read plain columns.
    """

    __tablename__ = "survey_answer"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_response.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(64))
    # The chosen option's value; None: the patient skipped the item on purpose.
    value: Mapped[int | None]
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("response_id", "item_id"),
        # The cohort report: the answers to the side-effect checklist's items, side by side (not
        # spread among every questionnaire's answers), read index-only on PostgreSQL.
        Index(None, "item_id", "response_id", postgresql_include=["value"]),
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
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[dt.datetime | None]
    # Answers staff typed in from paper or a phone call; None when the patient answered.
    entered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    entry_source: Mapped[str | None] = mapped_column(String(16))

    assessment: Mapped[Assessment] = relationship(back_populates="responses")
    instrument: Mapped[Instrument] = relationship()
    # Loaded when read: saving an answer never needs the others (a POST stays a few statements).
    answer_rows: Mapped[list[SurveyAnswer]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by=SurveyAnswer.id
    )

    __table_args__ = (
        UniqueConstraint("assessment_id", "instrument_id"),
        CheckConstraint(
            "(status = 'submitted') = (submitted_at IS NOT NULL)", name="submitted_has_timestamp"
        ),
        # The cohort report: the responses to one questionnaire (the side-effect checklist), with
        # their windows, read index-only on PostgreSQL.
        Index(None, "instrument_id", "status", "assessment_id", postgresql_include=["id"]),
    )

    @property
    def answers(self) -> dict[str, int | None]:
        """Item id -> answer value (None: skipped); an item not in it was not reached."""
        return {row.item_id: row.value for row in self.answer_rows}

    @answers.setter
    def answers(self, answers: dict[str, int | None]) -> None:
        """Set every answer of a new response at once (imports, tests, demo data)."""
        self.answer_rows = [
            SurveyAnswer(item_id=key, value=value) for key, value in answers.items()
        ]
