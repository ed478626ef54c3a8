"""The thank-you page: what the clinic does next (its own words, in the patient's language, or
the standard text), and when the answers raised an urgent alert, a call to the clinic with its
number, never saying which answer or score."""

from __future__ import annotations

import re

import sqlalchemy as sa

from proms.admin.models import Patient
from proms.db import db
from proms.outcomes.models import Alert, AlertTier
from proms.scheduling.models import Assessment
from tests.helpers import World
from tests.surveys.helpers import BASELINE_CODES, Survey, path_of

PI_ITEMS = ("PAININ9", "PAININ22", "PAININ31", "PAININ34")
CALL = re.compile(r'<div class="notice call" role="alert">(.*?)</div>', re.S)


def thank_you(survey: Survey, overrides: dict[tuple[str, str], int] | None = None) -> str:
    survey.started()
    survey.answer_all(BASELINE_CODES, overrides, read_pages=False)
    sent = survey.submit()
    assert path_of(sent) == "/s/done", sent.get_data(as_text=True)
    page = survey.get("/s/done")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_urgent_answers_ask_the_patient_to_call_the_clinic_without_saying_why(
    survey: Survey, baseline: Assessment
) -> None:
    # The worst pain interference (T 75.6): an urgent alert, severe pain interference.
    page = thank_you(survey, {("promis-pi-4a", item): 5 for item in PI_ITEMS})
    db.session.expire_all()
    tiers = db.session.scalars(sa.select(Alert.tier).where(Alert.assessment_id == baseline.id))
    assert AlertTier.URGENT in set(tiers)
    [box] = CALL.findall(page)
    assert "Please call the clinic today" in box
    assert '<a href="tel:+12165550100">(216) 555-0100</a>' in box  # Clinic A's number
    assert "Clinic A" in box
    for word in ("pain", "interference", "75.6", "score", "severe", "alert", "PROMIS"):
        assert word.lower() not in box.lower(), word
    # The standard text of what happens next; nothing that says all is done.
    assert "will go over them with you at your next visit" in page
    assert "You do not need to do anything else" not in page


def test_other_answers_read_the_clinic_s_own_text_in_the_patient_s_language(
    survey: Survey, patient: Patient, world: World
) -> None:
    patient.language = "es"
    world.clinic_a.next_steps_es = "Una enfermera lee sus respuestas en dos días hábiles.\nGracias."
    world.clinic_a.next_steps_en = "A nurse reads your answers within two working days."
    db.session.commit()
    page = thank_you(survey)
    assert not CALL.findall(page)
    assert "<p>Una enfermera lee sus respuestas en dos días hábiles.</p><p>Gracias.</p>" in page
    assert "A nurse reads" not in page
    assert "No necesita hacer nada más." in page
