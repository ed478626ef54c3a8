"""survey answers: one row per item instead of a JSON document per response

Saving an answer used to rewrite the whole `answers` JSON of its response, so two tabs saving
at the same moment could erase each other's answer (SQLite has no row locks to stop it). Each
answer is now its own row, unique per response and item, written by an upsert.

Existing answers move to the new table; the downgrade moves them back.

Revision ID: c023a1557bc6
Revises: 2d351ddd4368
Create Date: 2026-11-29 16:02:59.975097+00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "c023a1557bc6"
down_revision: str | None = "2d351ddd4368"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lightweight tables: migrations never import proms models.
survey_response = sa.table(
    "survey_response",
    sa.column("id", sa.Integer),
    sa.column("answers", sa.JSON),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
survey_answer = sa.table(
    "survey_answer",
    sa.column("response_id", sa.Integer),
    sa.column("item_id", sa.String),
    sa.column("value", sa.Integer),
    sa.column("answered_at", sa.DateTime(timezone=True)),
)


def _answer_value(response_id: int, item_id: str, value: Any) -> int | None:
    """Option values are integers; anything else is refused rather than rounded or dropped."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise RuntimeError(
        f"survey_response {response_id}: item {item_id!r} holds {value!r}, not an option value; "
        "fix it by hand before upgrading"
    )


def _drop_answers_column() -> None:
    """ALTER TABLE ... DROP COLUMN, never batch mode's copy of the table.

    Batch mode on SQLite drops and recreates survey_response, and with foreign keys on, the DROP
    deletes its rows first, cascading to their scores. SQLite drops a plain column in place
    since 3.35.
    """
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.dialect.dbapi.sqlite_version_info < (3, 35):
        raise RuntimeError("this migration needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN)")
    with op.batch_alter_table("survey_response", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("answers")


def upgrade() -> None:
    bind = op.get_bind()
    # Read the answers before the column goes.
    saved = bind.execute(
        sa.select(survey_response.c.id, survey_response.c.answers, survey_response.c.updated_at)
    ).all()
    _drop_answers_column()
    op.create_table(
        "survey_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["survey_response.id"],
            name=op.f("fk_survey_answer_response_id_survey_response"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answer")),
        sa.UniqueConstraint(
            "response_id", "item_id", name=op.f("uq_survey_answer_response_id_item_id")
        ),
    )
    rows = [
        {
            "response_id": response_id,
            "item_id": item_id,
            "value": _answer_value(response_id, item_id, value),
            "answered_at": updated_at,
        }
        for response_id, answers, updated_at in saved
        for item_id, value in (answers or {}).items()
    ]
    if rows:
        op.bulk_insert(survey_answer, rows)


def downgrade() -> None:
    bind = op.get_bind()
    answers: dict[int, dict[str, int | None]] = {}
    for response_id, item_id, value in bind.execute(
        sa.select(survey_answer.c.response_id, survey_answer.c.item_id, survey_answer.c.value)
    ):
        answers.setdefault(response_id, {})[item_id] = value
    op.drop_table("survey_answer")
    # Added in place (no copy of the table, see _drop_answers_column): NOT NULL needs a default.
    with op.batch_alter_table("survey_response", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("answers", sa.JSON(), nullable=False, server_default="{}"))
    ids = bind.execute(sa.select(survey_response.c.id)).scalars().all()
    for response_id in ids:
        bind.execute(
            survey_response.update()
            .where(survey_response.c.id == response_id)
            .values(answers=answers.get(response_id, {}))
        )
    if bind.dialect.name != "sqlite":  # SQLite cannot drop a default without copying the table
        op.alter_column("survey_response", "answers", server_default=None)
