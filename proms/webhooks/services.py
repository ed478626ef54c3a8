"""What Twilio tells proms: a patient's reply to a text (STOP, START, HELP) and delivery reports.

Replies. The whole text is the keyword (as for Twilio's own opt-out filter, "stop please" is not
STOP), compared without surrounding spaces or punctuation, case or accents ("Sí", "si", "ALTO!").
STOP opts out every patient with that mobile number, in every clinic; START opts back in those
who opted out themselves (by text or by an email's link). An opt-out a coordinator recorded is
undone by the clinic only: it may stand for a request made by phone, or a reason we cannot see,
and "yes" is too common a word to override it; the reply then says whom to call.

Twilio's default opt-out handling also blocks every further message to a number that texted an
English keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) until it texts START, YES or
UNSTOP, and answers with its own confirmation. Our reply confirms what proms did; our replies
therefore always name START and STOP, the words both Twilio and proms obey, in either language.

Nothing here logs or stores what the patient wrote or their number.

Delivery reports: each sets the outbox row's delivery status, in order: reports arrive out of
order, and a report earlier in a message's life never replaces a later one, nor any final one.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from babel.lists import format_list
from flask_babel import force_locale, get_locale, gettext
from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from proms.admin.models import Clinic, Patient
from proms.auth.services import RequestInfo
from proms.scheduling.models import Notification
from proms.surveys.unsubscribe import EMAIL_LINK_REASON, restart_messages, stop_messages
from proms.templating import phone

TEXT_REPLY_REASON = "replied STOP by text message"
# Opt-outs the patient made; START undoes only these.
PATIENT_REASONS = frozenset({TEXT_REPLY_REASON, EMAIL_LINK_REASON})


class Keyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Twilio's default keywords (https://help.twilio.com: "Twilio support for opt-out keywords"),
# and their Spanish counterparts, written without accents (they are compared without them).
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("stop", "stopall", "unsubscribe", "cancel", "end", "quit"), Keyword.STOP),
    **dict.fromkeys(("parar", "alto", "baja", "cancelar", "detener"), Keyword.STOP),
    **dict.fromkeys(("start", "yes", "unstop"), Keyword.START),
    **dict.fromkeys(("comenzar", "iniciar", "si"), Keyword.START),
    **dict.fromkeys(("help", "info"), Keyword.HELP),
    **dict.fromkeys(("ayuda",), Keyword.HELP),
}
# What may surround the word: "Stop." and "¡Alto!" are STOP too.
_SURROUNDING = string.whitespace + string.punctuation + "¡¿"
# Twilio sends SMS senders in E.164; anything else (a short code, "whatsapp:+1...") is no patient.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def keyword_of(body: str) -> Keyword | None:
    """The keyword the whole text is, or None for anything else."""
    if len(body) > 40:  # longer than any keyword with room for spaces: skip the work
        return None
    decomposed = unicodedata.normalize("NFKD", body)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return KEYWORDS.get(bare.strip(_SURROUNDING).casefold())


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What a reply did: its keyword, how many patients changed, and the text to send back."""

    keyword: Keyword | None
    patients: int  # patients with the sender's number
    changed: int  # patients opted out or back in by this reply
    reply: str | None  # None: send nothing back


def handle_reply(
    session: Session,
    from_number: str,
    body: str,
    *,
    now: dt.datetime,
    origin: RequestInfo | None = None,
    languages: Sequence[str] = ("en",),
) -> InboundResult:
    """Act on a text a patient sent us (flush, never commit)."""
    keyword = keyword_of(body)
    if keyword is None:
        return InboundResult(None, 0, 0, None)
    patients = patients_with_number(session, from_number)
    if not patients:
        if keyword is not Keyword.HELP:
            return InboundResult(keyword, 0, 0, None)
        with force_locale("en"):
            return InboundResult(keyword, 0, 0, _unknown_sender_help())
    language = patients[0].language if patients[0].language in languages else "en"
    clinics = _clinics(patients)
    zone = patients[0].time_zone
    if keyword is Keyword.STOP:
        changed = sum(
            stop_messages(session, p, now=now, reason=TEXT_REPLY_REASON, via="sms", origin=origin)
            for p in patients
        )
        with force_locale(language):
            return InboundResult(keyword, len(patients), changed, _stopped(clinics))
    if keyword is Keyword.START:
        held = [p for p in patients if p.opted_out_at is not None and not _self_opted_out(p)]
        changed = sum(
            restart_messages(session, p, now=now, via="sms", origin=origin)
            for p in patients
            if p not in held
        )
        held_clinics = _clinics(held)
        receiving = [c for c in clinics if c not in held_clinics]
        with force_locale(language):
            return InboundResult(
                keyword, len(patients), changed, _started(receiving, held_clinics, zone)
            )
    with force_locale(language):
        return InboundResult(keyword, len(patients), 0, _help(clinics, zone))


def _self_opted_out(patient: Patient) -> bool:
    """Whether the patient's opt-out is their own (a text or an email's link), not the clinic's."""
    return patient.opted_out_by_id is None and patient.opt_out_reason in PATIENT_REASONS


def patients_with_number(session: Session, number: str) -> list[Patient]:
    """Every patient, in every clinic, whose mobile number this is (oldest record first)."""
    if not E164.fullmatch(number):
        return []
    return list(
        session.scalars(select(Patient).where(Patient.phone == number).order_by(Patient.id))
    )


def _clinics(patients: Sequence[Patient]) -> list[Clinic]:
    unique = {p.clinic_id: p.clinic for p in patients}
    return sorted(unique.values(), key=lambda c: (c.name, c.id))


def _names(clinics: Sequence[Clinic]) -> str:
    """ "Clinic A", "Clinic A and Clinic B", "Clinic A y Clinic B"."""
    return format_list([c.name for c in clinics], locale=str(get_locale() or "en"))


# The replies: short texts, in the patient's language (the caller forces it). -------------------


def _stopped(clinics: Sequence[Clinic]) -> str:
    # TRANSLATORS: a text message; keep START in English: it is the word the phone company obeys.
    return str(
        gettext(
            "You will get no more messages from %(clinics)s. To get them again, reply START.",
            clinics=_names(clinics),
        )
    )


def _started(receiving: Sequence[Clinic], held: Sequence[Clinic], zone: str) -> str:
    lines = []
    if receiving:
        # TRANSLATORS: a text message; keep STOP in English: it is the word the phone company obeys.
        lines.append(
            gettext(
                "You will get messages from %(clinics)s. To stop them, reply STOP.",
                clinics=_names(receiving),
            )
        )
    for clinic in held:
        if clinic.contact_phone:
            # TRANSLATORS: a text message. The clinic turned messages off for this patient.
            lines.append(
                gettext(
                    "To get messages from %(clinic)s again, please call %(phone)s.",
                    clinic=clinic.name,
                    phone=phone(clinic.contact_phone, zone),
                )
            )
        else:
            # TRANSLATORS: a text message. The clinic turned messages off for this patient.
            lines.append(
                gettext(
                    "To get messages from %(clinic)s again, please contact the clinic.",
                    clinic=clinic.name,
                )
            )
    return "\n".join(lines)


def _help(clinics: Sequence[Clinic], zone: str) -> str:
    lines = []
    for clinic in clinics:
        if clinic.contact_phone:
            # TRANSLATORS: a text message answering HELP: the clinic and its phone number.
            lines.append(
                gettext(
                    "%(clinic)s: call %(phone)s.",
                    clinic=clinic.name,
                    phone=phone(clinic.contact_phone, zone),
                )
            )
        elif clinic.contact_email:
            # TRANSLATORS: a text message answering HELP: the clinic and its email address.
            lines.append(
                gettext(
                    "%(clinic)s: write to %(email)s.",
                    clinic=clinic.name,
                    email=clinic.contact_email,
                )
            )
        else:
            lines.append(clinic.name)
    # TRANSLATORS: a text message; keep STOP and START in English (the phone company obeys them).
    lines.append(gettext("Reply STOP to stop messages, START to get them again."))
    return "\n".join(lines)


def _unknown_sender_help() -> str:
    """For a number no patient has: nothing about who we are writing to, or why."""
    return str(
        gettext(
            "Automated messages from a clinic. Reply STOP to stop them. For help, contact the "
            "clinic that wrote to you."
        )
    )


# Delivery reports ------------------------------------------------------------------------------

# A message's life at Twilio, in order; the last three end it. "read" (WhatsApp) comes after
# delivery. Reports for other states ("canceled", "partially_delivered", ...) are not stored.
DELIVERY_ORDER = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}
FAILED_DELIVERY = frozenset({"undelivered", "failed"})
ERROR_CODE = re.compile(r"[0-9]{1,10}")


def record_delivery(
    session: Session, sid: str, status: str, error_code: str | None, *, now: dt.datetime
) -> bool:
    """Store a delivery report on the message it is about (flush, never commit).

    One compare-and-set UPDATE: the row changes only while its stored status is earlier than the
    reported one, so two reports racing each other end the same as in order. False when no
    message has this sid (not ours, or its sending is not recorded yet) or the report is old.
    """
    rank = DELIVERY_ORDER.get(status)
    if rank is None:
        return False
    earlier = [name for name, r in DELIVERY_ORDER.items() if r < rank]
    values: dict[str, object] = {"delivery_status": status}
    if status == "delivered":
        values["delivered_at"] = now
    if status in FAILED_DELIVERY:
        code = error_code if error_code and ERROR_CODE.fullmatch(error_code) else None
        values["last_error"] = f"provider reported {status}" + (f" (error {code})" if code else "")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Notification)
        .where(
            Notification.provider_message_id == sid,
            or_(Notification.delivery_status.is_(None), Notification.delivery_status.in_(earlier)),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)
