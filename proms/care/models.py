"""Care-team records: staff notes on a patient."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from proms.db import db, utcnow

if TYPE_CHECKING:
    from proms.auth.models import StaffUser

NOTE_MAX_LENGTH = 2000


class StaffNote(db.Model):
    """A note a member of the care team wrote on a patient. Append-only: never edited or deleted.

    A correction is a new note. Like audit events, a note keeps its patient and its author
    (RESTRICT): a patient with notes cannot be deleted by accident.
    """

    __tablename__ = "staff_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="RESTRICT"))
    author_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(String(NOTE_MAX_LENGTH))

    author: Mapped[StaffUser] = relationship()

    __table_args__ = (
        CheckConstraint("length(text) > 0", name="text_not_empty"),
        # The patient page: a patient's notes, newest first.
        Index(None, "patient_id", "created_at"),
    )
