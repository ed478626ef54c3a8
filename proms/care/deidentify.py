"""De-identification for exports: keyed pseudonyms, a date shift per patient, age bands.

`Identity` leaves identifiers and dates as they are (identified exports); `Pseudonyms` replaces
every id with a keyed HMAC-SHA256 pseudonym and moves every date of one patient by the same
number of days. docs/exports.md says what this protects against and what it does not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

PRODUCTION = "production"
DEFAULT_PSEUDONYM_KEY = "dev-only-insecure-export-pseudonym-key"
MIN_KEY_LENGTH = 32
# Every date of one patient moves by the same number of days, never 0, at most this many.
MAX_SHIFT_DAYS = 180
# Ages in bands of five years, everyone from 90 in one band (HIPAA Safe Harbor's rule for ages).
AGE_BAND_YEARS = 5
TOP_AGE = 90


class ExportRefused(RuntimeError):
    """This export must not run with this configuration (the message says what to set)."""


class Identity:
    """Identified exports: the database's own ids, dates as they are."""

    deidentified: bool = False

    def patient(self, patient_id: int) -> str:
        return str(patient_id)

    def course(self, course_id: int | None) -> str | None:
        return None if course_id is None else str(course_id)

    def response(self, response_id: int) -> str:
        return str(response_id)

    def score(self, score_id: int) -> str:
        return str(score_id)

    def shift_days(self, patient_id: int) -> int:
        return 0


class Pseudonyms(Identity):
    """De-identified exports: keyed HMAC-SHA256 pseudonyms and a date shift per patient.

    The same key gives the same pseudonym for the same patient in every export, so exports
    taken months apart can be joined; without the key nobody can go from a pseudonym back to a
    patient, nor from a patient to a pseudonym (a plain hash of a small id could be reversed
    by trying every id). Pseudonyms begin with a letter so that no spreadsheet reads one as a
    number (a hex string such as 12e45 would become 1.2E+46).
    """

    deidentified = True  # type: ignore[assignment]

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a pseudonym key is needed")
        self._key = key

    def _digest(self, kind: str, value: int) -> bytes:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def _name(self, prefix: str, kind: str, value: int) -> str:
        # 80 bits: collisions are negligible for millions of patients.
        return prefix + self._digest(kind, value)[:10].hex()

    def patient(self, patient_id: int) -> str:
        return self._name("P", "patient", patient_id)

    def course(self, course_id: int | None) -> str | None:
        return None if course_id is None else self._name("C", "course", course_id)

    def response(self, response_id: int) -> str:
        return self._name("R", "response", response_id)

    def score(self, score_id: int) -> str:
        return self._name("S", "score", score_id)

    def shift_days(self, patient_id: int) -> int:
        """-180..-1 or 1..180 days, the same for every date of this patient."""
        span = 2 * MAX_SHIFT_DAYS
        n = int.from_bytes(self._digest("date-shift", patient_id)[:8], "big") % span
        return n - MAX_SHIFT_DAYS if n < MAX_SHIFT_DAYS else n - MAX_SHIFT_DAYS + 1


def pseudonym_key_problem(config: Mapping[str, Any]) -> str | None:
    """Why de-identified exports must not use the configured key; None when they may."""
    key = str(config.get("EXPORT_PSEUDONYM_KEY") or "")
    if config.get("ENV") != PRODUCTION:
        return None if key else "EXPORT_PSEUDONYM_KEY is empty"
    if key and key != DEFAULT_PSEUDONYM_KEY and len(key) >= MIN_KEY_LENGTH:
        return None
    return (
        "de-identified exports need a secret pseudonym key in production: set "
        "PROMS_EXPORT_PSEUDONYM_KEY (or EXPORT_PSEUDONYM_KEY in instance/config.py) to at least "
        f"{MIN_KEY_LENGTH} random characters, e.g. python -c 'import secrets; "
        "print(secrets.token_hex(32))', and keep it: another key gives other pseudonyms"
    )


def shifted(value: Any, days: int) -> Any:
    """A date or datetime moved by `days`; anything else as it is."""
    if days and isinstance(value, dt.date):  # datetimes are dates too
        return value + dt.timedelta(days=days)
    return value


def age_band(birth_on: dt.date | None, on: dt.date) -> str | None:
    """The age on a day as a five-year band ("60-64"), "90+" from 90."""
    if birth_on is None:
        return None
    age = on.year - birth_on.year - ((on.month, on.day) < (birth_on.month, birth_on.day))
    if age < 0:
        return None
    if age >= TOP_AGE:
        return f"{TOP_AGE}+"
    low = age // AGE_BAND_YEARS * AGE_BAND_YEARS
    return f"{low}-{low + AGE_BAND_YEARS - 1}"


def pseudonyms(config: Mapping[str, Any]) -> Pseudonyms:
    """The configured pseudonyms; ExportRefused when the key is not fit for use."""
    problem = pseudonym_key_problem(config)
    if problem:
        raise ExportRefused(problem)
    return Pseudonyms(str(config["EXPORT_PSEUDONYM_KEY"]).encode("utf-8"))
