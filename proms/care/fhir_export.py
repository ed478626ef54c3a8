"""The FHIR R4 export: a `collection` Bundle written as it is read.

Entries, in this order: a minimal Patient per patient with a course in scope; a
QuestionnaireResponse per submitted response (its `questionnaire` is the canonical URL and
version of the instrument, as `proms.instruments.fhir.to_questionnaire` exports it, and each
answer a Coding whose code is the stored value, as that Questionnaire's answer options say);
then an Observation per score, coded with LOINC where the instrument's definition has a code
for its T-score, and `derivedFrom` the QuestionnaireResponse it was scored from.

Each entry's `fullUrl` is a `urn:uuid:` (a name-based UUID of the resource's type and id) and
references use it, so the Bundle resolves on its own. The Bundle is written entry by entry:
nothing but one response's answers is held in memory.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Connection, Row

from proms.care.deidentify import Identity, shifted
from proms.care.exports import (
    Definitions,
    ExportCounter,
    ExportSpec,
    answer_rows,
    entered_by,
    patient_rows,
    score_rows,
)
from proms.instruments.fhir import CANONICAL_BASE, LOINC_SYSTEM
from proms.instruments.registry import Registry

# Our code systems for what LOINC has no code for.
SCORE_SYSTEM = f"{CANONICAL_BASE}/score"
SCORE_COMPONENT_SYSTEM = f"{CANONICAL_BASE}/score-component"
MRN_SYSTEM = f"{CANONICAL_BASE}/clinic"  # + /<clinic slug>/mrn
PSEUDONYM_SYSTEM = f"{CANONICAL_BASE}/pseudonym"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
# The Bundle's security label when it is de-identified (HL7 v3 ObservationValue: pseudonymized).
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

# Name-based UUIDs of our resources (fullUrl); the namespace is fixed so they are stable.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, CANONICAL_BASE)


def full_url(resource_type: str, resource_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{resource_type}/{resource_id}')}"


def reference(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": full_url(resource_type, resource_id)}


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number


def patient_resource(row: Row[Any], ids: Identity) -> dict[str, Any]:
    """Identified: the MRN (in a system of the clinic), the name and the birth date. De-identified:
    the pseudonym and nothing else."""
    resource_id = ids.patient(row.patient_id)
    resource: dict[str, Any] = {"resourceType": "Patient", "id": resource_id}
    if ids.deidentified:
        resource["identifier"] = [{"system": PSEUDONYM_SYSTEM, "value": resource_id}]
        return resource
    resource["identifier"] = [
        {"system": f"{MRN_SYSTEM}/{row.clinic}/mrn", "value": row.mrn},
    ]
    resource["name"] = [{"family": row.family_name, "given": [row.given_name]}]
    if row.birth_on is not None:
        resource["birthDate"] = row.birth_on.isoformat()
    return resource


def questionnaire_response(rows: list[Row[Any]], ids: Identity) -> dict[str, Any]:
    """One submitted response from its answer rows (skipped items have no answer and are left
    out)."""
    first = rows[0]
    shift = ids.shift_days(first.patient_id)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": ids.response(first.response_id),
        "questionnaire": (
            f"{CANONICAL_BASE}/Questionnaire/{first.instrument_code}|{first.instrument_version}"
        ),
        "status": "completed",
        "subject": reference("Patient", ids.patient(first.patient_id)),
        "authored": _instant(shifted(first.submitted_at, shift)),
        "source": reference("Patient", ids.patient(first.patient_id)),
    }
    if entered_by(first) == "staff":
        resource["author"] = {"display": "clinic staff (entered for the patient)"}
    items = [
        {"linkId": row.item_id, "answer": [{"valueCoding": {"code": str(row.value)}}]}
        for row in rows
        if row.value is not None
    ]
    if items:
        resource["item"] = items
    return resource


def observation(row: Row[Any], definitions: Definitions, ids: Identity) -> dict[str, Any]:
    """One score. The value is the T-score where there is one, else the raw score."""
    definition = definitions.of(row.instrument_id, row.instrument_code, row.instrument_version)
    is_t = row.t_score is not None
    codings: list[dict[str, str]] = []
    if is_t and row.scale == "total" and definition.loinc.score:
        codings.append({"system": LOINC_SYSTEM, "code": definition.loinc.score})
    label = definition.title if row.scale == "total" else f"{definition.title}: {row.scale}"
    codings.append(
        {"system": SCORE_SYSTEM, "code": f"{row.instrument_code}/{row.scale}", "display": label}
    )
    patient_id = ids.patient(row.patient_id)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": ids.score(row.score_id),
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
        "code": {"coding": codings, "text": label},
        "subject": reference("Patient", patient_id),
        "effectiveDateTime": _instant(shifted(row.observed_at, ids.shift_days(row.patient_id))),
    }
    if is_t:
        resource["valueQuantity"] = _quantity(row.t_score, "T-score", "{T-score}")
    else:
        resource["valueQuantity"] = _quantity(row.raw_score, "score", "{score}")
    resource["method"] = {"text": row.method}
    resource["derivedFrom"] = [reference("QuestionnaireResponse", ids.response(row.response_id))]
    components = []
    if is_t and row.raw_score is not None:
        components.append(_component("raw-score", "Raw score", row.raw_score, "score", "{score}"))
    if row.standard_error is not None:
        unit = ("T-score", "{T-score}") if is_t else ("score", "{score}")
        components.append(_component("standard-error", "Standard error", row.standard_error, *unit))
    if components:
        resource["component"] = components
    return resource


def _quantity(value: Any, unit: str, code: str) -> dict[str, Any]:
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": code}


def _component(code: str, display: str, value: Any, unit: str, ucum: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": SCORE_COMPONENT_SYSTEM, "code": code, "display": display}]},
        "valueQuantity": _quantity(value, unit, ucum),
    }


def resources(
    connection: Connection, registry: Registry, spec: ExportSpec, ids: Identity
) -> Iterator[dict[str, Any]]:
    """Patients, then QuestionnaireResponses, then Observations, each from one streamed query."""
    for row in patient_rows(connection, spec):
        yield patient_resource(row, ids)
    for _, answers in itertools.groupby(
        answer_rows(connection, spec), key=lambda row: row.response_id
    ):
        yield questionnaire_response(list(answers), ids)
    definitions = Definitions(connection, registry)
    for row in score_rows(connection, spec):
        yield observation(row, definitions, ids)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def bundle_chunks(
    entries: Iterator[dict[str, Any]],
    *,
    now: dt.datetime,
    ids: Identity,
    counter: ExportCounter,
    batch: int = 200,
) -> Iterator[str]:
    """The Bundle as JSON text: its opening, the entries a batch at a time, its closing."""
    head: dict[str, Any] = {"resourceType": "Bundle"}
    if ids.deidentified:
        head["meta"] = {
            "security": [
                {"system": V3_OBSERVATION_VALUE, "code": "PSEUDED", "display": "pseudonymized"}
            ]
        }
    head |= {"type": "collection", "timestamp": _instant(now)}
    opening = _json(head)
    # Written at the first entry: FHIR's JSON has no empty arrays, so a Bundle with no entries
    # has no "entry" at all.
    parts: list[str] = []
    written = 0
    for resource in entries:
        entry = {
            "fullUrl": full_url(resource["resourceType"], resource["id"]),
            "resource": resource,
        }
        parts.append((opening[:-1] + ',"entry":[' if written == 0 else ",") + _json(entry))
        written += 1
        counter.rows += 1
        if len(parts) >= batch:
            yield "".join(parts)
            parts.clear()
    parts.append("]}" if written else opening)
    yield "".join(parts)
