"""coordinator workspace: opt-out, quiet hours, pinned versions, paper answers, password links

New columns only, each added in place: on SQLite a column with a foreign key is added with an
inline REFERENCES clause, because batch mode's copy of a table would drop the old one, and with
foreign keys on, that drop deletes (or refuses to delete) the rows that point at it.

Revision ID: c7e78b9524c9
Revises: c023a1557bc6
Create Date: 2026-11-29 21:58:25.412537+00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7e78b9524c9"
down_revision: str | None = "c023a1557bc6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, referred table, ON DELETE)
REFERENCES = [
    ("enrollment", "withdrawn_by_id", "staff_user", "SET NULL"),
    ("enrollment", "baseline_from_id", "enrollment", "SET NULL"),
    ("patient", "opted_out_by_id", "staff_user", "SET NULL"),
    ("protocol", "created_by_id", "staff_user", "SET NULL"),
    ("survey_response", "entered_by_id", "staff_user", "SET NULL"),
    ("treatment_session", "recorded_by_id", "staff_user", "SET NULL"),
]


def _plain() -> list[tuple[str, sa.Column]]:
    """The new columns without a foreign key (fresh objects: a Column joins one table)."""
    return [
        (
            "clinic",
            sa.Column("quiet_hours_start", sa.Time(), server_default="21:00:00", nullable=False),
        ),
        (
            "clinic",
            sa.Column("quiet_hours_end", sa.Time(), server_default="08:00:00", nullable=False),
        ),
        (
            "clinic",
            sa.Column("baseline_reuse_days", sa.Integer(), server_default="30", nullable=False),
        ),
        ("notification", sa.Column("cancel_reason", sa.String(length=32), nullable=True)),
        ("patient", sa.Column("opt_out_reason", sa.String(length=500), nullable=True)),
        (
            "protocol",
            sa.Column(
                "anchor_label",
                sa.String(length=100),
                server_default="First infusion day",
                nullable=False,
            ),
        ),
        (
            "protocol",
            sa.Column("channels", sa.JSON(), server_default='["email", "sms"]', nullable=False),
        ),
        ("protocol", sa.Column("horizon_days", sa.Integer(), server_default="180", nullable=False)),
        (
            "protocol_timepoint",
            sa.Column("instrument_versions", sa.JSON(), server_default="{}", nullable=False),
        ),
        (
            "staff_user",
            sa.Column(
                "must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False
            ),
        ),
        ("survey_response", sa.Column("entry_source", sa.String(length=16), nullable=True)),
        ("treatment_session", sa.Column("missed_reason", sa.String(length=200), nullable=True)),
        ("treatment_session", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True)),
    ]


def _add_reference(table: str, column: str, referred: str, ondelete: str) -> None:
    name = f"fk_{table}_{column}_{referred}"
    op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_add_constraint(
            table,
            f"CONSTRAINT {name} FOREIGN KEY({column}) REFERENCES {referred} (id) "
            f"ON DELETE {ondelete}",
        )
        return
    op.create_foreign_key(name, table, referred, [column], ["id"], ondelete=ondelete)


def _drop_reference(table: str, column: str, referred: str, ondelete: str) -> None:
    name = f"fk_{table}_{column}_{referred}"
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rewrite(
            table,
            lambda sql: sql.replace(f", \n\t{_constraint(name, column, referred, ondelete)}", ""),
        )
    else:
        op.drop_constraint(name, table, type_="foreignkey")
    _drop_column(table, column)


def _constraint(name: str, column: str, referred: str, ondelete: str) -> str:
    return (
        f"CONSTRAINT {name} FOREIGN KEY({column}) REFERENCES {referred} (id) ON DELETE {ondelete}"
    )


def _sqlite_add_constraint(table: str, constraint: str) -> None:
    """Add a table constraint to a SQLite table's stored definition, without copying the table.

    SQLite's documented shortcut for schema changes that leave the stored rows as they are
    (https://www.sqlite.org/lang_altertable.html, "making other kinds of table schema
    changes"): rewrite the CREATE TABLE text, bump the schema version, check integrity. Safe
    here because the constrained column was added a moment ago and holds only NULLs. A table
    constraint rather than ADD COLUMN's inline REFERENCES: SQLAlchemy reads the name and ON
    DELETE of the table form only, and `proms db check` compares both.
    """

    def add(sql: str) -> str:
        body = sql.rstrip()
        if not body.endswith(")"):
            raise RuntimeError(f"unexpected definition of table {table}: {sql!r}")
        return f"{body[:-1].rstrip()}, \n\t{constraint}\n)"

    _sqlite_rewrite(table, add)


def _sqlite_rewrite(table: str, change: Callable[[str], str]) -> None:
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    rewritten = change(sql)
    if rewritten == sql:
        raise RuntimeError(f"table {table}: the definition did not change as expected")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (rewritten, table)
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check after changing {table}: {problems}")


def _drop_column(table: str, column: str) -> None:
    """In place: SQLite 3.35+ drops a column that no index or constraint other than its own
    inline REFERENCES uses."""
    with op.batch_alter_table(table, recreate="never") as batch_op:
        batch_op.drop_column(column)


def upgrade() -> None:
    op.create_table(
        "password_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["staff_user.id"],
            name=op.f("fk_password_token_created_by_id_staff_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_user.id"],
            name=op.f("fk_password_token_user_id_staff_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_token_token_hash")),
    )
    op.create_index(op.f("ix_password_token_user_id"), "password_token", ["user_id"])
    for table, column in _plain():
        op.add_column(table, column)
    for reference in REFERENCES:
        _add_reference(*reference)


def downgrade() -> None:
    for reference in reversed(REFERENCES):
        _drop_reference(*reference)
    for table, column in reversed(_plain()):
        _drop_column(table, column.name)
    op.drop_index(op.f("ix_password_token_user_id"), table_name="password_token")
    op.drop_table("password_token")
