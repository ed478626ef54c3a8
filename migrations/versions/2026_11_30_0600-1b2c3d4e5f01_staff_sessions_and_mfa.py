"""staff sessions and multi-factor sign-in

Server-side records of signed-in browsers (staff_session: the cookie's token, hashed) replace
the per-account session token; staff accounts gain a TOTP secret, the last time step used and
one-time recovery codes (hashed); a clinic may require two-step sign-in of all its staff.
docs/staff-sign-in.md.

Revision ID: 1b2c3d4e5f01
Revises: e5f607182934
Create Date: 2026-11-30 06:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1b2c3d4e5f01"
down_revision: str | None = "e5f607182934"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "(ended_at IS NULL) = (end_reason IS NULL)",
            name=op.f("ck_staff_session_ended_with_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_user.id"],
            name=op.f("fk_staff_session_user_id_staff_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_session_token_hash")),
    )
    op.create_index(
        op.f("ix_staff_session_user_id_ended_at"),
        "staff_session",
        ["user_id", "ended_at"],
        unique=False,
    )
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_user.id"],
            name=op.f("fk_recovery_code_user_id_staff_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_code_code_hash")),
    )
    op.create_index(op.f("ix_recovery_code_user_id"), "recovery_code", ["user_id"], unique=False)
    # In place (recreate="never"): SQLite 3.35+ adds and drops plain columns without copying
    # the table, which other tables' foreign keys would refuse.
    with op.batch_alter_table("staff_user", recreate="never") as batch:
        # Every session cookie signed in before this is worth nothing after: staff sign in again.
        batch.drop_column("session_token")
        batch.add_column(sa.Column("mfa_secret", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("mfa_pending_secret", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("mfa_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("clinic", recreate="never") as batch:
        batch.add_column(
            sa.Column("requires_mfa", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("clinic", recreate="never") as batch:
        batch.drop_column("requires_mfa")
    with op.batch_alter_table("staff_user", recreate="never") as batch:
        batch.drop_column("mfa_last_step")
        batch.drop_column("mfa_enabled_at")
        batch.drop_column("mfa_pending_secret")
        batch.drop_column("mfa_secret")
        # NOT NULL arrives with a default; the default stays (removing it would copy the table
        # on SQLite), harmless: the code of that revision always sets a token.
        batch.add_column(
            sa.Column("session_token", sa.String(length=64), server_default="", nullable=False)
        )
    # A random token per account, as the code before this revision expects (an empty one
    # would sign nobody in); two-step sign-in and the session records go with their tables.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE staff_user SET session_token = md5(random()::text || id::text)")
    else:
        op.execute("UPDATE staff_user SET session_token = lower(hex(randomblob(16)))")
    op.drop_index(op.f("ix_recovery_code_user_id"), table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_index(op.f("ix_staff_session_user_id_ended_at"), table_name="staff_session")
    op.drop_table("staff_session")
