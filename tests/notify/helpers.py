"""Messages and configuration for the channel tests."""

from __future__ import annotations

from typing import Any

from proms import config
from proms.notify.base import OutgoingMessage

PATIENT_EMAIL = "ana.patient@example.org"
PATIENT_PHONE = "+12165550123"
LINK = "https://proms.lakeside.example/s/" + "t" * 43
UNSUBSCRIBE = "https://proms.lakeside.example/u/" + "u" * 43
MAIL_FROM = "Lakeside Clinic <no-reply@lakeside.example>"

# Words that would say something about a patient's health. No message may contain one
# (architecture.md, "No health information in URLs, logs, emails or texts").
HEALTH_WORDS = (
    # English
    "ketamine", "infusion", "pain", "painful", "depression", "depressed", "anxiety", "mood",
    "treatment", "therapy", "diagnosis", "drug", "medicine", "medication", "dose", "symptom",
    "score", "promis", "phq", "gad", "questionnaire", "health", "disease", "condition",
    "mental", "opioid",
    # Spanish
    "ketamina", "infusión", "dolor", "depresión", "ansiedad", "ánimo", "tratamiento",
    "terapia", "diagnóstico", "medicamento", "medicina", "dosis", "síntoma", "puntaje",
    "puntuación", "cuestionario", "salud", "enfermedad", "mental", "opioide",
)  # fmt: skip


def email_message(**overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "notification_id": 7,
        "idempotency_key": "invite:7:email",
        "channel": "email",
        "to": PATIENT_EMAIL,
        "subject": "Your follow-up questions from Lakeside Clinic",
        "text": f"Hello Ana,\n\nAnswer the questions:\n{LINK}\n",
        "html": f'<!doctype html><p>Hello Ana,</p><p><a href="{LINK}">Answer</a></p>',
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def sms_message(**overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "notification_id": 8,
        "idempotency_key": "invite:8:sms",
        "channel": "sms",
        "to": PATIENT_PHONE,
        "text": f"Lakeside Clinic: Ana, how are you? {LINK} Answer by Mar 12. Reply STOP to stop",
        "status_callback_url": None,
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def default_config(**overrides: Any) -> dict[str, Any]:
    """proms.config's defaults (what an app starts from), with `overrides`."""
    values = {name: getattr(config, name) for name in dir(config) if name.isupper()}
    values.update(overrides)
    return values
