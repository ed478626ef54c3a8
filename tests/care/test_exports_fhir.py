"""The FHIR export: a Bundle that fhir.resources validates, with references that resolve.

fhir.resources 8 has no R4 (4.0.1) package: `R4B` (4.3.0) has the same Bundle, Patient,
QuestionnaireResponse and Observation elements as R4 for everything exported here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask
from sqlalchemy import func, select

from proms.admin.models import Enrollment, Patient
from proms.care import exports
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.instruments.fhir import LOINC_SYSTEM, to_questionnaire
from proms.instruments.registry import Registry, bundled_registry
from proms.outcomes.models import Score
from proms.scheduling.models import Assessment
from proms.surveys.models import ResponseStatus, SurveyResponse
from tests.care.exports_world import ExportWorld, build
from tests.helpers import World


@pytest.fixture
def ew(world: World) -> ExportWorld:
    return build(world)


def bundle(
    app: Flask, clinic_ids: tuple[int, ...], registry: Registry | None = None, **options: Any
) -> dict[str, Any]:
    spec = exports.ExportSpec(exports.ExportFormat.FHIR, clinic_ids, **options)
    ids = exports.identifiers_for(spec, app.config)
    registry = registry or deployment_registry(db.session)
    running = exports.export(db.engine, registry, spec, ids, now=utcnow())
    text = "".join(running.chunks)
    data: dict[str, Any] = json.loads(text)
    assert running.counter.rows == len(data.get("entry", []))
    return data


def resources(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == kind]


def count(statement: Any) -> int:
    return int(db.session.scalar(statement))


def test_the_bundle_validates_and_holds_every_patient_response_and_score(
    app: Flask, ew: ExportWorld
) -> None:
    for deidentified in (False, True):
        check_bundle(bundle(app, (ew.world.clinic_a.id,), deidentified=deidentified), ew)
    empty = bundle(app, (ew.world.clinic_a.id,), protocol="no-such-protocol")
    assert "entry" not in empty  # FHIR JSON has no empty arrays
    Bundle.model_validate(empty)


def check_bundle(data: dict[str, Any], ew: ExportWorld) -> None:
    a = ew.world.clinic_a
    parsed = Bundle.model_validate(data)
    assert parsed.type == "collection"
    in_a = Patient.clinic_id == a.id
    patients = count(select(func.count()).select_from(Patient).where(in_a))
    submitted = count(
        select(func.count(SurveyResponse.id))
        .join(Assessment, SurveyResponse.assessment_id == Assessment.id)
        .join(Enrollment, Assessment.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(in_a, SurveyResponse.status == ResponseStatus.SUBMITTED)
    )
    scores = count(select(func.count(Score.id)).join(Patient).where(in_a))
    # Every patient of clinic A with a course (three), not those without one.
    assert len(resources(data, "Patient")) == 3 < patients
    assert len(resources(data, "QuestionnaireResponse")) == submitted > 0
    assert len(resources(data, "Observation")) == scores > 0
    urls = [e["fullUrl"] for e in data["entry"]]
    assert len(set(urls)) == len(urls)
    for entry in data["entry"]:
        for key in ("subject", "source"):
            if key in entry["resource"]:
                assert entry["resource"][key]["reference"] in urls
        for derived in entry["resource"].get("derivedFrom", []):
            assert derived["reference"] in urls


def test_responses_point_at_the_exported_questionnaire_and_its_answer_codes(
    app: Flask, ew: ExportWorld
) -> None:
    data = bundle(app, (ew.world.clinic_a.id,))
    registry = bundled_registry()
    stored = {
        r.id: r
        for r in db.session.scalars(
            select(SurveyResponse).where(SurveyResponse.status == ResponseStatus.SUBMITTED)
        )
    }
    for qr in resources(data, "QuestionnaireResponse"):
        response = stored[int(qr["id"])]
        definition = registry.get(response.instrument.code, response.instrument.version)
        questionnaire = to_questionnaire(definition)
        assert qr["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
        options = {
            item["linkId"]: {o["valueCoding"]["code"] for o in item["answerOption"]}
            for item in questionnaire["item"]
            if item["type"] == "choice"
        }
        answers = {item["linkId"]: item["answer"][0]["valueCoding"]["code"] for item in qr["item"]}
        expected = {k: str(v) for k, v in response.answers.items() if v is not None}
        assert answers == expected
        assert all(code in options[link] for link, code in answers.items())
        assert qr["authored"] == response.submitted_at.isoformat(timespec="seconds")
        if response.entry_source:
            assert "author" in qr


@pytest.mark.parametrize("released", [True, False])
def test_observations_carry_loinc_where_the_definition_has_it_and_derive_from_the_response(
    app: Flask, ew: ExportWorld, released: bool
) -> None:
    """Also when this release no longer ships the version answered (`released` False): the
    definition stored with the responses says the same, read while the export streams."""
    registry = bundled_registry()
    shipped = registry if released else Registry(d for d in registry if d.code != "promis-pi-4a")
    data = bundle(app, (ew.world.clinic_a.id,), registry=shipped)
    urls = {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["fullUrl"] for e in data["entry"]
    }
    scores = {s.id: s for s in db.session.scalars(select(Score))}
    with_loinc = 0
    for observation in resources(data, "Observation"):
        score = scores[int(observation["id"])]
        definition = registry.get(score.instrument_code, score.instrument_version)
        loinc = [c["code"] for c in observation["code"]["coding"] if c["system"] == LOINC_SYSTEM]
        if definition.loinc.score and score.scale == "total" and score.t_score is not None:
            assert loinc == [definition.loinc.score]
            with_loinc += 1
        else:
            assert loinc == []
        value = score.t_score if score.t_score is not None else score.raw_score
        assert observation["valueQuantity"]["value"] == pytest.approx(value)
        response_url = urls[("QuestionnaireResponse", str(score.response_id))]
        assert observation["derivedFrom"] == [{"reference": response_url}]
    assert with_loinc > 0  # PROMIS pain interference, physical function, sleep disturbance
    pain = [o for o in resources(data, "Observation") if "promis-pi-4a/total" in str(o["code"])]
    assert pain
    assert all(LOINC_SYSTEM in str(o["code"]) for o in pain)
