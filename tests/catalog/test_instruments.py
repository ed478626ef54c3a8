"""The deployment's instruments: CLI list/show/export/import, storage, the staff page."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select

from proms.auth.models import AuditEvent, Role
from proms.care.views import TABLE_STATUS_LABELS
from proms.catalog.models import Instrument, InstrumentSource
from proms.catalog.services import deployment_registry
from proms.db import db
from proms.instruments.registry import bundled_registry
from tests.helpers import World

FIXTURES = Path(__file__).resolve().parents[1] / "instruments" / "fixtures"
OFFICIAL_PI4A = FIXTURES / "promis_pi_4a_official_fhir.json"
# Fixed dates, not the real clock: a course starting on ANCHOR_ON, whose baseline is open at NOW.
ANCHOR_ON = dt.date(2026, 3, 5)
NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def test_list_shows_every_instrument_and_what_needs_official_wording(runner) -> None:
    result = runner.invoke(args=["instruments", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(bundled_registry()) == 12
    pi = next(line for line in lines if line.startswith("promis-pi-4a "))
    assert "CONFIRMED" in pi
    assert "needs official wording" in pi
    nrs = next(line for line in lines if line.startswith("pain-nrs "))
    assert "needs official wording" not in nrs


def test_show_and_unknown_codes(runner) -> None:
    shown = runner.invoke(args=["instruments", "show", "promis-sd-4a"])
    assert "Sleep109 (reverse-coded)" in shown.output
    assert "table CONFIRMED" in shown.output
    unknown = runner.invoke(args=["instruments", "show", "promis-xyz"])
    assert unknown.exit_code == 1
    assert "promis-pi-4a" in unknown.output  # says which codes exist


def test_export_is_a_fhir_questionnaire(runner, tmp_path: Path) -> None:
    target = tmp_path / "q.json"
    result = runner.invoke(
        args=["instruments", "export", "peg", "--format", "fhir", "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["resourceType"] == "Questionnaire"
    assert [item["linkId"] for item in data["item"] if item["type"] == "choice"] == [
        "PEG1",
        "PEG2",
        "PEG3",
    ]


def test_import_of_official_wording_is_stored_and_wins(runner, app, world: World) -> None:
    result = runner.invoke(args=["instruments", "import", str(OFFICIAL_PI4A)])
    assert result.exit_code == 0, result.output
    assert "wording replaced (official" in result.output
    assert "scoring unchanged" in result.output
    row = db.session.scalar(select(Instrument).where(Instrument.code == "promis-pi-4a"))
    assert row.source is InstrumentSource.IMPORTED
    definition = deployment_registry(db.session).get("promis-pi-4a")
    assert definition.wording.source.value == "official"
    assert not definition.needs_official_wording
    bundled = bundled_registry().get("promis-pi-4a")
    assert definition.scoring == bundled.scoring  # the scoring is kept
    assert definition.items[0].text != bundled.items[0].text
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "instrument.imported"))
    assert event.detail["code"] == "promis-pi-4a"
    listed = runner.invoke(args=["instruments", "list"]).output
    assert "official" in next(line for line in listed.splitlines() if "promis-pi-4a " in line)
    # Importing the same file again stores nothing new.
    runner.invoke(args=["instruments", "import", str(OFFICIAL_PI4A)])
    assert db.session.scalar(select(func.count()).select_from(Instrument)) == 1


def test_a_mismatching_import_changes_nothing(runner, tmp_path: Path) -> None:
    data = json.loads(OFFICIAL_PI4A.read_text(encoding="utf-8"))
    group = next(item for item in data["item"] if item["type"] == "group")
    first = group["item"][0]
    assert first["linkId"] == "PAININ9"
    first["answerOption"] = first["answerOption"][:-1]  # drop the option valued 5
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    result = runner.invoke(args=["instruments", "import", str(broken)])
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert "PAININ9" in result.output
    assert db.session.scalar(select(func.count()).select_from(Instrument)) == 0


def test_an_unreadable_import_is_a_clear_error(runner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json", encoding="utf-8")
    result = runner.invoke(args=["instruments", "import", str(junk)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert db.session.scalar(select(func.count()).select_from(Instrument)) == 0


def test_staff_page_says_what_needs_official_wording(staff_client, world: World, runner) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    page = client.get("/instruments").get_data(as_text=True)
    assert "10 questionnaires still need official wording" in page
    assert "proms instruments import FILE" in page
    # PF 4a v2.0's table status is shown, in words; every status the definitions use has some.
    assert "unconfirmed (one transcription)" in page
    statuses = {d.table_status for d in bundled_registry() if d.table_status}
    assert statuses <= set(TABLE_STATUS_LABELS)
    assert not any(status in page for status in statuses)
    runner.invoke(args=["instruments", "import", str(OFFICIAL_PI4A)])
    page = client.get("/instruments").get_data(as_text=True)
    assert "9 questionnaires still need official wording" in page
    assert "official, from promis_pi_4a_official_fhir.json" in page


def test_in_production_the_page_says_they_cannot_be_sent(make_app, world: World) -> None:
    from tests.helpers import login

    app = make_app(
        ENV="production",
        SECRET_KEY="x" * 40,
        AUDIT_CHAIN_KEY="a" * 40,
        PUBLIC_BASE_URL="https://proms.example.org",
    )
    client = app.test_client()
    login(client, "clinician@a.example.org")
    page = client.get("/instruments").get_data(as_text=True)
    assert "cannot be sent to patients" in page


def test_instruments_page_needs_login(client) -> None:
    assert client.get("/instruments").status_code == 302


def test_re_importing_an_earlier_file_makes_it_the_one_in_use(runner, tmp_path: Path) -> None:
    data = json.loads(OFFICIAL_PI4A.read_text(encoding="utf-8"))
    group = next(item for item in data["item"] if item["type"] == "group")
    group["item"][0]["text"] = "Second official text for PAININ9 (test)"
    second = tmp_path / "second.json"
    second.write_text(json.dumps(data), encoding="utf-8")
    for path in (OFFICIAL_PI4A, second, OFFICIAL_PI4A):
        assert runner.invoke(args=["instruments", "import", str(path)]).exit_code == 0
    in_use = deployment_registry(db.session).get("promis-pi-4a")
    assert in_use.items[0].text == "Official text for PAININ9 (test)"
    assert db.session.scalar(select(func.count()).select_from(Instrument)) == 2


def test_a_spanish_wording_is_kept_beside_the_english_one(runner, tmp_path: Path, world) -> None:
    from proms.admin.services import enroll_patient
    from proms.catalog.services import localized
    from proms.surveys.services import start
    from tests.helpers import add_patient

    data = json.loads(OFFICIAL_PI4A.read_text(encoding="utf-8"))
    data["language"] = "es"
    group = next(item for item in data["item"] if item["type"] == "group")
    group["item"][0]["text"] = "Texto oficial de PAININ9 (prueba)"
    spanish = tmp_path / "es.json"
    spanish.write_text(json.dumps(data), encoding="utf-8")
    assert runner.invoke(args=["instruments", "import", str(spanish)]).exit_code == 0

    registry = deployment_registry(db.session)
    english = registry.get("promis-pi-4a")
    assert english.wording.source.value == "summary"  # the English wording is untouched
    # The imported official Spanish wins over our bundled Spanish summary.
    official = localized(db.session, english, "es")
    assert official.items[0].text == "Texto oficial de PAININ9 (prueba)"
    assert official.items[0].text != english.translated("es").items[0].text
    assert (official.language, official.wording.source.value) == ("es", "official")
    assert localized(db.session, english, "en") is english

    patient = add_patient(world.clinic_a, "ES1", language="es")
    enrollment = enroll_patient(db.session, patient, world.protocol_a, ANCHOR_ON)
    baseline = enrollment.assessments[0]
    assert baseline.is_open(NOW)
    plan = start(db.session, registry, baseline, now=NOW, env="test")
    first = plan.questions[0]
    assert (first.definition.code, first.definition.language) == ("promis-pi-4a", "es")
    assert first.item.text == "Texto oficial de PAININ9 (prueba)"
    # Scored exactly like the English form.
    assert first.definition.scoring == english.scoring


def test_a_spanish_patient_reads_the_bundled_spanish_summary(world: World) -> None:
    from proms.admin.services import enroll_patient
    from proms.catalog.services import definition_sha256, localized, stored_definition
    from proms.surveys.services import start
    from tests.helpers import add_patient

    registry = deployment_registry(db.session)
    english = registry.get("pass-20")
    spanish = localized(db.session, english, "es")  # nothing imported: our Spanish summary
    assert spanish == english.translated("es")
    assert (spanish.language, spanish.wording.source.value) == ("es", "summary")
    assert spanish.items[0].text.startswith("Cuando tengo dolor")
    assert localized(db.session, english, "fr") is english  # no French at all: as is
    assert localized(db.session, english, "en") is english

    plans = {}
    for mrn, language in (("ES1", "es"), ("EN1", "en")):
        patient = add_patient(world.clinic_a, mrn, language=language)
        enrollment = enroll_patient(db.session, patient, world.protocol_a, ANCHOR_ON)
        plans[language] = start(
            db.session, registry, enrollment.assessments[0], now=NOW, env="test"
        )
    pairs = list(zip(plans["es"].questions, plans["en"].questions, strict=True))
    assert len(pairs) == 35
    for es, en in pairs:
        assert (es.definition.language, en.definition.language) == ("es", "en")
        assert (es.item.id, es.item.values) == (en.item.id, en.item.values)
        assert es.item.text != en.item.text
        assert es.definition.form() == en.definition.form()  # scored identically

    # Each language is a snapshot row of its own, kept as bundled (not imported) wording.
    rows = db.session.scalars(select(Instrument).where(Instrument.code == "pass-20")).all()
    assert sorted(row.definition["language"] for row in rows) == ["en", "es"]
    assert {row.source for row in rows} == {InstrumentSource.BUNDLED}
    spanish_row = next(row for row in rows if row.definition["language"] == "es")
    assert spanish_row.title == spanish.title
    assert spanish_row.definition_sha256 == definition_sha256(spanish)
    assert stored_definition(spanish_row) == spanish
    # A Spanish snapshot is not an import: the registry still serves the bundled definition.
    assert deployment_registry(db.session).get("pass-20") == english


def test_official_english_is_not_traded_for_the_spanish_summary(runner, world: World) -> None:
    from proms.catalog.services import localized

    assert runner.invoke(args=["instruments", "import", str(OFFICIAL_PI4A)]).exit_code == 0
    official = deployment_registry(db.session).get("promis-pi-4a")
    assert official.wording.source.value == "official"
    assert official.translations == ()  # our Spanish translated the summary, not this
    # Without official Spanish wording, a Spanish patient reads the official English (which
    # production may send) rather than our summary (which production refuses).
    assert localized(db.session, official, "es") is official
    official.check_sendable("production")
