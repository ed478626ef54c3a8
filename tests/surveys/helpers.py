"""Patient survey helpers: the test patient's details, the questions a time point asks, a browser.

`Survey` drives the patient pages through a test client the way a browser does: it reads the
CSRF token from the page it is on (tests.helpers.CSRF_RE) and posts it back. `snapshot_rows`
records what a request could change, to show that a refused one changed nothing.
tests/surveys/conftest.py builds its fixtures (`patient`, `enrollment`, `link`, `survey`, ...)
from these.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from proms.admin.models import Enrollment
from proms.db import db, utcnow
from proms.instruments.model import Item
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Alert, Score
from proms.scheduling.models import Assessment, Notification
from proms.surveys.models import AccessToken, SurveyResponse
from tests.helpers import CSRF_RE

PATIENT_ZONE = "America/New_York"
BIRTH_ON = dt.date(1948, 11, 9)
# Details that no patient page may show (nothing about the patient is revealed by a link).
PATIENT_DETAILS = {
    "mrn": "MRN-4471",
    "given_name": "Zelda",
    "family_name": "Quixote",
    "email": "zelda.quixote@example.org",
    "phone": "+12165550199",
    "birth_year": str(BIRTH_ON.year),
}
CLINIC_PHONE = "+12165550100"  # world.clinic_a's contact number

BASELINE_CODES = ("promis-pi-4a", "promis-pf-4a", "promis-sd-4a", "pass-20", "peg")
END_OF_COURSE_CODES = (*BASELINE_CODES, "infusion-side-effects")

# A value every item of each instrument offers: the default answer of `answer_all`.
DEFAULT_VALUES = {
    "promis-pi-4a": 3,
    "promis-pf-4a": 3,
    "promis-sd-4a": 3,
    "pass-20": 2,
    "peg": 5,
    "infusion-side-effects": 0,
}


def assert_friendly_429(body: str) -> None:
    """A rate-limited patient is told to wait and try again, in words, not "3 per 1 minute"."""
    text = " ".join(body.lower().split())
    assert "wait a minute" in text
    assert "try again" in text
    assert not re.search(r"\d+ per \d* ?(second|minute|hour|day)", text)
    assert "traceback" not in text


# The plan ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedQuestion:
    number: int
    code: str
    item: Item


def planned_questions(codes: Iterable[str]) -> list[PlannedQuestion]:
    """The questions a time point asks, numbered in the protocol's instrument order."""
    registry = bundled_registry()
    questions: list[PlannedQuestion] = []
    for code in codes:
        for item in registry.get(code).items:
            questions.append(PlannedQuestion(len(questions) + 1, code, item))
    return questions


def number_of(codes: Iterable[str], code: str, item_id: str) -> int:
    for question in planned_questions(codes):
        if question.code == code and question.item.id == item_id:
            return question.number
    raise KeyError((code, item_id))


# The database --------------------------------------------------------------------------------


def count(model: type) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def snapshot_rows() -> dict[str, Any]:
    """What a request could change: row counts, assessment states, token use."""
    db.session.expire_all()
    return {
        "survey_response": count(SurveyResponse),
        "access_token": count(AccessToken),
        "notification": count(Notification),
        "score": count(Score),
        "alert": count(Alert),
        "assessments": sorted(
            (a.id, a.status.value, a.started_at, a.completed_at)
            for a in db.session.scalars(select(Assessment))
        ),
        "tokens": sorted(
            (t.id, t.last_used_at, t.failed_identity_count, t.identity_locked_until)
            for t in db.session.scalars(select(AccessToken))
        ),
        "answers": sorted(
            (r.id, r.status.value, repr(sorted(r.answers.items())))
            for r in db.session.scalars(select(SurveyResponse))
        ),
    }


def assessment_of(enrollment: Enrollment, key: str) -> Assessment:
    for assessment in enrollment.assessments:
        if assessment.timepoint.key == key:
            return assessment
    raise KeyError(key)


def open_now(assessment: Assessment, *, days: int = 2) -> None:
    """Move an assessment's window so that it is open now (the clock moved on)."""
    now = utcnow()
    assessment.opens_at = now - dt.timedelta(days=1)
    assessment.due_at = now
    assessment.closes_at = now + dt.timedelta(days=days)
    db.session.commit()


# A patient's browser -------------------------------------------------------------------------


def csrf_of(response: TestResponse) -> str | None:
    match = CSRF_RE.search(response.get_data(as_text=True))
    return match.group(1) if match else None


def path_of(response: TestResponse) -> str:
    """The path (and query) a redirect points at."""
    location = urlsplit(response.headers["Location"])
    return location.path + (f"?{location.query}" if location.query else "")


@dataclass
class Survey:
    """One patient browser on one link."""

    client: FlaskClient
    token: str
    csrf: str | None = None
    pages: list[TestResponse] = field(default_factory=list)

    def _seen(self, response: TestResponse) -> TestResponse:
        self.pages.append(response)
        token = csrf_of(response)
        if token:
            self.csrf = token
        return response

    def open(self) -> TestResponse:
        return self._seen(self.client.get(f"/s/{self.token}"))

    def start(self) -> TestResponse:
        if self.csrf is None:
            opened = self.open()
            assert opened.status_code == 200, opened.get_data(as_text=True)
        response = self.client.post(f"/s/{self.token}", data={"csrf_token": self.csrf})
        self.pages.append(response)
        return response

    def started(self) -> Survey:
        """Open the link and press Start; the survey cookie is set."""
        response = self.start()
        assert response.status_code == 303, response.get_data(as_text=True)
        return self

    def get(self, path: str) -> TestResponse:
        return self._seen(self.client.get(path))

    def question(self, number: int, *, from_review: bool = False) -> TestResponse:
        return self.get(f"/s/q/{number}" + ("?from=review" if from_review else ""))

    def post_question(
        self, number: int, data: Mapping[str, Any], *, from_review: bool = False
    ) -> TestResponse:
        path = f"/s/q/{number}" + ("?from=review" if from_review else "")
        response = self.client.post(path, data={"csrf_token": self.csrf, **data})
        self.pages.append(response)
        return response

    def answer(
        self, number: int, value: object, *, from_review: bool = False, read_page: bool = True
    ) -> TestResponse:
        """Answer one question as a patient does: open its page, choose, press Next."""
        if read_page or self.csrf is None:
            page = self.question(number, from_review=from_review)
            assert page.status_code == 200, page.get_data(as_text=True)
        return self.post_question(
            number, {"answer": str(value), "next": "Next"}, from_review=from_review
        )

    def skip(self, number: int) -> TestResponse:
        page = self.question(number)
        assert page.status_code == 200
        return self.post_question(number, {"skip": "Skip this question"})

    def answer_all(
        self,
        codes: Iterable[str],
        overrides: Mapping[tuple[str, str], int] | None = None,
        *,
        defaults: Mapping[str, int] = DEFAULT_VALUES,
        start_at: int = 1,
        read_pages: bool = True,
    ) -> dict[int, int]:
        """Answer every question from `start_at`; returns the value given per number."""
        given: dict[int, int] = {}
        overrides = overrides or {}
        for question in planned_questions(codes):
            if question.number < start_at:
                continue
            value = overrides.get((question.code, question.item.id), defaults[question.code])
            response = self.answer(question.number, value, read_page=read_pages)
            assert response.status_code == 303, response.get_data(as_text=True)
            given[question.number] = value
        return given

    def review(self) -> TestResponse:
        return self.get("/s/review")

    def submit(self, *, read_review: bool = True) -> TestResponse:
        if read_review:
            page = self.review()
            assert page.status_code == 200, page.get_data(as_text=True)
        response = self.client.post("/s/submit", data={"csrf_token": self.csrf})
        self.pages.append(response)
        return response
