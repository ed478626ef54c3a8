"""Alerts from submitted answers: each kind filed as itself with its tier and rule, once per
patient, rule and time point (also when two writers try at once), and revisited by `rescore`."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from proms.admin.services import enroll_patient
from proms.catalog.services import deployment_registry, snapshot
from proms.db import db
from proms.instruments.registry import bundled_registry
from proms.outcomes.alerts import alert_row, file_alerts, severity_alerts
from proms.outcomes.models import Alert, AlertKind, AlertStatus, AlertTier, Score
from proms.outcomes.rescore import rescore
from proms.outcomes.services import record_submission
from proms.scheduling.models import Assessment
from proms.scoring.types import Direction
from proms.surveys.models import ResponseStatus, SurveyResponse
from tests.helpers import World

SUBMITTED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def worst(code: str) -> dict[str, int | None]:
    """The worst answer to every item (the highest value when higher is worse)."""
    definition = bundled_registry().get(code)
    pick = max if definition.direction is Direction.HIGHER_IS_WORSE else min
    return {item.id: pick(item.values) for item in definition.items}


def baseline_of(world: World) -> Assessment:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 3, 2)
    )
    db.session.flush()
    return min(enrollment.assessments, key=lambda a: a.opens_at)


def respond(assessment: Assessment, answers: Mapping[str, Mapping[str, int | None]]) -> list[Alert]:
    """Submit one response per instrument at the assessment; the alerts the submission filed."""
    responses = []
    for code, values in answers.items():
        response = SurveyResponse(
            assessment=assessment,
            instrument=snapshot(db.session, bundled_registry().get(code)),
            answers=dict(values),
            status=ResponseStatus.SUBMITTED,
            submitted_at=SUBMITTED,
        )
        db.session.add(response)
        responses.append(response)
    db.session.flush()
    outcome = record_submission(db.session, deployment_registry(db.session), assessment, responses)
    db.session.commit()
    return list(outcome.alerts)


def every_alert() -> list[Alert]:
    db.session.commit()  # a new transaction: see what other sessions committed
    return list(db.session.scalars(sa.select(Alert).order_by(Alert.rule)))


def test_the_worst_baseline_raises_each_kind_as_itself_with_its_tier(world: World) -> None:
    """The issue's patient: pain interference T 75.6, physical function T 22.5, PEG 10, plus a
    severe side effect. A baseline has nothing to worsen from; severity rules hold there too."""
    baseline = baseline_of(world)
    side_effects = {"hallucinations": 3, "dissociation": 1}
    filed = respond(
        baseline,
        {
            "promis-pi-4a": worst("promis-pi-4a"),
            "promis-pf-4a": worst("promis-pf-4a"),
            "peg": worst("peg"),
            "infusion-side-effects": side_effects,
        },
    )
    alerts = every_alert()
    assert sorted(a.id for a in filed) == sorted(a.id for a in alerts)
    assert [(a.kind, a.tier, a.rule) for a in alerts] == [
        (AlertKind.SEVERITY, AlertTier.URGENT, "severity:peg:total>=8"),
        (AlertKind.SEVERITY, AlertTier.NEXT_VISIT, "severity:promis-pf-4a:total<=30"),
        (AlertKind.SEVERITY, AlertTier.URGENT, "severity:promis-pi-4a:total>=70"),
        (AlertKind.SIDE_EFFECT, AlertTier.URGENT, "side_effect:infusion-side-effects"),
    ]
    assert {(a.timepoint_key, a.assessment_id, a.status) for a in alerts} == {
        ("baseline", baseline.id, AlertStatus.OPEN)
    }
    scores = {s.instrument_code: s for s in db.session.scalars(sa.select(Score))}
    by_rule = {a.rule: a for a in alerts}
    pain = by_rule["severity:promis-pi-4a:total>=70"]
    assert pain.score_id == scores["promis-pi-4a"].id
    assert pain.detail["value"] == scores["promis-pi-4a"].t_score == 75.6
    assert pain.detail["source"].startswith("HealthMeasures, PROMIS Score Cut Points")
    assert by_rule["severity:promis-pf-4a:total<=30"].detail["value"] == 22.5
    assert by_rule["severity:peg:total>=8"].detail["value"] == scores["peg"].raw_score == 10
    assert by_rule["side_effect:infusion-side-effects"].detail == {
        "instrument": "infusion-side-effects",
        "items": ["hallucinations"],
    }


def test_one_alert_per_patient_rule_and_time_point(world: World) -> None:
    baseline = baseline_of(world)
    [first] = respond(baseline, {"peg": {"PEG1": 10, "PEG2": 9, "PEG3": 8}})
    patient = world.patients_a[0]
    score = db.session.get(Score, first.score_id)
    definition = bundled_registry().get("peg")
    [due] = severity_alerts(definition, "total", score.t_score, score.raw_score, score.id)
    row = alert_row(
        due,
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        assessment_id=baseline.id,
        timepoint_key="baseline",
    )
    assert file_alerts(db.session, [row, dict(row)]) == []  # filed already: skipped
    db.session.commit()
    assert [a.id for a in every_alert()] == [first.id]
    # The database itself refuses a second one, whoever writes it.
    db.session.add(Alert(**{**row, "detail": {}}))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_two_writers_filing_the_same_alert_at_once_file_one(app: Flask, world: World) -> None:
    """The second insert waits for the first transaction (PostgreSQL's unique index; SQLite's
    one writer), then skips the row instead of failing or doubling it."""
    baseline = baseline_of(world)
    patient = world.patients_a[0]
    db.session.commit()
    row = {
        "patient_id": patient.id,
        "clinic_id": patient.clinic_id,
        "assessment_id": baseline.id,
        "score_id": None,
        "kind": AlertKind.SIDE_EFFECT,
        "tier": AlertTier.URGENT,
        "rule": "side_effect:infusion-side-effects",
        "timepoint_key": "baseline",
        "detail": {"instrument": "infusion-side-effects", "items": ["headache"]},
    }
    inserted: list[int] = []
    first_in = threading.Event()

    def writer(hold: bool) -> None:
        with app.app_context(), Session(db.engine) as session:
            inserted.extend(a.id for a in file_alerts(session, [row]))
            if hold:
                first_in.set()
                threading.Event().wait(0.3)  # the other writer is waiting meanwhile
            session.commit()

    one = threading.Thread(target=writer, args=(True,))
    one.start()
    assert first_in.wait(10)
    two = threading.Thread(target=writer, args=(False,))
    two.start()
    one.join(10)
    two.join(10)
    assert len(inserted) == 1
    assert [a.id for a in every_alert()] == inserted


def test_rescore_marks_an_alert_no_longer_met_and_raises_one_now_due(
    world: World, runner: FlaskCliRunner
) -> None:
    baseline = baseline_of(world)
    # Pain interference that scores T 61.2, stored as an older table had it (T 75.6) with the
    # severe-level alert that value raised; and a PEG of 10 whose alert an older release lacked.
    [pain, peg] = respond(
        baseline,
        {
            "promis-pi-4a": {"PAININ9": 5, "PAININ22": 5, "PAININ31": 5, "PAININ34": 5},
            "peg": {"PEG1": 10, "PEG2": 10, "PEG3": 10},
        },
    )
    assert (pain.rule, peg.rule) == ("severity:promis-pi-4a:total>=70", "severity:peg:total>=8")
    pain_score = db.session.get(Score, pain.score_id)
    response = db.session.get(SurveyResponse, pain_score.response_id)
    for answer in response.answer_rows:
        answer.value = {"PAININ9": 3, "PAININ22": 2, "PAININ31": 4, "PAININ34": 3}[answer.item_id]
    db.session.delete(db.session.get(Alert, peg.id))
    db.session.commit()

    result = runner.invoke(args=["rescore"])
    assert result.exit_code == 0, result.output
    assert "Alerts: 1 raised, 1 no longer met, 0 met again, 0 updated." in result.output
    assert (
        f"alert {pain.id} (severity:promis-pi-4a:total>=70 at baseline) no longer met: "
        "T 75.6 -> T 61.2"
    ) in result.output

    alerts = {a.rule: a for a in every_alert()}
    kept = alerts["severity:promis-pi-4a:total>=70"]
    assert kept.id == pain.id
    assert kept.status is AlertStatus.OPEN  # kept, not deleted: someone may have acted on it
    mark = kept.detail["superseded_by_rescore"]
    assert (mark["before"]["value"], mark["after"]["value"], mark["after"]["met"]) == (
        75.6,
        61.2,
        False,
    )
    raised = alerts["severity:peg:total>=8"]
    assert raised.detail["raised_by_rescore"]["scoring_version"]
    assert f"alert {raised.id} (severity:peg:total>=8 at baseline) raised" in result.output

    again = rescore(db.session, deployment_registry(db.session))
    assert again.alerts == []  # nothing changed since: nothing to say
