"""The export page, its streamed download, who may take which export, the audit, `proms export`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from proms.admin.models import Patient
from proms.auth.models import AuditEvent, Role, StaffUser
from proms.db import db, utcnow
from proms.outcomes.models import Score
from tests.care.exports_world import ExportWorld, build
from tests.helpers import World, csrf_token

StaffClient = Callable[[StaffUser], FlaskClient]


@pytest.fixture
def ew(world: World) -> ExportWorld:
    return build(world)


def download(client: FlaskClient, **fields: str) -> Any:
    data = {
        "format": "csv-long",
        "deidentified": "yes",
        "csrf_token": csrf_token(client, "/exports"),
    }
    data.update(fields)
    return client.post("/exports/download", data=data)


def rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body, newline="")))


def events(action: str) -> list[AuditEvent]:
    db.session.commit()  # a new read: what the download wrote since

    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


def scores_in(clinic_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count(Score.id))
            .join(Patient, Score.patient_id == Patient.id)
            .where(Patient.clinic_id == clinic_id)
        )
    )


def test_the_page_offers_identified_exports_to_admins_only(
    staff_client: StaffClient, world: World
) -> None:
    admin = staff_client(world.user("a", Role.ADMIN)).get("/exports")
    assert admin.status_code == 200
    page = admin.get_data(as_text=True)
    assert 'action="/exports/download"' in page
    assert 'name="csrf_token"' in page
    assert 'value="no"' in page
    for fmt in ("csv-long", "csv-wide", "items", "fhir"):
        assert f'value="{fmt}"' in page
    analyst = staff_client(world.user("a", Role.ANALYST)).get("/exports")
    assert analyst.status_code == 200
    assert 'value="no"' not in analyst.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.COORDINATOR])
def test_the_care_team_may_not_export(staff_client: StaffClient, world: World, role: Role) -> None:
    client = staff_client(world.user("a", role))
    assert client.get("/exports").status_code == 403
    token = csrf_token(client, "/patients")
    posted = client.post("/exports/download", data={"format": "csv-long", "csrf_token": token})
    assert posted.status_code == 403
    assert events("export.started") == []


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/exports").status_code == 302
    assert client.post("/exports/download", data={"format": "csv-long"}).status_code in (302, 400)


def test_the_download_streams_and_is_audited_when_it_starts_and_ends(
    staff_client: StaffClient, ew: ExportWorld
) -> None:
    client = staff_client(ew.world.user("a", Role.ADMIN))
    response = download(client, deidentified="no", format="csv-long")
    assert response.status_code == 200
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    assert response.mimetype == "text/csv"
    assert response.mimetype_params["charset"] == "utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="proms-csv-long-{utcnow().date()}.csv"'
    # Started and audited, not yet read: the rows are produced as the body is read.
    [started] = events("export.started")
    assert started.actor_id == ew.world.user("a", Role.ADMIN).id
    assert started.detail["format"] == "csv-long"
    assert started.detail["deidentified"] is False
    assert events("export.finished") == []
    # The download holds a read transaction open, and no lock: a patient's answers, a
    # coordinator's change still go in meanwhile (SQLite: the export began DEFERRED).
    ew.world.clinic_a.name = "Clinic A, renamed during a download"
    db.session.commit()
    body = response.get_data(as_text=True)
    found = rows(body)
    assert len(found) == scores_in(ew.world.clinic_a.id) > 0
    [finished] = events("export.finished")
    assert finished.detail["rows"] == len(found)
    assert finished.ip_address is not None


def test_an_analyst_exports_de_identified_data_of_their_own_clinic_only(
    staff_client: StaffClient, ew: ExportWorld
) -> None:
    client = staff_client(ew.world.user("b", Role.ANALYST))
    found = rows(download(client).get_data(as_text=True))
    assert {r["clinic"] for r in found} == {ew.world.clinic_b.slug}
    assert len(found) == scores_in(ew.world.clinic_b.id)
    assert all(r["patient"].startswith("P") for r in found)
    # Clinic A is not among the choices, and identified data is not offered at all.
    assert download(client, clinic=str(ew.world.clinic_a.id)).status_code == 400
    refused = download(client, deidentified="no")
    assert refused.status_code == 400
    assert "Not a valid choice" in refused.get_data(as_text=True)
    assert len(events("export.started")) == 1


def test_filters_narrow_the_export(staff_client: StaffClient, ew: ExportWorld) -> None:
    client = staff_client(ew.world.user("a", Role.ADMIN))
    a = str(ew.world.clinic_a.id)
    slug = ew.world.protocol_a.slug
    everything = rows(download(client, clinic=a, protocol=slug).get_data(as_text=True))
    assert len(everything) == scores_in(ew.world.clinic_a.id)
    later = rows(download(client, start_from="2026-03-03").get_data(as_text=True))
    assert later == []
    [event, *_] = events("export.started")
    assert event.clinic_id == ew.world.clinic_a.id
    assert event.detail["protocol"] == slug


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": ""}, "Choose a format."),
        ({"format": "xlsx"}, "Not a valid choice"),
        ({"start_from": "2026-02-30"}, "Enter the date as a calendar date"),
        ({"start_from": "2026-03-02", "start_to": "2026-03-01"}, "before its start"),
    ],
)
def test_bad_input_is_a_400_that_says_why(
    staff_client: StaffClient, world: World, fields: dict[str, str], message: str
) -> None:
    response = download(staff_client(world.user("a", Role.ANALYST)), **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert events("export.started") == []


def test_a_download_needs_its_csrf_token(staff_client: StaffClient, world: World) -> None:
    client = staff_client(world.user("a", Role.ADMIN))
    assert client.post("/exports/download", data={"format": "csv-long"}).status_code == 400


def test_production_refuses_de_identified_exports_without_a_key(
    app: Flask, staff_client: StaffClient, world: World
) -> None:
    client = staff_client(world.user("a", Role.ADMIN))
    app.config["ENV"] = "production"
    refused = download(client)
    assert refused.status_code == 503
    assert "PROMS_EXPORT_PSEUDONYM_KEY" in refused.get_data(as_text=True)
    assert events("export.started") == []
    app.config["EXPORT_PSEUDONYM_KEY"] = "k" * 64
    assert download(client).status_code == 200


# proms export ----------------------------------------------------------------------------------


def test_the_command_writes_to_standard_output_or_a_file_and_is_audited(  # type: ignore[no-untyped-def]
    runner, ew: ExportWorld, tmp_path: Path
) -> None:
    result = runner.invoke(args=["export", "--format", "csv-long", "--clinic", "b"])
    assert result.exit_code == 0, result.output
    found = rows(result.stdout)
    assert {r["clinic"] for r in found} == {"b"}
    assert len(found) == scores_in(ew.world.clinic_b.id) > 0
    assert f"exported {len(found)} rows" in result.stderr
    [finished] = events("export.finished")
    assert finished.actor_email.startswith("cli:")
    assert (finished.clinic_id, finished.detail["rows"]) == (ew.world.clinic_b.id, len(found))

    target = tmp_path / "bundle.json"
    result = runner.invoke(
        args=["export", "--format", "fhir", "--deidentified", "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert text.startswith('{"resourceType":"Bundle"')
    assert ew.zelda.family_name not in text


def test_the_command_says_what_is_wrong(runner, app: Flask, world: World, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unknown = runner.invoke(args=["export", "--format", "items", "--clinic", "nope"])
    assert unknown.exit_code == 2
    assert "there is no clinic 'nope'" in unknown.output
    reversed_range = runner.invoke(
        args=["export", "--format", "items", "--from", "2026-03-02", "--to", "2026-03-01"]
    )
    assert reversed_range.exit_code == 2
    app.config["ENV"] = "production"
    target = tmp_path / "out.csv"
    refused = runner.invoke(
        args=["export", "--format", "items", "--deidentified", "--output", str(target)]
    )
    assert refused.exit_code == 2
    assert "PROMS_EXPORT_PSEUDONYM_KEY" in refused.output
    assert not target.exists()
