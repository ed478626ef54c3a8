"""audit rows never change

The database refuses any UPDATE or DELETE of an audit event: a PL/pgSQL trigger function on
PostgreSQL, two RAISE(ABORT) triggers on SQLite (the same statements as the DDL events on
`AuditEvent` in proms/auth/models.py). The staff member, clinic and patient an event names can
no longer be deleted under it: their foreign keys become ON DELETE RESTRICT instead of SET NULL,
which would have updated the event. The admin's audit page gets its indexes: a clinic's events
by time, and the events without a clinic by time.

Revision ID: f0a0d1700b12
Revises: c3d4e5f60712
Create Date: 2026-11-30 04:04:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f0a0d1700b12"
down_revision: str | None = "c3d4e5f60712"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit events are never changed or deleted"
POSTGRESQL_GUARD = (
    f"""CREATE FUNCTION audit_event_unchangeable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'restrict_violation';
END;
$$""",
    "CREATE TRIGGER audit_event_unchangeable BEFORE UPDATE OR DELETE ON audit_event"
    " FOR EACH ROW EXECUTE FUNCTION audit_event_unchangeable()",
)
SQLITE_GUARD = tuple(
    (
        f"audit_event_no_{verb.lower()}",
        f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event"
        f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    )
    for verb in ("UPDATE", "DELETE")
)
# (column, referred table): the foreign keys of audit_event.
REFERENCES = (("actor_id", "staff_user"), ("clinic_id", "clinic"), ("patient_id", "patient"))
INDEX = "ix_audit_event_clinic_id_occurred_at"
# The events without a clinic (sign-ins, lists across clinics), newest first.
PARTIAL_INDEX = "ix_audit_event_without_clinic"
WITHOUT_CLINIC = sa.text("clinic_id IS NULL")


def _references(before: str, after: str) -> None:
    """Change the ON DELETE action of audit_event's three foreign keys."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_references(before, after)
        return
    for column, referred in REFERENCES:
        name = f"fk_audit_event_{column}_{referred}"
        # NOT VALID, then VALIDATE: the check of existing rows does not block writes to them.
        op.execute(
            f"ALTER TABLE audit_event DROP CONSTRAINT {name}, ADD CONSTRAINT {name}"
            f" FOREIGN KEY ({column}) REFERENCES {referred} (id) ON DELETE {after} NOT VALID"
        )
        op.execute(f"ALTER TABLE audit_event VALIDATE CONSTRAINT {name}")


def _sqlite_references(before: str, after: str) -> None:
    """In place, by rewriting the stored CREATE TABLE text (the rows stay as they are).

    SQLite's documented way for changes that leave the stored rows valid
    (https://www.sqlite.org/lang_altertable.html), as in migration c7e78b9524c9: batch mode's
    copy of the table would need to delete the old table's rows, which the guard refuses.
    """
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_event'"
    ).scalar_one()
    rewritten = sql
    for column, referred in REFERENCES:
        clause = f"FOREIGN KEY({column}) REFERENCES {referred} (id) ON DELETE"
        if rewritten.count(f"{clause} {before}") != 1:
            raise RuntimeError(f"audit_event: the reference of {column} is not the expected one")
        rewritten = rewritten.replace(f"{clause} {before}", f"{clause} {after}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'audit_event'",
            (rewritten,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check after changing audit_event: {problems}")


def upgrade() -> None:
    _references("SET NULL", "RESTRICT")
    op.create_index(INDEX, "audit_event", ["clinic_id", "occurred_at"], unique=False)
    op.create_index(
        PARTIAL_INDEX,
        "audit_event",
        ["occurred_at", "id"],
        unique=False,
        postgresql_where=WITHOUT_CLINIC,
        sqlite_where=WITHOUT_CLINIC,
    )
    if op.get_bind().dialect.name == "sqlite":
        for _name, statement in SQLITE_GUARD:
            op.execute(statement)
    else:
        for statement in POSTGRESQL_GUARD:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, _statement in SQLITE_GUARD:
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER audit_event_unchangeable ON audit_event")
        op.execute("DROP FUNCTION audit_event_unchangeable()")
    op.drop_index(PARTIAL_INDEX, table_name="audit_event")
    op.drop_index(INDEX, table_name="audit_event")
    _references("RESTRICT", "SET NULL")
