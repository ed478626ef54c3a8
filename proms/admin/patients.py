"""Patients: add and edit a patient of a clinic, every field checked. Flush, never commit.

Each field has one cleaner that turns what a person typed into what is stored, or raises
`AdminError` with the sentence to show next to the field. The patient form and the enrollment
import (`proms.admin.importer`) use the same cleaners, so a value refused on one is refused on
the other with the same words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from proms.admin import enrollment
from proms.admin.errors import AdminError
from proms.admin.models import Channel, Clinic, Patient
from proms.admin.services import check_time_zone
from proms.auth.models import StaffUser
from proms.templating import zone_countries

MRN_MAX = 64
NAME_MAX = 100
EMAIL_MAX = 254
TIME_ZONE_MAX = 64
EARLIEST_BIRTH = dt.date(1900, 1, 1)
LANGUAGES = {"en": "English", "es": "Español"}
CHANNEL_LABELS = {
    Channel.EMAIL: "Email",
    Channel.SMS: "Text message (SMS)",
    Channel.NONE: "None: staff reach the patient by phone",
}

# What the audit log records of a patient (before and after a change).
AUDIT_FIELDS = (
    "mrn",
    "given_name",
    "family_name",
    "birth_on",
    "email",
    "phone",
    "preferred_channel",
    "time_zone",
    "language",
)
OPT_OUT_FIELDS = ("opted_out_at", "opted_out_by_id", "opt_out_reason")


class PatientErrors(AdminError):
    """Fields that cannot be stored: field name -> the sentence to show next to it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class PatientDetails:
    """A patient's fields as typed (strings stripped or not); `clean_details` checks them."""

    mrn: str
    given_name: str
    family_name: str
    birth_on: dt.date | None = None
    email: str | None = None
    phone: str | None = None
    preferred_channel: str = Channel.EMAIL.value
    time_zone: str | None = None
    language: str = "en"


# One cleaner per field ---------------------------------------------------------------------


def clean_mrn(value: str | None) -> str:
    mrn = (value or "").strip()
    if not mrn:
        raise AdminError("Enter the MRN.")
    if len(mrn) > MRN_MAX:
        raise AdminError(f"An MRN has at most {MRN_MAX} characters.")
    return mrn


def clean_name(value: str | None, what: str) -> str:
    name = (value or "").strip()
    if not name:
        raise AdminError(f"Enter the {what}.")
    if len(name) > NAME_MAX:
        raise AdminError(f"A {what} has at most {NAME_MAX} characters.")
    return name


def check_birth_on(value: dt.date | None, today: dt.date) -> dt.date | None:
    if value is None:
        return None
    if value > today:
        raise AdminError("The date of birth is in the future.")
    if value < EARLIEST_BIRTH:
        raise AdminError("The date of birth is before 1900: check the year.")
    return value


def clean_email(value: str | None) -> str | None:
    """The address as email-validator normalises it (domain in lower case), or None."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > EMAIL_MAX:
        raise AdminError(f"An email address has at most {EMAIL_MAX} characters.")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AdminError(f"This is not a valid email address: {exc}") from exc
    return str(checked.normalized)


def region_of(time_zone: str) -> str | None:
    """The country (ISO 3166 code) of an IANA time zone, for numbers typed without +code."""
    return zone_countries().get(time_zone)


def clean_phone(value: str | None, clinic_time_zone: str) -> str | None:
    """A mobile number in E.164 ("+12165550100"), read as the clinic's country when no +code."""
    text = (value or "").strip()
    if not text:
        return None
    region = region_of(clinic_time_zone)
    example = "+1 216 555 0100" if region is None else "+44 7400 123456"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if region is None:
            raise AdminError(f"Enter the number with its country code, such as {example}.") from exc
        raise AdminError("This is not a phone number: check the digits.") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise AdminError(
            "This is not a valid phone number: check the digits, and for a number of another "
            f"country start with + and its country code, such as {example}."
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def clean_time_zone(value: str | None, default: str) -> str:
    name = (value or "").strip() or default
    if len(name) > TIME_ZONE_MAX:
        raise AdminError("A time zone name has at most 64 characters.")
    return check_time_zone(name)


def clean_language(value: str | None, default: str = "en") -> str:
    code = (value or "").strip().lower() or default
    if code not in LANGUAGES:
        choices = " or ".join(f"{key} ({label})" for key, label in LANGUAGES.items())
        raise AdminError(f"Choose the language: {choices}.")
    return code


def clean_channel(value: str | None) -> Channel:
    try:
        return Channel((value or "").strip().lower())
    except ValueError as exc:
        raise AdminError("Choose email, sms or none.") from exc


def check_channel(channel: Channel, email: str | None, phone: str | None) -> None:
    """A preferred channel needs its contact detail."""
    if channel is Channel.EMAIL and not email:
        raise AdminError("Email needs an email address: enter one, or choose another channel.")
    if channel is Channel.SMS and not phone:
        raise AdminError(
            "Text messages need a mobile phone number: enter one, or choose another channel."
        )


def clinic_today(clinic: Clinic, now: dt.datetime) -> dt.date:
    """The date on the clinic's calendar (a date of birth "in the future" is after it)."""
    return now.astimezone(ZoneInfo(clinic.time_zone)).date()


def find_by_mrn(session: Session, clinic_id: int, mrn: str) -> Patient | None:
    return session.scalar(select(Patient).where(Patient.clinic_id == clinic_id, Patient.mrn == mrn))


def mrn_taken(patient: Patient) -> str:
    return f"MRN {patient.mrn} is already {patient.display_name}'s."


# The whole form ----------------------------------------------------------------------------


def clean_details(
    session: Session,
    clinic: Clinic,
    details: PatientDetails,
    *,
    today: dt.date,
    patient: Patient | None = None,
) -> dict[str, Any]:
    """Every field checked at once: the values to store, or PatientErrors naming each field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}

    def take(name: str, clean: Any, *args: Any) -> None:
        try:
            values[name] = clean(*args)
        except AdminError as exc:
            errors[name] = str(exc)

    take("mrn", clean_mrn, details.mrn)
    take("given_name", clean_name, details.given_name, "given name")
    take("family_name", clean_name, details.family_name, "family name")
    take("birth_on", check_birth_on, details.birth_on, today)
    take("email", clean_email, details.email)
    take("phone", clean_phone, details.phone, clinic.time_zone)
    take("preferred_channel", clean_channel, details.preferred_channel)
    take("time_zone", clean_time_zone, details.time_zone, clinic.time_zone)
    take("language", clean_language, details.language)
    if "mrn" in values:
        existing = find_by_mrn(session, clinic.id, values["mrn"])
        if existing is not None and existing is not patient:
            errors["mrn"] = mrn_taken(existing)
    if "preferred_channel" in values and not {"email", "phone"} & errors.keys():
        try:
            check_channel(values["preferred_channel"], values["email"], values["phone"])
        except AdminError as exc:
            errors["preferred_channel"] = str(exc)
    if errors:
        raise PatientErrors(errors)
    return values


def create_patient(
    session: Session, clinic: Clinic, details: PatientDetails, *, today: dt.date
) -> Patient:
    """A new patient of the clinic, or PatientErrors."""
    values = clean_details(session, clinic, details, today=today)
    patient = Patient(clinic=clinic, **values)
    session.add(patient)
    session.flush()
    return patient


# A change to one of these plans the patient's messages again (channel, contact, local time).
MESSAGE_FIELDS = frozenset({"email", "phone", "preferred_channel", "time_zone"})


def update_patient(
    session: Session, patient: Patient, details: PatientDetails, *, now: dt.datetime
) -> None:
    """Change a patient's details, or PatientErrors (nothing changed then).

    When the contact details, the channel or the time zone change, the messages of the windows
    still to come are planned again: an email added later brings back the messages that had
    "no contact", a new time zone moves them to the new local send time.
    """
    today = clinic_today(patient.clinic, now)
    values = clean_details(session, patient.clinic, details, today=today, patient=patient)
    changed = {name for name, value in values.items() if getattr(patient, name) != value}
    for name, value in values.items():
        setattr(patient, name, value)
    session.flush()
    if changed & MESSAGE_FIELDS:
        enrollment.replan_patient(session, patient, now=now, zone_changed="time_zone" in changed)


def details_of(patient: Patient) -> PatientDetails:
    """A stored patient's fields, to fill the edit form."""
    return PatientDetails(
        mrn=patient.mrn,
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_on=patient.birth_on,
        email=patient.email,
        phone=patient.phone,
        preferred_channel=patient.preferred_channel.value,
        time_zone=patient.time_zone,
        language=patient.language,
    )


def staff_name(session: Session, user_id: int | None) -> str:
    """Who did something, for a page: the staff member's name, or who it was otherwise."""
    user = session.get(StaffUser, user_id) if user_id is not None else None
    if user is None:
        return "a command-line user or a former staff member"
    return user.full_name or user.email
