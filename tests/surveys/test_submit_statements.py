"""A submit runs a fixed number of SQL statements, whatever the number of questionnaires.

The count covers the whole submit service of a follow-up with a baseline to compare with:
claiming the assessment, closing the drafts, reading the answers, scoring, the baseline,
alerts and cancelling reminders. It must not grow with the instruments of the time point.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from flask import Flask

from proms.admin.models import Patient
from proms.admin.services import bundled_protocol, enroll_patient, install_protocol
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.scheduling.models import Assessment
from proms.surveys import services
from tests.helpers import World, add_patient, counted_statements

ALL_CODES = ("promis-pi-4a", "promis-pf-4a", "promis-sd-4a", "pass-20", "peg")


def _protocol_with(world: World, codes: tuple[str, ...], slug: str):  # type: ignore[no-untyped-def]
    spec = copy.deepcopy(bundled_protocol("ketamine-infusion-course"))
    spec["slug"] = slug
    spec["timepoints"] = [tp for tp in spec["timepoints"] if tp["key"] in ("baseline", "month_1")]
    for tp in spec["timepoints"]:
        tp["instruments"] = [{"code": code} for code in codes]
    return install_protocol(db.session, world.clinic_a, spec)


def _answer_everything(app: Flask, assessment: Assessment, now: dt.datetime, value: int) -> None:
    registry = deployment_registry(db.session)
    plan = services.start(db.session, registry, assessment, now=now, env="test")
    for question in plan.questions:
        values = question.item.values
        services.save_answer(db.session, question, values[min(value, len(values) - 1)], now=now)
    db.session.commit()


def _submit_statements(app: Flask, world: World, codes: tuple[str, ...], mrn: str) -> int:
    patient: Patient = add_patient(world.clinic_a, mrn)
    protocol = _protocol_with(world, codes, f"course-{len(codes)}")
    anchor = dt.date(2026, 3, 2)
    enrollment = enroll_patient(db.session, patient, protocol, anchor)
    db.session.commit()
    baseline, month_1 = sorted(enrollment.assessments, key=lambda a: a.opens_at)
    # Baseline: few problems; a month later: many (a worsening to classify and alert).
    _answer_everything(app, baseline, baseline.opens_at + dt.timedelta(hours=1), 0)
    services.submit(
        db.session,
        deployment_registry(db.session),
        baseline,
        now=baseline.opens_at + dt.timedelta(hours=2),
    )
    db.session.commit()
    now = month_1.opens_at + dt.timedelta(hours=1)
    _answer_everything(app, month_1, now, 4)
    assessment_id = month_1.id
    db.session.close()  # a new request: nothing loaded yet but what the view loads
    assessment = db.session.get(Assessment, assessment_id)
    assert assessment is not None
    registry = deployment_registry(db.session)
    with counted_statements() as statements:
        result = services.submit(db.session, registry, assessment, now=now + dt.timedelta(hours=1))
    db.session.commit()
    assert not result.already_submitted
    assert {score.instrument_code for score in result.scores} == set(codes)
    return len(statements)


@pytest.mark.usefixtures("app")
def test_a_submit_runs_as_many_statements_for_five_questionnaires_as_for_one(
    app: Flask, world: World
) -> None:
    one = _submit_statements(app, world, ("promis-pi-4a",), "S1")
    five = _submit_statements(app, world, ALL_CODES, "S5")
    print(f"statements of a submit: {one} (1 questionnaire), {five} (5 questionnaires)")  # noqa: T201
    assert five == one
