"""The instrument snapshots of this deployment: every definition a patient answered, whole."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from proms.db import db, enum_type, utcnow


class InstrumentSource(enum.StrEnum):
    BUNDLED = "bundled"  # a snapshot of a definition shipped with proms
    IMPORTED = "imported"  # loaded by this deployment (official wording, or a new instrument)


class Instrument(db.Model):
    """A snapshot of one instrument definition, stored whole so old answers stay readable.

    Rows are never changed: a response points at the exact definition it was answered with. An
    imported definition (official wording) overrides the bundled one of the same code and
    version for everything that comes after it.
    """

    __tablename__ = "instrument"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[InstrumentSource] = mapped_column(
        enum_type(InstrumentSource, "instrument_source"),
        default=InstrumentSource.BUNDLED,
        server_default=InstrumentSource.BUNDLED.value,
    )
    # Deferred: pages need the parsed definition, which is cached by its hash.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("code", "version", "definition_sha256"),
        Index(None, "code", "version", "created_at"),
    )
