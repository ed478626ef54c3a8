"""Audit rows are written once: the database refuses to change or delete them, and no code tries.

The guard is in the database (triggers, on SQLite and PostgreSQL alike), so it holds for any
code path, an ORM flush or a hand-written statement; it exists in the schema the tests build
from the models and in the migrated one. A static check keeps the application's own code from
ever issuing such a statement (it would fail at run time; this finds it before).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask

from proms.admin.models import Clinic, Patient
from proms.admin.services import create_clinic
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.auth.passwords import hasher_from_config
from proms.auth.services import RequestInfo, create_staff, record_event
from proms.db import db
from tests.helpers import PASSWORD, World, add_patient
from tests.test_migrations import alembic_config

PROMS = Path(__file__).resolve().parents[2] / "proms"
REFUSED = "audit events are never changed or deleted"


def _recorded(world: World) -> AuditEvent:
    event = record_event(
        db.session,
        "patient.view",
        actor=world.user("a", Role.CLINICIAN),
        clinic_id=world.clinic_a.id,
        patient_id=world.patients_a[0].id,
        origin=RequestInfo(ip_address="203.0.113.9", user_agent="test"),
        detail={"page": "test"},
    )
    db.session.commit()
    return event


def _stored(event_id: int) -> tuple[object, ...]:
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.patient_id).where(
                AuditEvent.id == event_id
            )
        ).one()
    return tuple(row)


@pytest.mark.parametrize(
    "statement",
    [
        lambda event_id: (
            sa.update(AuditEvent).where(AuditEvent.id == event_id).values(action="patient.list")
        ),
        lambda event_id: (
            sa.update(AuditEvent).where(AuditEvent.id == event_id).values(patient_id=None)
        ),
        lambda event_id: sa.delete(AuditEvent).where(AuditEvent.id == event_id),
        lambda _: sa.delete(AuditEvent),
    ],
    ids=["update", "update-null-patient", "delete", "delete-all"],
)
def test_statements_are_refused(world: World, statement) -> None:  # type: ignore[no-untyped-def]
    event = _recorded(world)
    before = _stored(event.id)
    with pytest.raises(sa.exc.IntegrityError, match=REFUSED):
        db.session.execute(statement(event.id))
    db.session.rollback()
    assert _stored(event.id) == before


def test_the_orm_cannot_change_or_delete_one(world: World) -> None:
    event = _recorded(world)
    before = _stored(event.id)
    event.detail = {"page": "forged"}
    with pytest.raises(sa.exc.IntegrityError, match=REFUSED):
        db.session.commit()
    db.session.rollback()
    db.session.delete(event)
    with pytest.raises(sa.exc.IntegrityError, match=REFUSED):
        db.session.commit()
    db.session.rollback()
    assert _stored(event.id) == before


def _named(app: Flask, slug: str, named: str) -> tuple[type[Any], int]:
    """A new clinic, staff member or patient (nothing else points at it): its model and id."""
    clinic = create_clinic(
        db.session, slug=slug, name=f"Clinic {slug}", time_zone="UTC", offer_bundled_protocol=False
    )
    if named == "clinic":
        return Clinic, clinic.id
    if named == "patient":
        return Patient, add_patient(clinic, f"{slug}-1").id
    user = create_staff(
        db.session,
        hasher_from_config(app.config),
        email=f"staff@{slug}.example.org",
        full_name=f"Staff {slug}",
        password=PASSWORD,
        clinic=clinic,
        role=Role.CLINICIAN,
    )
    return StaffUser, user.id


@pytest.mark.parametrize("named", ["clinic", "actor", "patient"])
def test_what_an_event_names_cannot_be_deleted_under_it(app: Flask, named: str) -> None:
    """ON DELETE RESTRICT: deleting the clinic (staff member, patient) an event names is refused,
    where SET NULL would have updated the event. proms deletes none of them (staff are
    deactivated); the same delete of a twin no event names goes through, so it is the event
    that refuses it."""
    model, seen = _named(app, "seen", named)
    _, unseen = _named(app, "unseen", named)
    names: dict[str, Any] = {
        "clinic": {"clinic_id": seen},
        "actor": {"actor": db.session.get(StaffUser, seen)},
        "patient": {"patient_id": seen},
    }[named]
    event = record_event(db.session, "test.event", **names)
    db.session.commit()
    before = _stored(event.id)
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)foreign key"):
        db.session.execute(sa.delete(model).where(model.id == seen))
    db.session.rollback()
    assert _stored(event.id) == before
    db.session.execute(sa.delete(model).where(model.id == unseen))
    db.session.commit()
    assert db.session.get(model, unseen) is None


def test_the_migrated_schema_has_the_guard(scratch_databases) -> None:  # type: ignore[no-untyped-def]
    """Migration f0a0d1700b12 makes the same guard; its downgrade takes it away again."""
    url = scratch_databases.new_url()
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO audit_event"
                    " (occurred_at, action, is_success, detail, prev_hash, chain_hash)"
                    " VALUES ('2026-03-02 15:00:00+00:00', 'logout', true, '{}', :genesis, :h)"
                ),
                {"genesis": "0" * 64, "h": "1" * 64},
            )
        for statement in (
            "UPDATE audit_event SET action = 'login.succeeded'",
            "DELETE FROM audit_event",
        ):
            with pytest.raises(sa.exc.IntegrityError, match=REFUSED), engine.begin() as conn:
                conn.execute(sa.text(statement))
        command.downgrade(cfg, "c3d4e5f60712")  # the revision before the guard
        with engine.begin() as connection:
            assert connection.execute(sa.text("DELETE FROM audit_event")).rowcount == 1
    finally:
        engine.dispose()


# No code path tries ----------------------------------------------------------------------------

WRITE_SQL = re.compile(r"\b(UPDATE\s+audit_event|DELETE\s+FROM\s+audit_event)\b", re.I)
AUDIT_NAMES = ("AuditEvent", "audit_event")


def audit_writes(source: str, filename: str = "<source>") -> list[str]:
    """Where `source` updates or deletes audit events: update()/delete() of AuditEvent (as a
    statement or a query method) or SQL text that does."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if WRITE_SQL.search(node.value):
                found.append(f"{filename}:{node.lineno}: SQL {node.value[:60]!r}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ("update", "delete") and any(
                audit in ast.unparse(node) for audit in AUDIT_NAMES
            ):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "session.execute(update(AuditEvent).values(action='x'))",
        "session.execute(sa.delete(AuditEvent).where(AuditEvent.id == 1))",
        "session.query(AuditEvent).filter_by(id=1).delete()",
        "AuditEvent.__table__.update().values(detail={})",
        "conn.exec_driver_sql('DELETE FROM audit_event WHERE id = 1')",
        "op.execute('update audit_event set action = 1')",
    ],
)
def test_the_check_finds_writes(source: str) -> None:
    assert audit_writes(source)


def test_no_code_updates_or_deletes_audit_events() -> None:
    found = [
        problem
        for path in sorted(PROMS.rglob("*.py"))
        for problem in audit_writes(path.read_text(encoding="utf-8"), str(path.relative_to(PROMS)))
    ]
    assert not found, "audit events are written once, never changed:\n" + "\n".join(found)
