"""The audit log's hash chain: each event carries a keyed hash of itself and of the one before.

Why a chain: the database triggers stop the application from changing an event, not someone
with the database's owner rights, who can drop a trigger. The chain makes such a change visible:
`proms audit verify` recomputes every link and names each event that was edited, inserted out
of turn, or whose predecessor was deleted.

Why keyed (HMAC-SHA256 with AUDIT_CHAIN_KEY, a secret that is not in the database): whoever
can edit the table could recompute a plain SHA-256 chain after an edit. With the key kept
outside the database (an environment variable, like SECRET_KEY), a forged or re-linked event
no longer matches. The newest link (the "head") is printed by `verify`; kept elsewhere and
given back with `--head`, it also catches deletion of the newest events, which no chain alone
can. See docs/audit.md.

Where the chain is made: at the flush that inserts the events (a SQLAlchemy `before_flush`
listener), so `record_event` stays the one insert point and a caller can still flush for an
event's id. Events recorded during a page view wait for the commit (`record_event(...,
at_commit=True)`), so the chain's lock is held only while the transaction commits, not while a
page renders. On PostgreSQL a transaction-scoped advisory lock serialises the chain (taken
before the newest link is read, released at commit or rollback); on SQLite every writing
transaction already holds the database's one write lock (proms/db.py). A unique index on
`prev_hash` makes a fork impossible even so: a second event after the same link is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import click
from flask import current_app, has_app_context
from flask.cli import with_appcontext
from sqlalchemy import Connection, and_, event, select, text
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction, scoped_session

from proms import config as defaults
from proms.auth.models import AuditEvent
from proms.db import utcnow

# The link before the first event.
GENESIS = "0" * 64
# The serialisation's version: a new audit_event column means a new version, not a silent change.
VERSION = 1
# The fields of an event that its hash covers, in this order (all of them but the chain's own).
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
# pg_advisory_xact_lock's key for the chain: "prom" in the high 32 bits, the audit_event table's
# oid in the low ones, so that each schema's log (tests, several deployments in one database)
# has a chain, and a lock, of its own.
ADVISORY_LOCK = text(
    "SELECT pg_advisory_xact_lock((CAST(x'70726f6d' AS bigint) << 32)"
    " | CAST(CAST(CAST('audit_event' AS regclass) AS oid) AS bigint))"
)
MIN_KEY_LENGTH = 32
# session.info key of the events that wait for the commit.
AT_COMMIT = "proms_audit_at_commit"


def canonical(values: Mapping[str, Any]) -> bytes:
    """An event's fields as bytes that do not depend on the database or the driver.

    Times are UTC ISO 8601 with microseconds; the detail goes through JSON once first, so it is
    hashed as it is stored (tuples become lists, integer keys strings), then with sorted keys.
    """
    doc: dict[str, Any] = {"v": VERSION}
    for name in FIELDS:
        value = values[name]
        if name == "occurred_at":
            value = _utc_text(value)
        elif name == "detail":
            value = json.loads(json.dumps(value if value is not None else {}))
        elif name == "is_success":
            value = bool(value)
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is None:  # SQLite's stored text, read without the UTC type
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link(key: bytes, prev_hash: str, values: Mapping[str, Any]) -> str:
    """The event's hash: HMAC-SHA256 of the previous link and the event's canonical bytes."""
    message = prev_hash.encode("utf-8") + b"\n" + canonical(values)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def key_problem(config: Mapping[str, Any]) -> str | None:
    """Why this AUDIT_CHAIN_KEY must not be used in production; None when it may."""
    key = str(config.get("AUDIT_CHAIN_KEY") or "")
    if config.get("ENV") != "production":
        return None if key else "AUDIT_CHAIN_KEY is empty"
    if key and key != defaults.AUDIT_CHAIN_KEY and len(key) >= MIN_KEY_LENGTH:
        return None
    return (
        "in production with a missing, default or short AUDIT_CHAIN_KEY: set "
        "PROMS_AUDIT_CHAIN_KEY (or AUDIT_CHAIN_KEY in instance/config.py) to at least 32 random "
        "characters, the key the log was written with (see docs/audit.md)"
    )


def chain_key(session: Session | None = None) -> bytes:
    """The key of the app in use (a session may name its own, for tools and tests)."""
    if session is not None and "audit_chain_key" in session.info:
        return bytes(session.info["audit_chain_key"])
    if has_app_context():
        return str(current_app.config["AUDIT_CHAIN_KEY"]).encode("utf-8")
    return defaults.AUDIT_CHAIN_KEY.encode("utf-8")


def values_of(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in FIELDS}


# Writing -----------------------------------------------------------------------------------------


def lock_and_read_head(connection: Connection) -> tuple[int, str]:
    """Serialise the chain for the rest of this transaction; the newest (id, link)."""
    if connection.dialect.name == "postgresql":
        connection.execute(ADVISORY_LOCK)
    head = connection.execute(
        select(AuditEvent.id, AuditEvent.chain_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    if head is None:
        return 0, GENESIS
    return int(head.id), str(head.chain_hash)


def _new_ids(connection: Connection, head_id: int, count: int) -> list[int]:
    """Ids for `count` new events, rising in chain order."""
    if connection.dialect.name == "postgresql":
        # Drawn under the lock (one round trip for a whole import), so ids rise in chain order;
        # a rollback leaves a gap, which the chain does not mind (it checks links, not numbers).
        drawn = connection.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('audit_event', 'id'))"
                " FROM generate_series(1, :count)"
            ),
            {"count": count},
        ).scalars()
        return sorted(int(found) for found in drawn)
    # SQLite: under the write lock; what it would choose itself.
    return list(range(head_id + 1, head_id + 1 + count))


@event.listens_for(Session, "before_flush")
def _chain_new_events(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Give each event this flush inserts its id, its previous link and its hash."""
    new = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not new:
        return
    connection = session.connection()
    head_id, head_hash = lock_and_read_head(connection)
    key = chain_key(session)
    ids = _new_ids(connection, head_id, len(new))
    for obj, new_id in zip(new, ids, strict=True):  # in the order they were added
        if obj.occurred_at is None:
            obj.occurred_at = utcnow()
        if obj.is_success is None:
            obj.is_success = True
        if obj.detail is None:
            obj.detail = {}
        obj.id = new_id
        obj.prev_hash = head_hash
        obj.chain_hash = link(key, head_hash, values_of(obj))
        head_hash = obj.chain_hash


def add_at_commit(session: Session, obj: AuditEvent) -> None:
    """Insert the event when the session commits (dropped if it rolls back instead)."""
    if isinstance(session, scoped_session):  # db.session: the request's own Session
        session = session()
    if not session.in_transaction():
        # So that a rollback, even before anything was read or written, ends it (and the
        # waiting events with it): a rollback without a transaction fires no event.
        session.begin()
    session.info.setdefault(AT_COMMIT, []).append(obj)


@event.listens_for(Session, "before_commit")
def _add_waiting_events(session: Session) -> None:
    waiting = session.info.pop(AT_COMMIT, None)
    if waiting:
        session.add_all(waiting)  # inserted by the commit's own flush, which follows


@event.listens_for(Session, "after_transaction_end")
def _drop_waiting_events(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(AT_COMMIT, None)


# Verifying ---------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `verify` found: how many events, the newest link, and each problem, by event."""

    events: int = 0
    head_id: int | None = None
    head_hash: str = GENESIS
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


# Problems described in full; after these, only counted (a wholesale forgery is thousands).
MAX_DESCRIBED = 50


def verify(connection: Connection, key: bytes, *, head: str | None = None) -> Verdict:
    """Walk the log in id order and check each event's hash and its link to the one before."""
    verdict = Verdict()
    previous_id: int | None = None
    previous_hash = GENESIS
    for row in _rows(connection):
        verdict.events += 1
        values = {name: row[name] for name in FIELDS}
        prev_hash = row["prev_hash"] or ""
        stored = row["chain_hash"] or ""
        try:
            expected = link(key, prev_hash, values)
        except (TypeError, ValueError, AttributeError):  # a forged row proms could never write
            expected = ""
        if not expected or not hmac.compare_digest(expected, stored):
            verdict.problems.append(
                (
                    row["id"],
                    "its contents do not match its hash: changed after it was written, or not "
                    "written by proms",
                )
            )
        if prev_hash != previous_hash:
            if len(verdict.problems) < MAX_DESCRIBED:
                why = _broken_link(connection, row["id"], prev_hash, previous_id)
            else:  # each diagnosis reads the table: not for thousands of forged rows
                why = "it does not follow the event before it"
            verdict.problems.append((row["id"], why))
        previous_id, previous_hash = row["id"], stored
    verdict.head_id, verdict.head_hash = previous_id, previous_hash
    if head is not None and head != verdict.head_hash:
        found = connection.execute(
            select(AuditEvent.id).where(AuditEvent.chain_hash == head)
        ).scalar()
        if found is None:
            verdict.problems.append(
                (
                    None,
                    f"the head you kept ({head[:16]}...) is not in the log: its newest events "
                    "were deleted, or the log was replaced",
                )
            )
    return verdict


def _rows(connection: Connection) -> Iterator[Mapping[str, Any]]:
    table = AuditEvent.__table__
    columns = [table.c[name] for name in (*FIELDS, "prev_hash", "chain_hash")]
    result = connection.execution_options(yield_per=1000).execute(
        select(*columns).order_by(table.c.id)
    )
    for row in result:
        yield row._mapping


def _broken_link(
    connection: Connection, event_id: int, prev_hash: str, previous_id: int | None
) -> str:
    """Why the event does not follow the one before it: which events went missing or came in."""
    before = f"#{previous_id}" if previous_id is not None else "the start of the log"
    follows: int | None = None  # the chain's first event: whatever is before it came in
    if prev_hash != GENESIS:
        follows = connection.execute(
            select(AuditEvent.id).where(AuditEvent.chain_hash == prev_hash)
        ).scalar()
    if follows is None and prev_hash != GENESIS:
        return (
            f"the event it follows is missing: an event between {before} and #{event_id} was "
            "deleted (or this event's link was changed)"
        )
    if follows is not None and follows > event_id:
        return f"it follows #{follows}, which comes after it: the order of events was changed"
    earlier = AuditEvent.id < event_id
    if follows is not None:
        earlier = and_(AuditEvent.id > follows, earlier)
    between = connection.execute(
        select(AuditEvent.id).where(earlier).order_by(AuditEvent.id).limit(10)
    ).scalars()
    ids = ", ".join(f"#{found}" for found in between)
    after = f"#{follows}" if follows is not None else "the start of the chain"
    return f"it follows {after}: the events between ({ids}) are not in the chain: inserted"


# `proms audit verify` ----------------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
@click.option(
    "--head",
    metavar="HASH",
    help="A head printed by an earlier verify: fail if it is no longer in the log.",
)
@with_appcontext
@click.pass_context
def verify_command(ctx: click.Context, head: str | None) -> None:
    """Check the audit log's hash chain: exit 0 if intact, else name each broken event, exit 1."""
    # A database without the chain's columns fails here; `proms` then says that it needs
    # `proms db upgrade` (proms/cli.py).
    from proms.db import db

    config = current_app.config
    problem = key_problem(config)
    if problem is not None:
        click.echo(f"proms: {problem}", err=True)
        ctx.exit(1)
    key = str(config["AUDIT_CHAIN_KEY"]).encode("utf-8")
    with db.engine.connect() as connection:
        verdict = verify(connection, key, head=head)
    if verdict.intact:
        where = (
            f"head #{verdict.head_id} {verdict.head_hash}"
            if verdict.head_id is not None
            else "the log is empty"
        )
        click.echo(f"Audit log intact: {verdict.events} events, {where}")
        return
    for event_id, why in verdict.problems[:MAX_DESCRIBED]:
        click.echo(f"event #{event_id}: {why}" if event_id is not None else why)
    more = len(verdict.problems) - MAX_DESCRIBED
    if more > 0:
        click.echo(f"... and {more} more problems")
    click.echo(
        f"Audit log NOT intact: {len(verdict.problems)} problems in {verdict.events} events",
        err=True,
    )
    ctx.exit(1)
