"""The faults' data, made with proms' own services, and what the gates count in the database.

Each fault gets its own fresh database: `proms db upgrade` (how a deployment gets its schema),
one clinic with the bundled protocol, and patients whose baseline questionnaire is open now,
enrolled as an import enrolls them (`enroll_many`) and each given a link as `proms link` makes
one (`mint_token`). Messages for the scheduler faults are the patients' own "send me a new link"
requests (the same row `request_new_link` writes): due at once, whatever the hour. The patients
live in a zone where it is night now, so the invitations planned at enrollment wait for the
morning and the outbox holds exactly the messages a fault counts.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from faults_procs import BIN, run
from world import ZONES

# The faults run side by side in threads; proms apps are built and used in this process one at a
# time (Flask-SQLAlchemy's `db` and the mappers are process-wide).
_in_process = threading.Lock()


P = ParamSpec("P")
R = TypeVar("R")


def one_at_a_time(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _in_process:
            return function(*args, **kwargs)

    return wrapper


PROTOCOL = "ketamine-infusion-course"


@dataclass(frozen=True, slots=True)
class SeededPatient:
    patient_id: int
    email: str
    assessment_id: int
    token: str
    questions: int


# Of the load's zones, which span the day (bench/soak/world.py), the one where it is between
# 01:00 and 06:00 now: inside every clinic's quiet hours (21:00-08:00 as shipped).
def night_zone(now: dt.datetime) -> str:
    for zone in ZONES:
        if 1 <= now.astimezone(ZoneInfo(zone)).hour < 6:
            return zone
    raise RuntimeError("no zone in ZONES has night now")  # the list leaves no 5-hour gap


def app_for(database_url: str) -> Any:
    from proms import create_app

    return create_app(
        {
            "ENV": "development",
            "SECRET_KEY": "soak-faults-" + "k" * 40,
            "DATABASE_URL": database_url,
            "MESSAGE_TRANSPORT": "null",
        },
        serving=False,
    )


def make_schema(database_url: str, env: dict[str, str], how: str) -> None:
    """`proms db upgrade` (how a deployment gets its schema: the full run), or the models'
    create_all stamped at head (how the tests get it: --short, a few seconds instead of ten on a
    busy machine; tests/test_migrations.py proves the two agree)."""
    if how == "migrate":
        env = {**env, "PROMS_DATABASE_URL": database_url}
        run([str(BIN / "proms"), "db", "upgrade"], env=env)
        return
    _create_and_stamp(database_url)


@one_at_a_time
def _create_and_stamp(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    import proms.models  # noqa: F401 - every table on the metadata
    from proms.db import Base
    from proms.schema import alembic_config

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(database_url), "head")


@one_at_a_time
def seed(
    database_url: str, count: int, *, prefix: str = "F", instruments: tuple[str, ...] = ()
) -> list[SeededPatient]:
    """`count` patients with their baseline open now and a link each.

    `instruments`: the clinic's protocol keeps only these questionnaires of the bundled one (a
    copy saved as the clinic's own, as a coordinator would edit it): --short answers 7
    questions a survey instead of 35. Decided by the first seed of a database.
    """
    from sqlalchemy import insert, select

    from proms.admin.enrollment import enroll_many
    from proms.admin.models import Channel, Clinic, Enrollment, Patient, Protocol
    from proms.admin.services import bundled_protocol, create_clinic, install_protocol
    from proms.catalog.services import deployment_registry
    from proms.db import db, utcnow
    from proms.scheduling.links import mint_token
    from proms.scheduling.models import Assessment
    from proms.scheduling.planning import rule_of
    from proms.scheduling.rules import assessment_windows
    from proms.surveys.services import planned_question_count

    app = app_for(database_url)
    now = utcnow()
    zone = night_zone(now)
    with app.app_context():
        session = db.session
        clinic = session.scalar(select(Clinic).where(Clinic.slug == "faults"))
        if clinic is None:
            clinic = create_clinic(
                session,
                slug="faults",
                name="Fault Clinic",
                time_zone=zone,
                offer_bundled_protocol=False,
            )
            spec = bundled_protocol(PROTOCOL)
            if instruments:
                spec = {
                    **spec,
                    "slug": "faults-short",
                    "name": "Ketamine infusion course (faults: " + ", ".join(instruments) + ")",
                    "timepoints": [
                        {
                            **tp,
                            "instruments": [
                                i for i in tp["instruments"] if i["code"] in instruments
                            ],
                        }
                        for tp in spec["timepoints"]
                    ],
                }
            install_protocol(session, clinic, spec)
        protocol = session.scalars(select(Protocol).where(Protocol.clinic_id == clinic.id)).one()
        baseline = next(t for t in protocol.timepoints if t.key == "baseline")
        anchor = _anchor_open_now(rule_of(baseline), assessment_windows, zone, now)
        rows = [
            {
                "clinic_id": clinic.id,
                "mrn": f"{prefix}{n:06d}",
                "given_name": "Pat",
                "family_name": f"Fault {n}",
                "birth_on": dt.date(1970, 1, 1),
                "email": f"{prefix.lower()}{n}@example.org",
                "preferred_channel": Channel.EMAIL,
                "time_zone": zone,
            }
            for n in range(count)
        ]
        ids = session.scalars(
            insert(Patient).returning(Patient.id, sort_by_parameter_order=True), rows
        ).all()
        patients = session.scalars(select(Patient).where(Patient.id.in_(ids))).all()
        enroll_many(session, protocol, [(p, anchor) for p in patients], now=now)
        registry = deployment_registry(session)
        assessments = {
            a.enrollment.patient_id: a
            for a in session.scalars(
                select(Assessment)
                .join(Assessment.enrollment)
                .where(Assessment.timepoint_id == baseline.id, Enrollment.patient_id.in_(ids))
            )
        }
        questions = planned_question_count(registry, next(iter(assessments.values())))
        seeded = []
        for patient in patients:
            assessment = assessments[patient.id]
            assert assessment.is_open(now), "the seeded baseline is not open"
            token = mint_token(session, assessment, now=now, max_age=dt.timedelta(days=30))
            seeded.append(
                SeededPatient(patient.id, patient.email or "", assessment.id, token, questions)
            )
        session.commit()
        db.session.remove()
        db.engine.dispose()
    return seeded


def _anchor_open_now(rule: Any, windows: Any, zone: str, now: dt.datetime) -> dt.date:
    today = now.astimezone(ZoneInfo(zone)).date()
    for back in range(-30, 60):
        anchor = today - dt.timedelta(days=back)
        [window] = windows(anchor, [rule], zone)
        if window.opens_at <= now and window.closes_at - now > dt.timedelta(days=1):
            return anchor
    raise RuntimeError("no anchor date opens the baseline now")


@one_at_a_time
def queue_new_links(database_url: str, patients: list[SeededPatient]) -> list[int]:
    """A "send me a new link" message due now for each patient; their outbox ids."""
    from sqlalchemy import insert

    from proms.admin.models import Channel
    from proms.db import db, utcnow
    from proms.scheduling.models import Notification, NotificationKind

    app = app_for(database_url)
    now = utcnow()
    with app.app_context():
        ids = db.session.scalars(
            insert(Notification).returning(Notification.id, sort_by_parameter_order=True),
            [
                {
                    "idempotency_key": f"assessment:{p.assessment_id}:new_link:{now:%Y-%m-%dT%H}",
                    "patient_id": p.patient_id,
                    "assessment_id": p.assessment_id,
                    "kind": NotificationKind.NEW_LINK,
                    "channel": Channel.EMAIL,
                    "send_after": now,
                    "created_at": now,
                }
                for p in patients
            ],
        ).all()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return list(ids)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    email: str
    status: str
    attempts: int
    provider_message_id: str | None


def outbox(database_url: str, ids: list[int]) -> list[OutboxRow]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT n.id, p.email, n.status, n.attempts, n.provider_message_id "
                "FROM notification n JOIN patient p ON p.id = n.patient_id"
            )
        ).all()
    engine.dispose()
    wanted = set(ids)
    return [OutboxRow(*row) for row in rows if row[0] in wanted]


def statuses(rows: list[OutboxRow]) -> Counter[str]:
    return Counter(row.status for row in rows)


@dataclass
class Stored:
    """A questionnaire as the database holds it."""

    assessment_status: str
    responses: int
    submitted: int
    answers: list[int | None]
    scores: int
    pending_messages: int


def stored(database_url: str, assessment_ids: list[int]) -> dict[int, Stored]:
    """Each assessment's status, its responses, answers, scores and waiting messages."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    found = {
        a: Stored("", 0, 0, [], 0, 0) for a in assessment_ids
    }  # filled from five plain queries
    wanted = sa.bindparam("ids", expanding=True)
    with engine.connect() as connection:
        params = {"ids": list(assessment_ids)}
        for a, status in connection.execute(
            sa.text("SELECT id, status FROM assessment WHERE id IN :ids").bindparams(wanted),
            params,
        ):
            found[a].assessment_status = status
        for a, status in connection.execute(
            sa.text(
                "SELECT assessment_id, status FROM survey_response WHERE assessment_id IN :ids"
            ).bindparams(wanted),
            params,
        ):
            found[a].responses += 1
            found[a].submitted += status == "submitted"
        for a, value in connection.execute(
            sa.text(
                "SELECT r.assessment_id, a.value FROM survey_answer a "
                "JOIN survey_response r ON r.id = a.response_id WHERE r.assessment_id IN :ids"
            ).bindparams(wanted),
            params,
        ):
            found[a].answers.append(value)
        for a, n in connection.execute(
            sa.text(
                "SELECT assessment_id, count(*) FROM score WHERE assessment_id IN :ids "
                "GROUP BY assessment_id"
            ).bindparams(wanted),
            params,
        ):
            found[a].scores = n
        for a, n in connection.execute(
            sa.text(
                "SELECT assessment_id, count(*) FROM notification WHERE assessment_id IN :ids "
                "AND status = 'pending' GROUP BY assessment_id"
            ).bindparams(wanted),
            params,
        ):
            found[a].pending_messages = n
    engine.dispose()
    return found


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///"))
