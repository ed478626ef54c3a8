"""audit hash chain

Each audit event gets `prev_hash` (the link of the event before it) and `chain_hash` (an
HMAC-SHA256, keyed with AUDIT_CHAIN_KEY, of that link and the event's fields), and a unique index
on `prev_hash` so the chain cannot fork. The events already stored are chained here, in id order,
exactly as proms/audit_chain.py chains new ones (its serialisation version 1, copied: migrations
never import proms, and this one must keep computing what it computed).

The key: PROMS_AUDIT_CHAIN_KEY from the environment of `proms db upgrade` (or the Alembic
attribute "audit_chain_key"), else the development default; set it before upgrading, since the
chain is computed with it (docs/audit.md).

The guard triggers refuse the UPDATE that fills the new columns: they are dropped and created
again inside this migration's transaction. On SQLite the columns become NOT NULL by rewriting the
stored CREATE TABLE text, as in migration f0a0d1700b12 (a batch copy of the table would delete
its rows).

Revision ID: 1b2c3d4e5f02
Revises: 1b2c3d4e5f01
Create Date: 2026-11-30 06:01:00+00:00
"""

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "1b2c3d4e5f02"
down_revision: str | None = "1b2c3d4e5f01"
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
INDEX = "ix_audit_event_prev_hash"
DEFAULT_KEY = "dev-only-insecure-audit-chain-key"
GENESIS = "0" * 64
FIELDS = (
    "id",
    "occurred_at",
    "action",
    "is_success",
    "actor_id",
    "actor_email",
    "clinic_id",
    "patient_id",
    "ip_address",
    "user_agent",
    "detail",
)
EVENTS = sa.table(
    "audit_event",
    sa.column("id", sa.Integer),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("action", sa.String),
    sa.column("is_success", sa.Boolean),
    sa.column("actor_id", sa.Integer),
    sa.column("actor_email", sa.String),
    sa.column("clinic_id", sa.Integer),
    sa.column("patient_id", sa.Integer),
    sa.column("ip_address", sa.String),
    sa.column("user_agent", sa.String),
    sa.column("detail", sa.JSON),
    sa.column("prev_hash", sa.String),
    sa.column("chain_hash", sa.String),
)


def _canonical(values: dict[str, Any]) -> bytes:
    doc: dict[str, Any] = {"v": 1}
    for name in FIELDS:
        value = values[name]
        if name == "occurred_at":
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif name == "detail":
            value = json.loads(json.dumps(value if value is not None else {}))
        elif name == "is_success":
            value = bool(value)
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _key() -> bytes:
    key = (
        os.environ.get("PROMS_AUDIT_CHAIN_KEY")
        or context.config.attributes.get("audit_chain_key")
        or DEFAULT_KEY
    )
    return str(key).encode("utf-8")


def _drop_guard(sqlite: bool) -> None:
    if sqlite:
        for name, _statement in SQLITE_GUARD:
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER audit_event_unchangeable ON audit_event")
        op.execute("DROP FUNCTION audit_event_unchangeable()")


def _create_guard(sqlite: bool) -> None:
    if sqlite:
        for _name, statement in SQLITE_GUARD:
            op.execute(statement)
    else:
        for statement in POSTGRESQL_GUARD:
            op.execute(statement)


def _chain_existing_events() -> None:
    bind = op.get_bind()
    key = _key()
    previous = GENESIS
    rows = bind.execute(sa.select(*[EVENTS.c[name] for name in FIELDS]).order_by(EVENTS.c.id))
    links = []
    for row in rows.mappings():
        message = previous.encode("utf-8") + b"\n" + _canonical(dict(row))
        digest = hmac.new(key, message, hashlib.sha256).hexdigest()
        links.append({"event_id": row["id"], "prev": previous, "hash": digest})
        previous = digest
    if links:
        bind.execute(
            EVENTS.update()
            .where(EVENTS.c.id == sa.bindparam("event_id"))
            .values(prev_hash=sa.bindparam("prev"), chain_hash=sa.bindparam("hash")),
            links,
        )


def _sqlite_not_null(before: str, after: str) -> None:
    """Rewrite the stored CREATE TABLE text: the columns' NOT NULL on or off (rows stay)."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_event'"
    ).scalar_one()
    for column in ("prev_hash", "chain_hash"):
        if sql.count(f"{column} {before}") != 1:
            raise RuntimeError(f"audit_event: the column {column} is not the expected one")
        sql = sql.replace(f"{column} {before}", f"{column} {after}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'audit_event'",
            (sql,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check after changing audit_event: {problems}")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_guard(sqlite)
    # Plain ADD COLUMN (no batch copy): nullable first, filled, then NOT NULL.
    op.execute("ALTER TABLE audit_event ADD COLUMN prev_hash VARCHAR(64)")
    op.execute("ALTER TABLE audit_event ADD COLUMN chain_hash VARCHAR(64)")
    _chain_existing_events()
    if sqlite:
        _sqlite_not_null("VARCHAR(64)", "VARCHAR(64) NOT NULL")
    else:
        op.execute(
            "ALTER TABLE audit_event ALTER COLUMN prev_hash SET NOT NULL,"
            " ALTER COLUMN chain_hash SET NOT NULL"
        )
    op.create_index(INDEX, "audit_event", ["prev_hash"], unique=True)
    _create_guard(sqlite)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="audit_event")
    # DROP COLUMN fires no row trigger on either database (SQLite 3.35 or later).
    op.execute("ALTER TABLE audit_event DROP COLUMN chain_hash")
    op.execute("ALTER TABLE audit_event DROP COLUMN prev_hash")
