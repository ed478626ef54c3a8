"""alert kinds, rules, tiers and actions; the clinic's alert mailbox and thank-you text

Alerts gain a third kind (`severity`), a tier (urgent, next_visit, information), a stable rule
key and the time point's key, a `resolved` status with who, when and a note, and when the care
team's mailbox was told. One alert per time point (assessment) and rule: a unique index.
Existing rows stay valid: a side effect is urgent and a worsening is for the next visit; their
rule key comes from their detail (a duplicate key, which no earlier version could make, keeps
its row under a key suffixed with its id). Clinics gain the alert mailbox and their own
thank-you text in English and Spanish.

On SQLite the NOT NULL, CHECK and foreign key constraints are changed in the table's stored
definition (SQLite's documented procedure for changes that leave the rows as they are), as the
earlier migrations do, rather than by batch mode's copy of the table.

Revision ID: a1e4c0f00a11
Revises: 5c0e1a7d2b11
Create Date: 2026-11-30 04:01:00+00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1e4c0f00a11"
down_revision: str | None = "5c0e1a7d2b11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = "kind IN ('worsening', 'side_effect')"
KINDS_AFTER = "kind IN ('worsening', 'side_effect', 'severity')"
STATUSES_BEFORE = "status IN ('open', 'acknowledged')"
STATUSES_AFTER = "status IN ('open', 'acknowledged', 'resolved')"
ACKNOWLEDGED_BEFORE = "(status = 'acknowledged') = (acknowledged_at IS NOT NULL)"
ACKNOWLEDGED_AFTER = (
    "status = 'resolved' OR (status = 'acknowledged') = (acknowledged_at IS NOT NULL)"
)
RESOLVED = "(status = 'resolved') = (resolved_at IS NOT NULL)"
TIERS = "tier IN ('urgent', 'next_visit', 'information')"

# (name without the "ck_alert_" prefix, before, after)
CHECKS = [
    ("alert_kind", KINDS_BEFORE, KINDS_AFTER),
    ("alert_status", STATUSES_BEFORE, STATUSES_AFTER),
    ("acknowledged_has_timestamp", ACKNOWLEDGED_BEFORE, ACKNOWLEDGED_AFTER),
]
NEW_CHECKS = [("alert_tier", TIERS), ("resolved_has_timestamp", RESOLVED)]
RESOLVED_BY_FK = "fk_alert_resolved_by_id_staff_user"
UNIQUE_RULE = "ix_alert_assessment_id_rule"


def _alert_columns() -> list[sa.Column]:
    """The new alert columns (fresh objects: a Column joins one table)."""
    return [
        sa.Column("tier", sa.String(length=11), nullable=True),
        sa.Column("rule", sa.String(length=160), nullable=True),
        sa.Column("timepoint_key", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolution_note", sa.String(length=1000), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _clinic_columns() -> list[sa.Column]:
    return [
        sa.Column("alert_email", sa.String(length=254), nullable=True),
        sa.Column("next_steps_en", sa.String(length=1000), nullable=True),
        sa.Column("next_steps_es", sa.String(length=1000), nullable=True),
    ]


def _fill_existing_rows() -> None:
    """Tier from the kind, rule key from the detail, the time point from the assessment."""
    sqlite = op.get_bind().dialect.name == "sqlite"

    def field(name: str) -> str:
        return f"json_extract(detail, '$.{name}')" if sqlite else f"(detail ->> '{name}')"

    op.execute(
        "UPDATE alert SET tier = CASE kind WHEN 'side_effect' THEN 'urgent' ELSE 'next_visit' END"
    )
    instrument = f"COALESCE({field('instrument')}, 'unknown')"
    scale = f"COALESCE({field('scale')}, 'total')"
    side_effect, worsening = f"'side_effect:' || {instrument}", f"'worsening:' || {instrument}"
    # Only the constant expressions above go into the statement.
    rule = f"CASE kind WHEN 'side_effect' THEN {side_effect} ELSE {worsening} || ':' || {scale} END"
    op.execute(f"UPDATE alert SET rule = {rule}")  # noqa: S608
    op.execute(
        "UPDATE alert SET timepoint_key = (SELECT protocol_timepoint.key FROM assessment"
        " JOIN protocol_timepoint ON protocol_timepoint.id = assessment.timepoint_id"
        " WHERE assessment.id = alert.assessment_id)"
    )
    # Keep every row: a second alert of one rule at one time point keeps a key of its own.
    op.execute(
        "UPDATE alert SET rule = rule || '#' || CAST(id AS VARCHAR(20)) WHERE EXISTS ("
        "SELECT 1 FROM alert AS earlier WHERE earlier.assessment_id = alert.assessment_id"
        " AND earlier.rule = alert.rule AND earlier.id < alert.id)"
    )


def upgrade() -> None:
    for column in _clinic_columns():
        op.add_column("clinic", column)
    for column in _alert_columns():
        op.add_column("alert", column)
    _fill_existing_rows()
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rewrite("alert", _sqlite_upgrade)
    else:
        op.alter_column("alert", "tier", existing_type=sa.String(length=11), nullable=False)
        op.alter_column("alert", "rule", existing_type=sa.String(length=160), nullable=False)
        for name, _before, after in CHECKS:
            op.drop_constraint(op.f(f"ck_alert_{name}"), "alert", type_="check")
            op.create_check_constraint(op.f(f"ck_alert_{name}"), "alert", after)
        for name, condition in NEW_CHECKS:
            op.create_check_constraint(op.f(f"ck_alert_{name}"), "alert", condition)
        op.create_foreign_key(
            RESOLVED_BY_FK, "alert", "staff_user", ["resolved_by_id"], ["id"], ondelete="SET NULL"
        )
    op.create_index(op.f(UNIQUE_RULE), "alert", ["assessment_id", "rule"], unique=True)


def downgrade() -> None:
    # The earlier schema knows neither severity alerts nor a resolved status: severity alerts
    # go, a resolved alert stays as acknowledged (by whoever resolved it, if nobody had).
    op.execute("DELETE FROM alert WHERE kind = 'severity'")
    op.execute(
        "UPDATE alert SET status = 'acknowledged',"
        " acknowledged_at = COALESCE(acknowledged_at, resolved_at),"
        " acknowledged_by_id = COALESCE(acknowledged_by_id, resolved_by_id),"
        " resolved_at = NULL WHERE status = 'resolved'"
    )
    op.drop_index(op.f(UNIQUE_RULE), table_name="alert")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rewrite("alert", _sqlite_downgrade)
    else:
        op.drop_constraint(RESOLVED_BY_FK, "alert", type_="foreignkey")
        for name, _condition in NEW_CHECKS:
            op.drop_constraint(op.f(f"ck_alert_{name}"), "alert", type_="check")
        for name, before, _after in CHECKS:
            op.drop_constraint(op.f(f"ck_alert_{name}"), "alert", type_="check")
            op.create_check_constraint(op.f(f"ck_alert_{name}"), "alert", before)
    with op.batch_alter_table("alert", recreate="never") as batch_op:
        for column in reversed(_alert_columns()):
            batch_op.drop_column(column.name)
    with op.batch_alter_table("clinic", recreate="never") as batch_op:
        for column in reversed(_clinic_columns()):
            batch_op.drop_column(column.name)


# SQLite: the stored definition, rewritten in place ---------------------------------------------

NOT_NULL = [
    ("tier VARCHAR(11)", "tier VARCHAR(11) NOT NULL"),
    ("rule VARCHAR(160)", "rule VARCHAR(160) NOT NULL"),
]


def _appended() -> list[str]:
    """The table constraints the upgrade appends, as SQLAlchemy writes them."""
    return [
        *(f"CONSTRAINT ck_alert_{name} CHECK ({condition})" for name, condition in NEW_CHECKS),
        f"CONSTRAINT {RESOLVED_BY_FK} FOREIGN KEY(resolved_by_id) REFERENCES staff_user (id) "
        "ON DELETE SET NULL",
    ]


def _check(name: str, condition: str) -> str:
    return f"CONSTRAINT ck_alert_{name} CHECK ({condition})"


def _sqlite_upgrade(sql: str) -> str:
    for before, after in NOT_NULL:
        sql = _replace_once(sql, f", {before}", f", {after}")
    for name, before, after in CHECKS:
        sql = _replace_once(sql, _check(name, before), _check(name, after))
    body = sql.rstrip()
    if not body.endswith(")"):
        raise RuntimeError(f"unexpected definition of table alert: {sql!r}")
    added = "".join(f", \n\t{constraint}" for constraint in _appended())
    return f"{body[:-1].rstrip()}{added}\n)"


def _sqlite_downgrade(sql: str) -> str:
    for constraint in _appended():
        sql = _replace_once(sql, f", \n\t{constraint}", "")
    for name, before, after in CHECKS:
        sql = _replace_once(sql, _check(name, after), _check(name, before))
    for before, after in NOT_NULL:
        sql = _replace_once(sql, f", {after}", f", {before}")
    return sql


def _replace_once(sql: str, old: str, new: str) -> str:
    if sql.count(old) != 1:
        raise RuntimeError(f"table alert: expected {old!r} once in its definition")
    return sql.replace(old, new)


def _sqlite_rewrite(table: str, change: Callable[[str], str]) -> None:
    """Rewrite a table's stored CREATE TABLE text (https://www.sqlite.org/lang_altertable.html,
    "making other kinds of table schema changes"): the rows already meet the new constraints."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    rewritten = change(sql)
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
