"""score change from baseline, analyst role

Each score stores its change from the course's baseline (both classifications, the improvement
and the reliable change index) so that the patient list, its filters and the cohort report
aggregate in SQL. Staff gain an `analyst` role (exports and reports, no patient pages).

Revision ID: 5c0e1a7d2b11
Revises: ae00a4bb4c6e
Create Date: 2026-11-30 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0e1a7d2b11"
down_revision: str | None = "ae00a4bb4c6e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES_BEFORE = "'admin', 'coordinator', 'clinician'"
ROLES_AFTER = "'admin', 'coordinator', 'clinician', 'analyst'"


def _columns() -> list[sa.Column]:
    return [
        sa.Column("improvement", sa.Double(), nullable=True),
        sa.Column("percent_improvement", sa.Double(), nullable=True),
        sa.Column("reliable_change_index", sa.Double(), nullable=True),
        sa.Column("change_by_threshold", sa.String(length=24), nullable=True),
        sa.Column("change_by_individual", sa.String(length=24), nullable=True),
        sa.Column("change_reason", sa.String(length=200), nullable=True),
    ]


def _roles(before: str, after: str) -> None:
    """Widen or narrow the role CHECK constraint.

    On SQLite, in place: the stored CREATE TABLE text is rewritten (SQLite's documented way for
    changes that leave the rows as they are, https://www.sqlite.org/lang_altertable.html),
    instead of copying a table that other tables' foreign keys point at.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        # The names as the naming convention made them ("ck_<table>_<name>" of the enum "role").
        op.drop_constraint(op.f("ck_clinic_membership_role"), "clinic_membership", type_="check")
        op.create_check_constraint(
            op.f("ck_clinic_membership_role"), "clinic_membership", f"role IN ({after})"
        )
        return
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'clinic_membership'"
    ).scalar_one()
    rewritten = sql.replace(f"role IN ({before})", f"role IN ({after})")
    if rewritten == sql:
        raise RuntimeError("clinic_membership: the role constraint is not the expected one")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'clinic_membership'",
            (rewritten,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check after changing clinic_membership: {problems}")


def upgrade() -> None:
    for column in _columns():
        op.add_column("score", column)
    _roles(ROLES_BEFORE, ROLES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM clinic_membership WHERE role = 'analyst'")
    _roles(ROLES_AFTER, ROLES_BEFORE)
    with op.batch_alter_table("score", recreate="never") as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
