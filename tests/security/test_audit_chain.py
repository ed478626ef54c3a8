"""The audit log's hash chain: `proms audit verify` finds and names what was tampered with.

The tampering is done as an attacker with the database's rights would: lift the guard
(drop the trigger), change the rows, put the guard back. The chain must then name the event.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import Result
from flask import Flask

from proms import audit_chain
from proms.auth.models import POSTGRESQL_AUDIT_GUARD, SQLITE_AUDIT_GUARD, AuditEvent, Role
from proms.auth.services import RequestInfo, record_event
from proms.db import db
from tests.helpers import World
from tests.test_migrations import alembic_config


def _verify(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(audit_chain.verify_command, list(args))


def _record(world: World, count: int) -> list[int]:
    """`count` events of several kinds, committed; their ids."""
    user = world.user("a", Role.CLINICIAN)
    events, ids = [], []
    for number in range(count):
        events.append(
            record_event(
                db.session,
                "patient.view" if number % 2 else "patient.updated",
                actor=user if number % 3 else None,
                actor_email=None if number % 3 else "cli:root",
                clinic_id=world.clinic_a.id,
                patient_id=world.patients_a[0].id,
                is_success=number % 4 != 1,
                origin=RequestInfo(ip_address="203.0.113.9", user_agent="Firefox ☃"),
                detail={"n": number, "before": {"phone": "0161 496 0000"}, "x": [1.5, None]},
            )
        )
        db.session.flush()
        ids.append(events[-1].id)
        db.session.commit()
    return ids


@contextmanager
def tampering() -> Iterator[sa.Connection]:
    """A connection with the guard lifted, as the database's owner could; put back after."""
    db.session.rollback()  # the test's own read transaction would hold SQLite's writer up
    with db.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            for name, _ in SQLITE_AUDIT_GUARD:
                connection.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_event_unchangeable ON audit_event")
            connection.exec_driver_sql("DROP FUNCTION audit_event_unchangeable()")
        yield connection
        if connection.dialect.name == "sqlite":
            for _, statement in SQLITE_AUDIT_GUARD:
                connection.exec_driver_sql(statement)
        else:
            for statement in POSTGRESQL_AUDIT_GUARD:
                connection.exec_driver_sql(statement)


def _problems(result: Result) -> dict[int, str]:
    """The events the verify output names, with all it says of each."""
    found: dict[int, str] = {}
    for match in re.finditer(r"^event #(-?\d+): (.*)$", result.output, re.M):
        found[int(match[1])] = " | ".join(filter(None, (found.get(int(match[1])), match[2])))
    return found


def test_an_intact_log_verifies_in_one_line(world: World, app: Flask) -> None:
    ids = _record(world, 5)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    head = db.session.get(AuditEvent, ids[-1])
    assert head is not None
    assert lines[0] == f"Audit log intact: 5 events, head #{ids[-1]} {head.chain_hash}"


def test_an_empty_log_verifies(app: Flask) -> None:
    result = _verify(app)
    assert result.exit_code == 0
    assert "0 events, the log is empty" in result.output


def test_each_event_links_to_the_one_before(world: World) -> None:
    ids = _record(world, 3)
    rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [row.id for row in rows] == ids
    assert rows[0].prev_hash == audit_chain.GENESIS
    assert [row.prev_hash for row in rows[1:]] == [row.chain_hash for row in rows[:-1]]


def test_an_edited_event_is_named(world: World, app: Flask) -> None:
    ids = _record(world, 5)
    with tampering() as connection:
        connection.execute(
            sa.update(AuditEvent).where(AuditEvent.id == ids[2]).values(action="patient.list")
        )
    result = _verify(app)
    assert result.exit_code == 1
    assert list(_problems(result)) == [ids[2]]
    assert "do not match its hash" in _problems(result)[ids[2]]
    assert "NOT intact" in result.output


@pytest.mark.parametrize(
    "change",
    [
        {"detail": {"n": 99}},
        {"is_success": True},
        {"patient_id": None},
        {"ip_address": "198.51.100.1"},
        {"occurred_at": sa.text("occurred_at")},  # the same value, rewritten: no problem
    ],
    ids=["detail", "success", "patient", "address", "unchanged"],
)
def test_every_field_is_covered(world: World, app: Flask, change: dict[str, Any]) -> None:
    ids = _record(world, 3)
    with tampering() as connection:
        connection.execute(sa.update(AuditEvent).where(AuditEvent.id == ids[1]).values(**change))
    result = _verify(app)
    if "occurred_at" in change:
        assert result.exit_code == 0, result.output
    else:
        assert list(_problems(result)) == [ids[1]], result.output


def test_a_relinked_edit_is_found_without_the_key(world: World, app: Flask) -> None:
    """An attacker who recomputes the links with a key of their own (or plain SHA-256) still
    fails: every link from the edit on is named."""
    ids = _record(world, 4)
    rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
    stored = [audit_chain.values_of(row) for row in rows]
    forged = audit_chain.GENESIS
    with tampering() as connection:
        for values in stored:
            if values["id"] == ids[1]:
                values["action"] = "patient.list"
            link = audit_chain.link(b"a guess", forged, values)
            connection.execute(
                sa.update(AuditEvent)
                .where(AuditEvent.id == values["id"])
                .values(action=values["action"], prev_hash=forged, chain_hash=link)
            )
            forged = link
    result = _verify(app)
    assert result.exit_code == 1
    assert set(_problems(result)) == set(ids)


def test_an_inserted_event_is_named(world: World, app: Flask) -> None:
    ids = _record(world, 3)
    head = db.session.get(AuditEvent, ids[-1])
    assert head is not None
    values = {**audit_chain.values_of(head), "id": ids[-1] + 7, "action": "logout"}
    head_hash = head.chain_hash
    with tampering() as connection:
        connection.execute(
            sa.insert(AuditEvent).values(
                **values,
                prev_hash=head_hash,
                chain_hash=audit_chain.link(b"not the key", head_hash, values),
            )
        )
    result = _verify(app)
    assert result.exit_code == 1
    assert list(_problems(result)) == [ids[-1] + 7]


def test_an_event_inserted_before_the_first_is_named(world: World, app: Flask) -> None:
    ids = _record(world, 2)
    first = db.session.get(AuditEvent, ids[0])
    assert first is not None
    values = {**audit_chain.values_of(first), "id": ids[0] - 1, "action": "logout"}
    db.session.rollback()
    with tampering() as connection:
        connection.execute(sa.text("DROP INDEX ix_audit_event_prev_hash"))
        connection.execute(
            sa.insert(AuditEvent).values(
                **values,
                prev_hash=audit_chain.GENESIS,
                chain_hash=audit_chain.link(b"guess", audit_chain.GENESIS, values),
            )
        )
    try:
        result = _verify(app)
    finally:
        with tampering() as connection:  # the schema as it was, for the next tests
            connection.execute(sa.delete(AuditEvent).where(AuditEvent.id == ids[0] - 1))
            connection.execute(
                sa.text("CREATE UNIQUE INDEX ix_audit_event_prev_hash ON audit_event (prev_hash)")
            )
    problems = _problems(result)
    assert result.exit_code == 1
    assert "do not match its hash" in problems[ids[0] - 1]
    assert f"the events between (#{ids[0] - 1}) are not in the chain" in problems[ids[0]]


def test_a_deleted_event_is_found_by_the_chain(world: World, app: Flask) -> None:
    """The event after the deleted one is named: found by its link, not by a gap in the ids
    (PostgreSQL's sequences leave gaps on rollback)."""
    ids = _record(world, 5)
    with tampering() as connection:
        connection.execute(sa.delete(AuditEvent).where(AuditEvent.id == ids[2]))
    result = _verify(app)
    assert result.exit_code == 1
    problems = _problems(result)
    assert list(problems) == [ids[3]]
    assert f"an event between #{ids[1]} and #{ids[3]} was deleted" in problems[ids[3]]


def test_a_gap_in_the_ids_alone_is_not_a_problem(world: World, app: Flask) -> None:
    """A rolled-back transaction used an id (PostgreSQL) and left nothing: the chain holds."""
    _record(world, 2)
    record_event(db.session, "logout")
    db.session.flush()
    db.session.rollback()
    _record(world, 2)
    assert _verify(app).exit_code == 0


def test_a_reordered_pair_is_named(world: World, app: Flask) -> None:
    ids = _record(world, 4)
    a, b = ids[1], ids[2]
    with tampering() as connection:
        for old, new in ((a, -1), (b, a), (-1, b)):
            connection.execute(sa.update(AuditEvent).where(AuditEvent.id == old).values(id=new))
    result = _verify(app)
    problems = _problems(result)
    assert result.exit_code == 1
    # Both moved events, and the one after them, which now follows the wrong event.
    assert set(problems) == {a, b, ids[3]}
    assert "do not match its hash" in problems[a]
    assert "order of events was changed" in problems[a]


def test_deleting_the_newest_events_needs_the_kept_head(world: World, app: Flask) -> None:
    """No chain shows that its newest events are gone; the head printed earlier does."""
    ids = _record(world, 3)
    kept = _verify(app).output.split()[-1]
    with tampering() as connection:
        connection.execute(sa.delete(AuditEvent).where(AuditEvent.id == ids[-1]))
    assert _verify(app).exit_code == 0
    result = _verify(app, "--head", kept)
    assert result.exit_code == 1
    assert "its newest events were deleted" in result.output
    _record(world, 1)
    assert _verify(app, "--head", db.session.get(AuditEvent, ids[1]).chain_hash).exit_code == 0  # type: ignore[union-attr]


def test_another_key_verifies_nothing(world: World, make_app: Any) -> None:
    ids = _record(world, 2)
    other = make_app(AUDIT_CHAIN_KEY="another key entirely, 32 characters or more")
    with other.app_context():
        result = _verify(other)
    assert result.exit_code == 1
    assert set(_problems(result)) == set(ids)


def test_production_refuses_the_default_key() -> None:
    production = {"ENV": "production", "AUDIT_CHAIN_KEY": "dev-only-insecure-audit-chain-key"}
    assert "AUDIT_CHAIN_KEY" in (audit_chain.key_problem(production) or "")
    assert audit_chain.key_problem({**production, "AUDIT_CHAIN_KEY": "short"})
    assert audit_chain.key_problem({**production, "AUDIT_CHAIN_KEY": "k" * 32}) is None
    assert audit_chain.key_problem({"ENV": "test", "AUDIT_CHAIN_KEY": "x"}) is None


def test_the_chain_cannot_fork(world: World) -> None:
    """A second event after the same link is refused by the unique index on prev_hash."""
    ids = _record(world, 1)
    first = db.session.get(AuditEvent, ids[0])
    assert first is not None
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(
            sa.insert(AuditEvent).values(
                {
                    **audit_chain.values_of(first),
                    "id": ids[0] + 1,
                    "prev_hash": first.prev_hash,
                    "chain_hash": "f" * 64,
                }
            )
        )


def test_events_waiting_for_the_commit(world: World) -> None:
    """A page view's event is inserted at the commit, and dropped with a rollback."""
    event = record_event(db.session, "patient.view", at_commit=True)
    db.session.flush()
    assert event.id is None
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
    event = record_event(db.session, "patient.view", at_commit=True)
    record_event(db.session, "logout")
    db.session.commit()
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["logout", "patient.view"]
    assert event.id is not None


def test_the_hash_covers_every_column() -> None:
    """A new audit_event column needs a new serialisation version, not a silent gap."""
    covered = {*audit_chain.FIELDS, "prev_hash", "chain_hash"}
    assert covered == set(AuditEvent.__table__.columns.keys())


def test_concurrent_writers_keep_one_chain(world: World, app: Flask, make_app: Any) -> None:
    """Several threads, each with its own connection (and on SQLite its own write lock, on
    PostgreSQL the chain's advisory lock), add events at once: one unbroken chain."""
    threads, rounds = 6, 15
    clinic_id = world.clinic_a.id
    db.session.commit()
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    workers = [make_app() for _ in range(threads)]  # built here: create_app is not threaded

    def work(number: int) -> None:
        try:
            with workers[number].app_context():
                start.wait(timeout=120)  # a thread that failed breaks it, not hangs the rest
                for round_ in range(rounds):
                    record_event(
                        db.session, "patient.view", clinic_id=clinic_id, at_commit=bool(round_ % 2)
                    )
                    db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
                    record_event(db.session, "logout", detail={"worker": number, "round": round_})
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert f"{threads * rounds * 2} events" in result.output


def test_the_migration_chains_the_events_already_stored(scratch_databases: Any, app: Flask) -> None:
    """Events stored before the chain get their links in the migration, which verify accepts;
    its downgrade takes the columns away again."""
    url = scratch_databases.new_url()
    cfg = alembic_config(url)
    command.upgrade(cfg, "1b2c3d4e5f01")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for number, when in enumerate(("2026-03-02 15:00:00.250000", "2026-03-02 16:00:00")):
                connection.execute(
                    sa.text(
                        "INSERT INTO audit_event (occurred_at, action, is_success, actor_email,"
                        " detail) VALUES (:when, 'login.failed', false, 'x@example.org', :detail)"
                    ),
                    {"when": when, "detail": f'{{"b": [1, 2.5], "a": "é", "n": {number}}}'},
                )
        command.upgrade(cfg, "head")
        with engine.connect() as connection:
            verdict = audit_chain.verify(connection, audit_chain.chain_key())
        assert verdict.events == 2
        assert verdict.intact, verdict.problems
        command.downgrade(cfg, "1b2c3d4e5f01")
        columns = {column["name"] for column in sa.inspect(engine).get_columns("audit_event")}
        assert not {"prev_hash", "chain_hash"} & columns
    finally:
        engine.dispose()


def test_many_events_in_one_flush_chain_in_order(world: World, app: Flask) -> None:
    """An import records hundreds of events in one flush: each follows the one added before."""
    _record(world, 1)
    added = [record_event(db.session, "patient.created", detail={"line": n}) for n in range(120)]
    db.session.commit()
    rows = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "patient.created").order_by(AuditEvent.id)
    ).all()
    assert [row.detail["line"] for row in rows] == list(range(120))
    assert [row.id for row in rows] == [event.id for event in added]
    assert _verify(app).exit_code == 0
