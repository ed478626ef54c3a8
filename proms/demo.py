"""`proms demo`: load synthetic demonstration data, idempotently.

Every step looks up what it would create by a natural key (clinic slug, staff email, protocol
slug and version, patient MRN) and only adds what is missing, so running it twice changes nothing.
The data come from a seeded random generator: the same seed gives the same people. Later
capabilities add their own steps (responses and scores, messages) to `STEPS`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin.courses import SIDE_EFFECTS as COURSE_SIDE_EFFECTS
from proms.admin.models import (
    Channel,
    Clinic,
    Patient,
    Protocol,
    SessionStatus,
    TreatmentSession,
)
from proms.admin.services import (
    bundled_protocol,
    create_clinic,
    enroll_patient,
    install_protocol,
    withdraw_enrollment,
)
from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff, find_staff
from proms.db import db, utcnow
from proms.scheduling.services import complete_finished_enrollments, expire_closed_assessments

DEMO_CLINICS = (
    # slug, name, time zone, phone, email, number of patients
    (
        "demo-pain",
        "Demo Pain Management Center",
        "America/New_York",
        "+12165550100",
        "pain-clinic@demo.example.org",
        200,
    ),
    (
        "lakeside-pain",
        "Lakeside Pain Clinic",
        "America/Chicago",
        "+13125550100",
        "hello@lakeside.example.org",
        20,
    ),
)

# email, full name, clinic slug, role, password (demo only: `proms demo` refuses production).
DEMO_STAFF = (
    ("admin@demo.example.org", "Avery Admin", "demo-pain", Role.ADMIN, "proms-demo-admin"),
    (
        "coordinator@demo.example.org",
        "Casey Coordinator",
        "demo-pain",
        Role.COORDINATOR,
        "proms-demo-coordinator",
    ),
    (
        "clinician@demo.example.org",
        "Dr. Robin Clinician",
        "demo-pain",
        Role.CLINICIAN,
        "proms-demo-clinician",
    ),
    (
        "clinician@lakeside.example.org",
        "Dr. Sam Lakeside",
        "lakeside-pain",
        Role.CLINICIAN,
        "proms-demo-lakeside",
    ),
    (
        "coordinator@lakeside.example.org",
        "Jordan Lakeside",
        "lakeside-pain",
        Role.COORDINATOR,
        "proms-demo-lakeside-coordinator",
    ),
)

GIVEN_NAMES = (
    "Ada",
    "Ben",
    "Carmen",
    "Dev",
    "Elena",
    "Farah",
    "George",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lucia",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Alma",
    "Bruno",
    "Chloe",
    "Diego",
    "Esther",
    "Felix",
)
FAMILY_NAMES = (
    "Abbott",
    "Baker",
    "Castillo",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Martin",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quint",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Vargas",
    "Walker",
    "Xu",
    "Young",
    "Zimmer",
    "Moreau",
    "Novak",
)
PATIENT_ZONES = (
    ("America/New_York", 80),
    ("America/Chicago", 10),
    ("America/Denver", 5),
    ("America/Los_Angeles", 5),
)
SIDE_EFFECTS = tuple(COURSE_SIDE_EFFECTS)


@dataclass
class DemoReport:
    """What a run added (zero everywhere on a second run)."""

    added: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str, str]] = field(default_factory=list)

    def count(self, what: str, n: int = 1) -> None:
        self.added[what] = self.added.get(what, 0) + n


@dataclass(frozen=True)
class DemoContext:
    session: Session
    today: dt.date
    now: dt.datetime
    seed: int
    report: DemoReport


def load_clinics(ctx: DemoContext) -> None:
    for slug, name, zone, phone, email, _ in DEMO_CLINICS:
        if ctx.session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is None:
            create_clinic(
                ctx.session,
                slug=slug,
                name=name,
                time_zone=zone,
                contact_phone=phone,
                contact_email=email,
            )
            ctx.report.count("clinics")


def load_staff(ctx: DemoContext) -> None:
    hasher = hasher_from_config(current_app.config)
    for email, full_name, clinic_slug, role, password in DEMO_STAFF:
        clinic = _clinic(ctx.session, clinic_slug)
        if find_staff(ctx.session, email) is None:
            create_staff(
                ctx.session,
                hasher,
                email=email,
                full_name=full_name,
                password=password,
                clinic=clinic,
                role=role,
            )
            ctx.report.count("staff users")
        ctx.report.logins.append((email, password, role.value, clinic.name))


def load_protocols(ctx: DemoContext) -> None:
    spec = bundled_protocol("ketamine-infusion-course")
    for slug, *_ in DEMO_CLINICS:
        clinic = _clinic(ctx.session, slug)
        before = ctx.session.scalar(
            select(Protocol.id).where(
                Protocol.clinic_id == clinic.id, Protocol.slug == spec["slug"]
            )
        )
        install_protocol(ctx.session, clinic, spec)
        if before is None:
            ctx.report.count("protocols")


def load_patients(ctx: DemoContext) -> None:
    """Patients enrolled over the last 18 months (and a few starting soon), with their courses."""
    spec = bundled_protocol("ketamine-infusion-course")
    for clinic_index, (slug, *_, n_patients) in enumerate(DEMO_CLINICS):
        clinic = _clinic(ctx.session, slug)
        protocol = ctx.session.scalar(
            select(Protocol).where(
                Protocol.clinic_id == clinic.id,
                Protocol.slug == spec["slug"],
                Protocol.version == spec["version"],
            )
        )
        assert protocol is not None
        rng = random.Random(ctx.seed * 1000 + clinic_index)  # noqa: S311 - synthetic data
        existing = set(
            ctx.session.scalars(select(Patient.mrn).where(Patient.clinic_id == clinic.id))
        )
        prefix = "D" if clinic_index == 0 else "L"
        for number in range(1, n_patients + 1):
            person = _synthetic_person(rng, ctx.today, clinic_index, number)
            mrn = f"{prefix}{100000 + number}"
            if mrn in existing:
                continue
            patient = Patient(clinic=clinic, mrn=mrn, **person.patient_fields)
            ctx.session.add(patient)
            ctx.session.flush()
            enrollment = enroll_patient(
                ctx.session, patient, protocol, person.anchor_on, now=ctx.now
            )
            _treatment_course(ctx, rng, enrollment, patient.time_zone)
            if person.withdrawn_after_days is not None:
                withdrawn_on = person.anchor_on + dt.timedelta(days=person.withdrawn_after_days)
                if withdrawn_on < ctx.today:
                    withdraw_enrollment(
                        ctx.session,
                        enrollment,
                        now=dt.datetime.combine(withdrawn_on, dt.time(12), tzinfo=dt.UTC),
                        reason="Demo: the patient asked to stop follow-up.",
                    )
            ctx.report.count("patients")
            ctx.report.count("enrollments")
    ctx.session.flush()
    expire_closed_assessments(ctx.session, ctx.now)
    complete_finished_enrollments(ctx.session)


@dataclass(frozen=True)
class _Person:
    patient_fields: dict[str, object]
    anchor_on: dt.date
    withdrawn_after_days: int | None


def _synthetic_person(rng: random.Random, today: dt.date, clinic_index: int, n: int) -> _Person:
    """One synthetic patient; draws happen in a fixed order, so a seed gives one population."""
    given = rng.choice(GIVEN_NAMES)
    family = rng.choice(FAMILY_NAMES)
    birth_on = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 60 * 365))
    zone = rng.choices([z for z, _ in PATIENT_ZONES], weights=[w for _, w in PATIENT_ZONES])[0]
    language = "es" if rng.random() < 0.15 else "en"
    channel = rng.choices([Channel.EMAIL, Channel.SMS, Channel.NONE], weights=[70, 25, 5])[0]
    # 555-0100..0199 numbers are reserved for fiction; example.org never receives mail.
    phone = f"+1216555{rng.randrange(100, 200):04d}"
    email = f"{given.lower()}.{family.lower()}.{clinic_index}{n}@example.org"
    # Anchors over the last 18 months, a few in the next two weeks (baselines open now).
    anchor_on = today + dt.timedelta(days=rng.randint(-548, 14))
    withdrawn_after_days = rng.randint(10, 150) if rng.random() < 0.04 else None
    return _Person(
        patient_fields={
            "given_name": given,
            "family_name": family,
            "birth_on": birth_on,
            "email": email if channel is not Channel.SMS or rng.random() < 0.5 else None,
            "phone": phone if channel is not Channel.EMAIL or rng.random() < 0.5 else None,
            "preferred_channel": channel,
            "time_zone": zone,
            "language": language,
        },
        anchor_on=anchor_on,
        withdrawn_after_days=withdrawn_after_days,
    )


def _treatment_course(ctx: DemoContext, rng: random.Random, enrollment, zone: str) -> None:  # type: ignore[no-untyped-def]
    """Five infusion days; about nine in ten patients complete all five (the reference study)."""
    stops_after = 5 if rng.random() < 0.9 else rng.randint(1, 4)
    for day in range(1, 6):
        scheduled_on = enrollment.anchor_on + dt.timedelta(days=day - 1)
        session = TreatmentSession(enrollment=enrollment, day_number=day, scheduled_on=scheduled_on)
        if scheduled_on < ctx.today:
            if day <= stops_after:
                session.status = SessionStatus.DONE
                session.performed_at = dt.datetime.combine(
                    scheduled_on, dt.time(10, 0), tzinfo=ZoneInfo(zone)
                ).astimezone(dt.UTC)
                session.dose_mg_per_kg = 0.5
                if rng.random() < 0.08:
                    session.side_effects = [rng.choice(SIDE_EFFECTS)]
            else:
                session.status = SessionStatus.MISSED
                session.missed_reason = rng.choice(MISSED_REASONS)
        ctx.session.add(session)


MISSED_REASONS = ("Unwell on the day", "No transport", "Blood pressure too high to start")


def _clinic(session: Session, slug: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.slug == slug))
    assert clinic is not None, slug
    return clinic


STEPS: list[Callable[[DemoContext], None]] = [
    load_clinics,
    load_staff,
    load_protocols,
    load_patients,
]


def load_demo(session: Session, *, now: dt.datetime, seed: int = 2021) -> DemoReport:
    """Run every demo step in order (flush only; the caller commits)."""
    report = DemoReport()
    ctx = DemoContext(session=session, today=now.date(), now=now, seed=seed, report=report)
    for step in STEPS:
        step(ctx)
        session.flush()
    return report


@click.command("demo")
@click.option("--seed", default=2021, show_default=True, help="Random seed of the synthetic data.")
def demo_command(seed: int) -> None:
    """Load demonstration data (idempotent; refused in production)."""
    if current_app.config["ENV"] == "production":
        raise click.ClickException(
            "Demo data has well-known passwords: it is refused with PROMS_ENV=production."
        )
    report = load_demo(db.session, now=utcnow(), seed=seed)
    db.session.commit()
    added = (
        ", ".join(f"{n} {what}" for what, n in report.added.items()) or "nothing (already loaded)"
    )
    click.echo(f"Demo data: added {added}.")
    click.echo("Demo logins (development only):")
    for email, password, role, clinic in report.logins:
        click.echo(f"  {email:<34} {password:<24} {role:<12} {clinic}")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
