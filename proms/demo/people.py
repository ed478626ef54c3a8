"""The demo's clinics, staff and patients, and the courses they are enrolled in."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update

from proms.admin import enrollment as enrollments
from proms.admin.courses import SIDE_EFFECTS as COURSE_SIDE_EFFECTS
from proms.admin.models import (
    Channel,
    Clinic,
    Enrollment,
    Patient,
    Protocol,
    SessionStatus,
    TreatmentSession,
)
from proms.admin.services import (
    bundled_protocol,
    create_clinic,
    install_protocol,
)
from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config
from proms.auth.services import create_staff, find_staff
from proms.demo.cohort import (
    CHECKLIST_GRADES,
    RETURN_AFTER_DAYS,
    RETURN_SHARE,
    SEVERE,
    Course,
    new_course,
)
from proms.demo.context import DemoContext, clinic_by_slug, protocol_of
from proms.scheduling.models import (
    Assessment,
    Notification,
)

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

# The demo admin's two-step sign-in secret (RFC 6238, base32): fixed and public, like the
# passwords, so that `proms demo code` (or any authenticator app given this key) makes the code
# a newcomer needs to sign in as admin. Demo data only; admins everywhere else enrol their own.
DEMO_ADMIN_TOTP_SECRET = "PROMSDEMOADMINSECRETFORDEVONLY22"  # noqa: S105 - public demo data

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
        "analyst@demo.example.org",
        "Alex Analyst",
        "demo-pain",
        Role.ANALYST,
        "proms-demo-analyst",
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
MISSED_REASONS = ("Unwell on the day", "No transport", "Blood pressure too high to start")


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
        clinic = clinic_by_slug(ctx.session, clinic_slug)
        user = find_staff(ctx.session, email)
        if user is None:
            user = create_staff(
                ctx.session,
                hasher,
                email=email,
                full_name=full_name,
                password=password,
                clinic=clinic,
                role=role,
            )
            ctx.report.count("staff users")
        if role is Role.ADMIN and not user.is_mfa_enabled:
            # Admins sign in with a code: the demo's is made from a known key (`proms demo code`).
            user.mfa_secret = DEMO_ADMIN_TOTP_SECRET
            user.mfa_enabled_at = ctx.now
        ctx.report.logins.append((email, password, role.value, clinic.name))


def load_protocols(ctx: DemoContext) -> None:
    spec = bundled_protocol("ketamine-infusion-course")
    for slug, *_ in DEMO_CLINICS:
        clinic = clinic_by_slug(ctx.session, slug)
        before = ctx.session.scalar(
            select(Protocol.id).where(
                Protocol.clinic_id == clinic.id, Protocol.slug == spec["slug"]
            )
        )
        install_protocol(ctx.session, clinic, spec)
        if before is None:
            ctx.report.count("protocols")


@dataclass
class _Booking:
    """A course to enroll: who, from when, booked when, its infusion days as drawn."""

    patient: Patient
    anchor_on: dt.date
    booked_at: dt.datetime
    rng: random.Random
    days: list[TreatmentSession]
    number: int = 1
    previous: Course | None = None
    withdrawn_at: dt.datetime | None = None


def load_patients(ctx: DemoContext) -> None:
    """Patients enrolled over the last 18 months (and a few starting soon), each with a first
    course booked a few weeks before it began, and its infusion days."""
    spec = bundled_protocol("ketamine-infusion-course")
    for clinic_index, (slug, *_, full_count) in enumerate(DEMO_CLINICS):
        clinic = clinic_by_slug(ctx.session, slug)
        protocol = protocol_of(ctx.session, clinic, spec)
        rng = random.Random(ctx.seed * 1000 + clinic_index)  # noqa: S311 - synthetic data
        existing = set(
            ctx.session.scalars(select(Patient.mrn).where(Patient.clinic_id == clinic.id))
        )
        prefix = "D" if clinic_index == 0 else "L"
        bookings: list[_Booking] = []
        for number in range(1, _count(full_count, ctx.size) + 1):
            person = synthetic_person(rng, ctx.today, clinic_index, number)
            mrn = f"{prefix}{100000 + number}"
            if mrn in existing:
                continue
            zone = str(person.patient_fields["time_zone"])
            days = _treatment_course(ctx, rng, person.anchor_on, zone)
            course_rng = _course_rng(ctx, slug, mrn, 1)
            booked_at = _booked_at(ctx, course_rng, person.anchor_on)
            patient = Patient(clinic=clinic, mrn=mrn, created_at=booked_at, **person.patient_fields)
            booking = _Booking(patient, person.anchor_on, booked_at, course_rng, days)
            if person.withdrawn_after_days is not None:
                withdrawn_on = person.anchor_on + dt.timedelta(days=person.withdrawn_after_days)
                if withdrawn_on < ctx.today:
                    booking.withdrawn_at = dt.datetime.combine(withdrawn_on, dt.time(12), dt.UTC)
            bookings.append(booking)
        if not bookings:
            continue
        ctx.session.add_all([booking.patient for booking in bookings])
        ctx.session.flush()
        ctx.report.count("patients", len(bookings))
        _enroll(ctx, protocol, bookings)


def load_returning_courses(ctx: DemoContext) -> None:
    """Another course for most patients whose last course's follow-up is over (about 80% of
    them, the reference study's share), each with its own baseline.

    The clinic reuses a baseline only when it is recent (`Clinic.baseline_reuse_days`, 30 by
    default); these courses begin months after the last one, so each has its own.
    """
    latest = ctx.today + dt.timedelta(days=14)
    last_round = list(ctx.courses)
    while last_round:
        by_protocol: dict[int, list[_Booking]] = defaultdict(list)
        for last in last_round:
            rng = last.rng
            start = last.enrollment.anchor_on + dt.timedelta(days=RETURN_AFTER_DAYS[0])
            if last.withdrawn_at is not None or start > latest:
                continue
            if rng.random() >= RETURN_SHARE[last.kind]:
                continue
            end = min(last.enrollment.anchor_on + dt.timedelta(days=RETURN_AFTER_DAYS[1]), latest)
            anchor_on = start + dt.timedelta(days=rng.randint(0, (end - start).days))
            patient = last.patient
            course_rng = _course_rng(ctx, patient.clinic.slug, patient.mrn, last.number + 1)
            booked_at = _booked_at(ctx, course_rng, anchor_on)
            days = _treatment_course(ctx, course_rng, anchor_on, patient.time_zone)
            by_protocol[last.enrollment.protocol_id].append(
                _Booking(patient, anchor_on, booked_at, course_rng, days, last.number + 1, last)
            )
        last_round = []
        for protocol_id, bookings in by_protocol.items():
            protocol = ctx.session.get(Protocol, protocol_id)
            assert protocol is not None
            last_round.extend(_enroll(ctx, protocol, bookings))
            ctx.report.count("returning courses", len(bookings))


def _enroll(ctx: DemoContext, protocol: Protocol, bookings: Sequence[_Booking]) -> list[Course]:
    """Enroll the courses at once (the coordinators' own service), dated when each was booked.

    Planned as of the earliest booking: every course here was booked before its windows
    opened, so each gets its invitation and reminders, as it would have then.
    """
    session = ctx.session
    enrolled = enrollments.enroll_many(
        session,
        protocol,
        [(booking.patient, booking.anchor_on) for booking in bookings],
        now=min(booking.booked_at for booking in bookings),
    )
    courses = []
    for booking, enrollment in zip(bookings, enrolled, strict=True):
        enrollment.created_at = booking.booked_at
        for day in booking.days:
            day.enrollment_id = enrollment.id
        session.add_all(booking.days)
        course = new_course(
            booking.rng, booking.patient, enrollment, booking.number, booking.previous
        )
        course.withdrawn_at = booking.withdrawn_at
        _note_side_effects(course, booking.days)
        courses.append(course)
    session.flush()
    ids = [enrollment.id for enrollment in enrolled]
    session.execute(
        update(Assessment)
        .where(Assessment.enrollment_id.in_(ids))
        .values(
            created_at=select(Enrollment.created_at)
            .where(Enrollment.id == Assessment.enrollment_id)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Notification)
        .where(
            Notification.assessment_id.in_(
                select(Assessment.id).where(Assessment.enrollment_id.in_(ids))
            )
        )
        .values(
            created_at=select(Assessment.created_at)
            .where(Assessment.id == Notification.assessment_id)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )
    ctx.courses.extend(courses)
    ctx.report.count("enrollments", len(courses))
    return courses


def _count(full: int, size: float) -> int:
    return max(1, round(full * size))


def _course_rng(ctx: DemoContext, clinic_slug: str, mrn: str, number: int) -> random.Random:
    """A generator per course: its draws do not depend on which other patients exist."""
    return random.Random(f"{ctx.seed}:{clinic_slug}:{mrn}:{number}")  # noqa: S311 - synthetic


def _booked_at(ctx: DemoContext, rng: random.Random, anchor_on: dt.date) -> dt.datetime:
    """When a coordinator enrolled the course: two to four weeks before it began."""
    days = 14 + rng.randint(1, 14)
    booked = dt.datetime.combine(anchor_on - dt.timedelta(days=days), dt.time(15), dt.UTC)
    return min(booked, ctx.now)


@dataclass(frozen=True)
class _Person:
    patient_fields: dict[str, object]
    anchor_on: dt.date
    withdrawn_after_days: int | None


def synthetic_person(rng: random.Random, today: dt.date, clinic_index: int, n: int) -> _Person:
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


def _treatment_course(
    ctx: DemoContext, rng: random.Random, anchor_on: dt.date, zone: str
) -> list[TreatmentSession]:
    """Five infusion days (not yet added); about nine in ten patients complete all five, as
    in the reference study."""
    stops_after = 5 if rng.random() < 0.9 else rng.randint(1, 4)
    days = []
    for day in range(1, 6):
        scheduled_on = anchor_on + dt.timedelta(days=day - 1)
        session = TreatmentSession(day_number=day, scheduled_on=scheduled_on, side_effects=[])
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
        days.append(session)
    return days


def _note_side_effects(course: Course, sessions: Sequence[TreatmentSession]) -> None:
    """Staff note on an infusion day the moderate and severe side effects the checklist will
    report; a severe one with what was done."""
    given = [s for s in sessions if s.status is SessionStatus.DONE]
    if not given:
        return
    for item, grade in course.side_effects.items():
        term = CHECKLIST_GRADES[item][1]
        if grade < 2 or term is None:
            continue
        day = course.rng.choice(given)
        day.side_effects = sorted({*day.side_effects, term})
        if grade == SEVERE:
            label = COURSE_SIDE_EFFECTS[term]
            day.notes = f"Severe: {label.lower()}. Infusion paused; observed until settled."
