"""`proms backup` and `proms restore`: a real database with enrolments, answers, scores and audit
events is backed up, changed, and restored; every table's rows and every score come back, and
the audit chain still verifies. On SQLite and on PostgreSQL (in the test run's own schema: the
CI role may not create databases, but owns the schemas it makes)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import Result
from flask import Flask

from proms import audit_chain, backup, create_app, schema
from proms.auth.models import AuditEvent, Role
from proms.auth.services import RequestInfo, record_event
from proms.db import Base, db
from proms.outcomes.models import Score
from tests.care import scored
from tests.helpers import World, add_patient, app_config
from tests.test_migrations import alembic_config


def _invoke(app: Flask, command_: Any, *args: str | Path) -> Result:
    return app.test_cli_runner().invoke(command_, [str(arg) for arg in args])


def _fill(world: World) -> None:
    """Two courses with answered questionnaires (responses, answers, scores, alerts, the
    outbox), notes of who saw what: the data a clinic has."""
    coordinator = world.user("a", Role.COORDINATOR)
    first = scored.course(world.patients_a[0], world.protocol_a, days_ago=100)
    scored.infusions(first, missed=(2,))
    scored.answer(first, "baseline", {"promis-pi-4a": 4, "peg": 7})
    scored.answer(first, "end_of_course", {"promis-pi-4a": 2, "peg": 3}, by=coordinator)
    scored.answer(first, "month_1", {"promis-pi-4a": 5, "peg": 9})
    second = scored.course(world.patients_b[0], world.protocol_b, days_ago=40)
    scored.answer(second, "baseline")
    for patient in (*world.patients_a, *world.patients_b):
        record_event(
            db.session,
            "patient.view",
            actor=world.user("a", Role.CLINICIAN),
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            origin=RequestInfo(ip_address="203.0.113.7", user_agent="test"),
            detail={"page": "course"},
        )
    db.session.commit()


def _scores_checksum() -> str:
    """SHA-256 of every score row, every column, in id order."""
    table = Score.__table__
    digest = hashlib.sha256()
    with db.engine.connect() as connection:
        for row in connection.execute(sa.select(table).order_by(table.c.id)):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _state() -> tuple[dict[str, int], str]:
    return backup.row_counts(db.engine), _scores_checksum()


def _change_everything(world: World) -> None:
    """What a restore must undo: new rows, changed rows, deleted rows, new audit events."""
    add_patient(world.clinic_a, "after-the-backup")
    first = db.session.scalars(sa.select(Score).order_by(Score.id)).first()
    assert first is not None
    first.n_answered += 1
    db.session.execute(sa.delete(Score).where(Score.id > first.id + 3))
    record_event(db.session, "logout", actor=world.user("a", Role.ADMIN))
    db.session.commit()


def test_back_up_change_restore_and_compare(world: World, app: Flask, tmp_path: Path) -> None:
    _fill(world)
    before = _state()
    counts, _ = before
    assert counts["score"] > 10
    assert counts["survey_response"] >= 4
    assert counts["audit_event"] >= 6
    file = tmp_path / "proms.backup"

    made = _invoke(app, backup.backup_command, file)
    assert made.exit_code == 0, made.output
    assert f"to {file}" in made.output
    assert backup.file_kind(file) == (
        "sqlite" if db.engine.dialect.name == "sqlite" else "postgresql"
    )

    _change_everything(world)
    assert _state() != before

    db.session.remove()
    restored = _invoke(app, backup.restore_command, file, "--force")
    assert restored.exit_code == 0, restored.output
    assert "The schema is at this proms' head" in restored.output
    assert _state() == before
    refused = pytest.raises(sa.exc.IntegrityError, match="never changed or deleted")
    with refused, db.engine.begin() as connection:  # the restored log keeps its guard
        connection.execute(sa.update(AuditEvent).values(action="patient.list"))
    verified = _invoke(app, audit_chain.verify_command)
    assert verified.exit_code == 0, verified.output
    assert f"{counts['audit_event']} events" in verified.output


def test_restore_refuses_a_database_with_data_unless_forced(
    world: World, app: Flask, tmp_path: Path
) -> None:
    _fill(world)
    file = tmp_path / "proms.backup"
    assert _invoke(app, backup.backup_command, file).exit_code == 0
    _change_everything(world)
    changed = _state()
    db.session.remove()
    refused = _invoke(app, backup.restore_command, file)
    assert refused.exit_code == 1
    assert "holds data" in refused.output
    assert "--force" in refused.output
    assert _state() == changed  # nothing touched


def test_backup_refuses_to_overwrite_a_file(app: Flask, tmp_path: Path) -> None:
    file = tmp_path / "taken"
    file.write_text("keep me")
    result = _invoke(app, backup.backup_command, file)
    assert result.exit_code == 1
    assert "exists" in result.output
    assert file.read_text() == "keep me"


def test_restore_refuses_a_file_of_the_other_kind(world: World, app: Flask, tmp_path: Path) -> None:
    other = tmp_path / "other.backup"
    if db.engine.dialect.name == "sqlite":
        other.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 64)
        said = "is a PostgreSQL backup, but this proms uses SQLite"
    else:
        sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
        said = "is a SQLite backup, but this proms uses PostgreSQL"
    before = _state()
    result = _invoke(app, backup.restore_command, other, "--force")
    assert result.exit_code == 1
    assert said in result.output
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    result = _invoke(app, backup.restore_command, junk, "--force")
    assert result.exit_code == 1
    assert "is not a proms backup" in result.output
    assert _state() == before


def test_an_older_backup_says_to_upgrade(world: World, app: Flask, tmp_path: Path) -> None:
    cfg = alembic_config(str(app.config["SQLALCHEMY_DATABASE_URI"]))
    _fill(world)
    db.session.remove()
    command.stamp(cfg, "1b2c3d4e5f01", purge=True)  # as if made by the proms before this one
    file = tmp_path / "older.backup"
    try:
        assert _invoke(app, backup.backup_command, file).exit_code == 0
        command.stamp(cfg, "head", purge=True)
        result = _invoke(app, backup.restore_command, file, "--force")
        assert result.exit_code == 0, result.output
        assert "The backup is older than this proms" in result.output
        assert "proms db upgrade" in result.output
    finally:
        command.stamp(cfg, "head", purge=True)


def test_a_backup_taken_while_the_app_writes_is_one_moment(
    world: World, app: Flask, make_app: Any, tmp_path: Path
) -> None:
    """Writers keep adding audit events while the backup runs (the app is not stopped); the
    copy holds a whole number of transactions: its chain verifies."""
    _fill(world)
    views = len(world.patients_a) + len(world.patients_b)
    stop, writing = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    writer = make_app()  # built here: create_app is not threaded

    def write() -> None:
        try:
            with writer.app_context():
                while not stop.is_set():
                    record_event(db.session, "patient.view", detail={"n": 1})
                    record_event(db.session, "logout")
                    db.session.commit()
                    writing.set()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)
            writing.set()

    thread = threading.Thread(target=write)
    thread.start()
    writing.wait()
    try:
        file = tmp_path / "live.backup"
        made = _invoke(app, backup.backup_command, file)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert made.exit_code == 0, made.output
    db.session.remove()
    assert _invoke(app, backup.restore_command, file, "--force").exit_code == 0
    with db.engine.connect() as connection:
        verdict = audit_chain.verify(connection, audit_chain.chain_key())
        pairs = connection.execute(
            sa.select(AuditEvent.action, sa.func.count()).group_by(AuditEvent.action)
        ).all()
    assert verdict.intact, verdict.problems
    counted = dict(pairs)
    # Each writer's transaction is in the copy whole or not at all (and _fill's views).
    assert counted["patient.view"] - counted["logout"] == views
    assert counted["logout"] > 0


def test_the_password_goes_in_the_environment_only() -> None:
    url = sa.make_url(
        "postgresql+psycopg://proms:s3cret-pw@db.example.org:5433/proms"
        "?options=-csearch_path%3Dclinic_x&sslmode=require"
    )
    target = backup.postgres_target(url)
    assert target.env["PGPASSWORD"] == "s3cret-pw"
    assert target.env["PGHOST"] == "db.example.org"
    assert target.env["PGPORT"] == "5433"
    assert target.env["PGSSLMODE"] == "require"
    assert target.schema == "clinic_x"


def test_the_output_never_shows_the_password(world: World, app: Flask, tmp_path: Path) -> None:
    """CI's PostgreSQL URL has a password: the output names the database without it."""
    url = str(app.config["SQLALCHEMY_DATABASE_URI"])
    result = _invoke(app, backup.backup_command, tmp_path / "proms.backup")
    assert result.exit_code == 0, result.output
    assert f"Backed up {schema.display_url(url)} " in result.output
    password = sa.make_url(url).password
    # Where a URL would carry it: CI's password is also its role's name, which may show.
    assert password is None or f":{password}@" not in result.output


def test_a_missing_postgresql_client_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        backup.BackupError, match=r"no pg_dump for PostgreSQL 99 or later.*--pg-bin"
    ):
        backup.find_tool("pg_dump", 99, tmp_path)


def test_a_backup_of_another_database(
    world: World, app: Flask, tmp_path: Path, scratch_databases: Any
) -> None:
    """SQLite: a copy of another proms database restores (moving to a new machine).
    PostgreSQL: a dump of another schema is refused, since its tables would land there."""
    other_url = scratch_databases.new_url()
    engine = sa.create_engine(other_url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(other_url), "head")
    other = create_app(app_config(other_url))
    file = tmp_path / "other.backup"
    with other.app_context():
        assert _invoke(other, backup.backup_command, file).exit_code == 0
        db.session.remove()
        db.engine.dispose()
    _fill(world)
    before = _state()
    db.session.remove()
    result = _invoke(app, backup.restore_command, file, "--force")
    if db.engine.dialect.name == "sqlite":
        assert result.exit_code == 0, result.output
        assert sum(backup.row_counts(db.engine).values()) == 0
    else:
        assert result.exit_code == 1
        assert "holds the tables of schema scratch_" in result.output
        assert _state() == before
