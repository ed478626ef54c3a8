"""The soak's data, made with proms' own services, and the gates counted in the database after.

`seed` builds, in an empty migrated database: a clinic (quiet hours as shipped, MFA not required),
the bundled ketamine protocol, clinicians and coordinators, and patients whose questionnaire is
open now, each enrolled the way an import enrolls (`enroll_many`, which plans the invitations
and reminders the scheduler then sends) and given a link the way `proms link` makes one
(`mint_token`). Half of the surveys were begun earlier and resume where they stopped. A fifth
answer a one-month follow-up: their baseline was answered a month ago through the survey
services (start, save, submit), so the follow-up scores have a baseline to change from and a
worse one raises an alert. The raw tokens go to a file the locustfile reads (mode 600, in the
run's temporary folder); the runner knows links by number only, and never prints a token.

`count_gates` reads the database after the load: every survey a client finished is completed,
its responses submitted and scored, and no reminder of it is still waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CLINIC_SLUG = "soak-clinic"
PROTOCOL = "ketamine-infusion-course"
FOLLOW_UP = "month_1"
# Patients' zones: the seed picks the one whose clock reads between 10:00 and 19:00 now, so the
# invitations fall outside the clinic's quiet hours (21:00-08:00) and the scheduler sends them
# during the run rather than tomorrow morning.
ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)


@dataclass(frozen=True, slots=True)
class Seeded:
    tokens_file: Path  # one JSON object a line: {"n": index, "token": raw}
    staff_file: Path  # one JSON object a line: {"email", "password", "role"}
    assessment_of: dict[int, int]  # token index -> assessment id
    patient_emails: frozenset[str]
    questions: dict[str, int]  # questions per questionnaire kind (baseline, follow-up)
    zone: str


def daytime_zone(now: dt.datetime) -> str:
    for zone in ZONES:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 19:
            return zone
    raise RuntimeError("no zone in ZONES has daytime now")  # the list spans every hour


def app_for(database_url: str, secret_key: str) -> Any:
    """The proms app on this database, configured as the servers are (development)."""
    from proms import create_app

    return create_app(
        {
            "ENV": "development",
            "SECRET_KEY": secret_key,
            "DATABASE_URL": database_url,
            "MESSAGE_TRANSPORT": "null",
        },
        serving=False,
    )


def prepare_schema(database_url: str, how: str, env: dict[str, str], bin_dir: Path) -> None:
    """The schema: `proms db upgrade` (how a deployment gets it), or the models' create_all
    (how the tests get it; for a checkout whose newest migration is still being written)."""
    import subprocess

    if how == "migrate":
        done = subprocess.run(
            [str(bin_dir / "proms"), "db", "upgrade"],
            env={**env, "PROMS_DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"proms db upgrade failed:\n{done.stderr[-2000:]}")
        return
    import sqlalchemy as sa
    from alembic import command

    import proms.models  # noqa: F401 - every table on the metadata
    from proms.db import Base
    from proms.schema import alembic_config

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    # Marked as at the newest migration: the servers and the scheduler refuse an unmigrated one.
    command.stamp(alembic_config(database_url), "head")


def _anchor_for(timepoint: Any, zone: str, now: dt.datetime) -> dt.date:
    """An anchor date with this time point's window open now (and at least a day left)."""
    from proms.scheduling.planning import rule_of
    from proms.scheduling.rules import assessment_windows

    today = now.astimezone(ZoneInfo(zone)).date()
    rule = rule_of(timepoint)
    for back in range(-30, 400):
        anchor = today - dt.timedelta(days=back)
        [window] = assessment_windows(anchor, [rule], zone)
        if window.opens_at <= now and window.closes_at - now > dt.timedelta(days=1):
            return anchor
    raise RuntimeError(f"no anchor date opens {timepoint.key} now")


def seed(
    database_url: str,
    out: Path,
    *,
    secret_key: str,
    baselines: int,
    follow_ups: int,
    clinicians: int,
    coordinators: int,
    instruments: Sequence[str] = (),
    resumed: float = 0.5,
    seed_value: int = 12,
) -> Seeded:
    """Fill a migrated, empty database with the soak's clinic, staff, patients and links.

    `instruments`: keep only these questionnaires of the bundled protocol (a copy saved as a
    protocol of its own, as a coordinator would edit it): CI's short soak answers 7 questions a
    survey instead of 35, so surveys finish within its minute on a slow machine.
    `resumed`: the share of surveys begun earlier (some of their questions answered).
    """

    from proms.admin.enrollment import enroll_many
    from proms.admin.models import Channel, Patient
    from proms.admin.services import bundled_protocol, create_clinic, install_protocol
    from proms.auth.models import Role
    from proms.auth.passwords import hasher_from_config
    from proms.auth.services import create_staff
    from proms.catalog.services import deployment_registry
    from proms.db import db, utcnow
    from proms.scheduling.models import Assessment
    from proms.surveys import links
    from proms.surveys import services as survey
    from proms.surveys.services import planned_question_count

    rng = random.Random(seed_value)
    app = app_for(database_url, secret_key)
    out.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        session = db.session
        now = utcnow()
        zone = daytime_zone(now)
        clinic = create_clinic(
            session,
            slug=CLINIC_SLUG,
            name="Soak Pain Clinic",
            time_zone=zone,
            contact_phone=None,
            contact_email="pain@soak.example.org",
            offer_bundled_protocol=False,
        )
        # Urgent alerts raised by the load are mailed to the care team by the alerts sweep.
        clinic.alert_email = "care-team@soak.example.org"
        spec = bundled_protocol(PROTOCOL)
        if instruments:
            spec = {
                **spec,
                "slug": "soak-short",
                "name": "Ketamine infusion course (soak: " + ", ".join(instruments) + ")",
                "timepoints": [
                    {
                        **tp,
                        "instruments": [i for i in tp["instruments"] if i["code"] in instruments],
                    }
                    for tp in spec["timepoints"]
                ],
            }
        protocol = install_protocol(session, clinic, spec)
        hasher = _HashOnce(hasher_from_config(app.config))
        # One password for all (each account its own email and session): hashing it once at
        # the production cost, not twenty times, saves half a minute of set-up.
        password = secrets.token_urlsafe(12)
        staff_lines = []
        for role, count in ((Role.CLINICIAN, clinicians), (Role.COORDINATOR, coordinators)):
            for n in range(count):
                email = f"{role.value}.{n}@soak.example.org"
                create_staff(
                    session,
                    hasher,
                    email=email,
                    full_name=f"Soak {role.value.title()} {n}",
                    password=password,
                    clinic=clinic,
                    role=role,
                )
                staff_lines.append({"email": email, "password": password, "role": role.value})

        timepoints = {tp.key: tp for tp in protocol.timepoints}
        registry = deployment_registry(session)

        def patients(prefix: str, count: int) -> list[Patient]:
            made = [
                Patient(
                    clinic=clinic,
                    mrn=f"{prefix}{n:05d}",
                    given_name="Soak",
                    family_name=f"Patient {prefix}{n}",
                    birth_on=dt.date(1950 + n % 40, 1 + n % 12, 1 + n % 28),
                    email=f"soak.{prefix.lower()}{n}@soak.example.org",
                    preferred_channel=Channel.EMAIL,
                    time_zone=zone,
                    language="en",
                )
                for n in range(count)
            ]
            session.add_all(made)
            session.flush()
            return made

        def assessment(enrollment: Any, key: str) -> Assessment:
            return next(a for a in enrollment.assessments if a.timepoint.key == key)

        # Follow-ups: enrolled a month ago, the baseline answered then.
        follow_anchor = _anchor_for(timepoints[FOLLOW_UP], zone, now)
        followed = patients("F", follow_ups)
        earlier = dt.datetime.combine(
            follow_anchor - dt.timedelta(days=7), dt.time(12), tzinfo=dt.UTC
        )
        courses = enroll_many(
            session, protocol, [(p, follow_anchor) for p in followed], now=earlier
        )
        for course in courses:
            base = assessment(course, "baseline")
            answered_at = max(base.opens_at, earlier) + dt.timedelta(hours=1)
            plan = survey.start(session, registry, base, now=answered_at, env="development")
            for question in plan.questions:
                survey.save_answer(
                    session, question, rng.choice(question.item.values), now=answered_at
                )
            survey.submit(session, registry, base, now=answered_at)

        fresh = patients("B", baselines)
        baseline_anchor = _anchor_for(timepoints["baseline"], zone, now)
        fresh_courses = enroll_many(
            session, protocol, [(p, baseline_anchor) for p in fresh], now=now
        )
        open_now = [assessment(c, "baseline") for c in fresh_courses] + [
            assessment(c, FOLLOW_UP) for c in courses
        ]
        max_age = links.link_max_age(app.config)
        for found in open_now:
            if not found.is_open(now):
                raise RuntimeError(f"a seeded {found.timepoint.key} is not open now")
        # Patients begun earlier, who carry on where they stopped (the survey saves each page):
        # at any moment of a clinic's day some are near the end, so surveys are sent all through
        # the run, not only once a whole questionnaire's worth of pauses has passed.
        for found in open_now:
            if rng.random() < resumed:
                plan = survey.start(session, registry, found, now=now, env="development")
                for question in plan.questions[: rng.randrange(1, len(plan.questions))]:
                    survey.save_answer(session, question, rng.choice(question.item.values), now=now)
        order = list(range(len(open_now)))
        rng.shuffle(order)  # baselines and follow-ups mixed through the file
        assessment_of: dict[int, int] = {}
        token_lines = []
        for index, position in enumerate(order):
            found = open_now[position]
            raw = links.mint_token(session, found, now=now, max_age=max_age)
            assessment_of[index] = found.id
            token_lines.append({"n": index, "token": raw})
        questions = {
            "baseline": planned_question_count(registry, open_now[0]) if fresh else 0,
            FOLLOW_UP: planned_question_count(registry, open_now[-1]) if courses else 0,
        }
        emails = frozenset(p.email for p in [*followed, *fresh] if p.email)
        session.commit()
        db.session.remove()
        db.engine.dispose()
    tokens_file = out / "tokens.jsonl"
    staff_file = out / "staff.jsonl"
    _write_lines(tokens_file, token_lines)
    _write_lines(staff_file, staff_lines)
    return Seeded(tokens_file, staff_file, assessment_of, emails, questions, zone)


class _HashOnce:
    """A password hasher that hashes each password once (argon2id salts it, so every account
    would otherwise get a different hash of the same password; one is as good to sign in with).
    """

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self.done: dict[str, str] = {}

    def hash(self, password: str) -> str:
        if password not in self.done:
            self.done[password] = self.hasher.hash(password)
        return self.done[password]


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.touch(mode=0o600)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


# Gates -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    finished: int  # surveys the clients saw sent (submit's 303 to the thank-you page)
    completed: int  # of the seeded questionnaires, completed in the database
    in_flight: int  # Send was in flight when the load stopped: completed or not, both are right
    completed_not_finished: int  # completed without a client having sent it
    finished_not_completed: int  # a client finished it; the database does not say so
    responses_expected: int  # the finished questionnaires' instruments
    responses_submitted: int
    responses_unscored: int  # submitted responses without any score
    reminders_waiting: int  # pending or claimed messages of a completed questionnaire
    sent_email: int  # patient emails the scheduler recorded as sent
    unknown_or_failed: int  # messages left uncertain or failed


def count_gates(
    database_url: str,
    secret_key: str,
    assessment_of: dict[int, int],
    finished: Sequence[int],
    in_flight: Sequence[int] = (),
) -> Counts:
    from sqlalchemy import func, select

    from proms.admin.models import Channel
    from proms.db import db
    from proms.outcomes.models import Score
    from proms.scheduling.models import (
        Assessment,
        AssessmentStatus,
        Notification,
        NotificationStatus,
    )
    from proms.surveys.models import ResponseStatus, SurveyResponse

    app = app_for(database_url, secret_key)
    seeded = set(assessment_of.values())
    done = {assessment_of[n] for n in finished}
    unsure = {assessment_of[n] for n in in_flight} - done
    with app.app_context():
        session = db.session
        completed = set(
            session.scalars(
                select(Assessment.id).where(
                    Assessment.id.in_(seeded), Assessment.status == AssessmentStatus.COMPLETED
                )
            )
        )
        rows = session.execute(
            select(SurveyResponse.id, SurveyResponse.status).where(
                SurveyResponse.assessment_id.in_(done)
            )
        ).all()
        submitted = [rid for rid, status in rows if status == ResponseStatus.SUBMITTED]
        scored = set(
            session.scalars(select(Score.response_id).where(Score.response_id.in_(submitted)))
        )
        waiting = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.assessment_id.in_(completed),
                Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
            )
        )
        sent = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.status == NotificationStatus.SENT,
                Notification.channel == Channel.EMAIL,
            )
        )
        bad = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.status.in_([NotificationStatus.UNKNOWN, NotificationStatus.FAILED]))
        )
        db.session.remove()
        db.engine.dispose()
    return Counts(
        finished=len(done),
        completed=len(completed),
        in_flight=len(unsure),
        completed_not_finished=len(completed - done - unsure),
        finished_not_completed=len(done - completed),
        responses_expected=len(rows),
        responses_submitted=len(submitted),
        responses_unscored=len(set(submitted) - scored),
        reminders_waiting=int(waiting or 0),
        sent_email=int(sent or 0),
        unknown_or_failed=int(bad or 0),
    )
