"""The survey's invariants under requests that really overlap, on SQLite and PostgreSQL alike.

A real threaded server (tests/live.py) gets two requests released at the same moment, with
every SQL statement slowed a little so that they interleave in the database as they would
under load. Each race runs several rounds; every round must keep the invariant:

- an answer acknowledged with a redirect is stored (two tabs answering two questions);
- nothing changes a submitted response (an answer changed while the answers are sent);
- concurrent submits store one set of scores and answer no 5xx;
- wrong dates of birth sent at once all count, and lock the link.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import sqlalchemy as sa
from flask import Flask

from proms.admin.models import Enrollment, Patient
from proms.db import db, utcnow
from proms.outcomes.models import Alert, Score
from proms.scheduling.models import Assessment, AssessmentStatus, Notification, NotificationKind
from proms.surveys import views
from proms.surveys.models import AccessToken, SurveyAnswer, SurveyResponse
from tests.helpers import World, add_patient
from tests.live import Browser, Server, at_once, serve
from tests.surveys.helpers import (
    BASELINE_CODES,
    BIRTH_ON,
    DEFAULT_VALUES,
    assessment_of,
    planned_questions,
)

ROUNDS = 8
QUESTIONS = planned_questions(BASELINE_CODES)


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    # Plain HTTP (no Secure cookies); rate limits out of the way of the rounds.
    app = make_app(
        SESSION_COOKIE_SECURE=False,
        LINK_RATE_LIMIT="10000 per minute",
        IDENTITY_RATE_LIMIT="10000 per minute",
    )
    with serve(app) as live, app.app_context():
        yield live


def committed(statement: sa.Executable) -> list[sa.Row]:
    """Rows as stored, read on a connection of their own."""
    with db.engine.connect() as connection:
        return list(connection.execute(statement).all())


def new_patient(world: World, n: int, enroll: Callable[..., Enrollment]) -> Assessment:
    patient: Patient = add_patient(world.clinic_a, f"R{n}", birth_on=BIRTH_ON)
    db.session.commit()
    return assessment_of(enroll(patient, 3), "baseline")


def started(server: Server, raw: str) -> Browser:
    browser = server.browser()
    assert browser.get(f"/s/{raw}").status == 200
    reply = browser.post(f"/s/{raw}")
    assert reply.status == 303, reply.body
    return browser


def answer_everything(browser: Browser) -> None:
    for question in QUESTIONS:
        reply = browser.post(f"/s/q/{question.number}", {"answer": DEFAULT_VALUES[question.code]})
        assert reply.status == 303, reply.body


def stored_answers(assessment_id: int) -> dict[str, int | None]:
    rows = committed(
        sa.select(SurveyAnswer.item_id, SurveyAnswer.value)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .where(SurveyResponse.assessment_id == assessment_id)
    )
    return {item: value for item, value in rows}


def test_two_tabs_saving_at_the_same_moment_lose_no_answer(
    server: Server, baseline: Assessment, link: str
) -> None:
    tab = started(server, link)  # both tabs share the one survey cookie
    first, second = QUESTIONS[0], QUESTIONS[1]
    for round_ in range(ROUNDS):
        # Each round changes both answers, so an answer lost in the race shows as a stale one.
        one, two = 1 + round_ % 5, 1 + (round_ + 2) % 5
        with server.slow_database():
            replies = at_once(
                partial(tab.post, f"/s/q/{first.number}", {"answer": one}),
                partial(tab.post, f"/s/q/{second.number}", {"answer": two}),
            )
        assert [reply.status for reply in replies] == [303, 303], [r.body for r in replies]
        stored = stored_answers(baseline.id)
        assert (stored[first.item.id], stored[second.item.id]) == (one, two), f"round {round_}"


def test_an_answer_changed_while_the_answers_are_sent_is_saved_before_or_refused(
    server: Server, world: World, enroll: Callable[..., Enrollment], mint: Callable[..., str]
) -> None:
    first = QUESTIONS[0]
    outcomes = set()
    for round_ in range(ROUNDS):
        assessment = new_patient(world, round_, enroll)
        browser = started(server, mint(assessment))
        answer_everything(browser)
        changed_to = DEFAULT_VALUES[first.code] + 1
        with server.slow_database():
            submit, change = at_once(
                partial(browser.post, "/s/submit"),
                partial(browser.post, f"/s/q/{first.number}?from=review", {"answer": changed_to}),
            )
        assert (submit.status, submit.location) == (303, "/s/done"), submit.body
        assert change.status == 303, change.body
        saved = change.location == "/s/review"
        assert saved or change.location == "/s/done?unsaved=1", change.location
        outcomes.add(saved)

        stored = stored_answers(assessment.id)
        assert stored[first.item.id] == (changed_to if saved else DEFAULT_VALUES[first.code])
        # Nothing was written after the submission...
        (submitted_at,) = {
            row.submitted_at
            for row in committed(
                sa.select(SurveyResponse.submitted_at).where(
                    SurveyResponse.assessment_id == assessment.id
                )
            )
        }
        late = committed(
            sa.select(SurveyAnswer.item_id)
            .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
            .where(
                SurveyResponse.assessment_id == assessment.id,
                SurveyAnswer.answered_at > submitted_at,
            )
        )
        assert late == []
        # ...so the stored score is the score of the stored answers.
        items = [q.item.id for q in QUESTIONS if q.code == first.code]
        (raw,) = [
            row.raw_score
            for row in committed(
                sa.select(Score.raw_score).where(
                    Score.assessment_id == assessment.id, Score.instrument_code == first.code
                )
            )
        ]
        assert raw == sum(stored[item] for item in items)  # type: ignore[misc]
    assert outcomes, "no round finished"


def test_two_submits_at_the_same_moment_store_one_set_of_scores(
    server: Server, world: World, enroll: Callable[..., Enrollment], mint: Callable[..., str]
) -> None:
    scales_per_submit: set[int] = set()
    for round_ in range(ROUNDS // 2):
        assessment = new_patient(world, round_, enroll)
        phone = started(server, mint(assessment))
        laptop = started(server, mint(assessment))
        answer_everything(phone)
        laptop.get("/s/review")
        with server.slow_database():
            replies = at_once(partial(phone.post, "/s/submit"), partial(laptop.post, "/s/submit"))
        for reply in replies:
            assert (reply.status, reply.location) == (303, "/s/done"), reply.body
        scores = committed(
            sa.select(Score.response_id, Score.scale).where(Score.assessment_id == assessment.id)
        )
        assert len(scores) == len(set(scores)), "a scale was scored twice"
        scales_per_submit.add(len(scores))
        responses = committed(
            sa.select(SurveyResponse.id).where(SurveyResponse.assessment_id == assessment.id)
        )
        assert len(responses) == len(BASELINE_CODES)
        (status,) = committed(sa.select(Assessment.status).where(Assessment.id == assessment.id))
        assert status[0] is AssessmentStatus.COMPLETED
        alerts = committed(sa.select(Alert.id).where(Alert.assessment_id == assessment.id))
        assert alerts == []  # a baseline has nothing to compare with; no duplicate either
    # Every round stored the same, complete set: every scale of every instrument, once.
    assert len(scales_per_submit) == 1


def test_wrong_dates_of_birth_sent_at_once_all_count_and_lock_the_link(
    app: Flask, server: Server, world: World, baseline: Assessment, link: str
) -> None:
    world.protocol_a.requires_identity_check = True
    db.session.commit()
    limit = server.app.config["IDENTITY_MAX_TRIES"]
    wrong = BIRTH_ON + dt.timedelta(days=1)
    for round_ in range(ROUNDS // 2):
        # Two tries short of the lock: the two sent together must both count and lock it.
        db.session.execute(
            sa.update(AccessToken).values(
                failed_identity_count=limit - 2, identity_locked_until=None
            )
        )
        db.session.commit()
        tabs = [started(server, link) for _ in range(2)]
        for tab in tabs:
            assert tab.get("/s/check").status == 200
        form = {"day": wrong.day, "month": wrong.month, "year": wrong.year}
        with server.slow_database():
            replies = at_once(
                partial(tabs[0].post, "/s/check", form),
                partial(tabs[1].post, "/s/check", form),
            )
        assert sorted(reply.status for reply in replies) in ([400, 429], [429, 429]), [
            r.body for r in replies
        ]
        (locked_until,) = committed(sa.select(AccessToken.identity_locked_until))[0]
        assert locked_until is not None, f"round {round_}: a wrong try was not counted"


def test_two_starts_at_the_same_moment_make_one_set_of_drafts(
    server: Server, world: World, enroll: Callable[..., Enrollment], mint: Callable[..., str]
) -> None:
    """A double tap on Start (or two devices) creates each instrument's draft once."""
    for round_ in range(ROUNDS // 2):
        assessment = new_patient(world, round_, enroll)
        raw = mint(assessment)
        devices = [server.browser() for _ in range(2)]
        for device in devices:
            assert device.get(f"/s/{raw}").status == 200
        with server.slow_database():
            replies = at_once(*(partial(device.post, f"/s/{raw}") for device in devices))
        for reply in replies:
            assert (reply.status, reply.location) == (303, "/s/q/1"), reply.body
        drafts = committed(
            sa.select(SurveyResponse.id).where(SurveyResponse.assessment_id == assessment.id)
        )
        assert len(drafts) == len(BASELINE_CODES)


def test_two_new_link_requests_either_side_of_the_hour_queue_one_message(
    server: Server,
    patient: Patient,
    enroll: Callable[..., Enrollment],
    mint: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most one new link an hour, however the clicks fall: not guarded by an hourly key."""
    assessment = assessment_of(enroll(patient, 3), "baseline")
    expired = mint(assessment, now=utcnow() - dt.timedelta(days=40))
    top = utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    # Each request reads the clock once: the two GETs, then the two POSTs either side of the hour.
    moments = iter([top - dt.timedelta(seconds=s) for s in (3, 2, 1, -1)])
    lock = threading.Lock()

    def clock() -> dt.datetime:
        with lock:
            return next(moments)

    monkeypatch.setattr(views, "utcnow", clock)
    tabs = [server.browser(), server.browser()]
    for tab in tabs:
        assert tab.get(f"/s/{expired}").status == 410
    with server.slow_database(0.03):
        replies = at_once(*(partial(tab.post, f"/s/{expired}/new-link") for tab in tabs))
    assert [reply.status for reply in replies] == [200, 200], [r.body for r in replies]
    queued = committed(
        sa.select(Notification.idempotency_key).where(
            Notification.kind == NotificationKind.NEW_LINK
        )
    )
    assert len(queued) == 1, queued
