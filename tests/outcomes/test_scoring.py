"""Scoring submitted responses, change from baseline, `proms score` and `proms rescore`."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from proms.admin.services import enroll_patient
from proms.catalog.services import deployment_registry, snapshot
from proms.db import db
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import Score
from proms.outcomes.rescore import rescore
from proms.outcomes.services import changes_from_baseline, record_submission
from proms.scoring import SCORING_VERSION
from proms.surveys.models import ResponseStatus, SurveyResponse
from tests.helpers import World

SUBMITTED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def score_response(session, registry, response: SurveyResponse) -> list[Score]:  # type: ignore[no-untyped-def]
    """The scores a submission of this one response records."""
    return list(record_submission(session, registry, response.assessment, [response]).scores)


def submit(world: World, code: str, answers: dict[str, int | None]) -> SurveyResponse:
    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 3, 2)
    )
    response = SurveyResponse(
        assessment=enrollment.assessments[0],
        instrument=snapshot(db.session, bundled_registry().get(code)),
        answers=answers,
        status=ResponseStatus.SUBMITTED,
        submitted_at=SUBMITTED,
    )
    db.session.add(response)
    db.session.flush()
    return response


def test_a_submitted_response_gets_its_scores_with_the_scoring_version(world: World) -> None:
    response = submit(
        world, "promis-pi-4a", {"PAININ9": 3, "PAININ22": 2, "PAININ31": 4, "PAININ34": 3}
    )
    [score] = score_response(db.session, deployment_registry(db.session), response)
    db.session.commit()
    assert (score.raw_score, score.t_score, score.standard_error) == (12, 61.2, 1.8)
    assert score.method == "table"
    assert score.scoring_version == SCORING_VERSION
    assert (score.patient_id, score.domain, score.timepoint_key) == (
        world.patients_a[0].id,
        "pain_interference",
        "baseline",
    )
    assert score.observed_at == SUBMITTED


def test_pass20_stores_total_and_subscales(world: World) -> None:
    answers = {f"PASS{n}": n % 6 for n in range(1, 21)}
    response = submit(world, "pass-20", answers)
    scores = score_response(db.session, deployment_registry(db.session), response)
    by_scale = {s.scale: s.raw_score for s in scores}
    assert by_scale["total"] == sum(answers.values())
    assert set(by_scale) == {"total", "cognitive", "escape_avoidance", "fear", "physiological"}


def test_an_unscorable_response_stores_no_score(world: World) -> None:
    response = submit(
        world, "promis-pi-4a", {"PAININ9": 3, "PAININ22": None, "PAININ31": None, "PAININ34": None}
    )
    assert score_response(db.session, deployment_registry(db.session), response) == []


def test_rescore_reports_and_repairs_what_changed(world: World, runner) -> None:
    first = submit(
        world, "promis-pi-4a", {"PAININ9": 3, "PAININ22": 2, "PAININ31": 4, "PAININ34": 3}
    )
    score_response(db.session, deployment_registry(db.session), first)
    db.session.commit()
    stored = db.session.scalar(select(Score))
    stored.t_score = 60.0  # as an older table would have had it
    stored.scoring_version = "2026.01.0"
    db.session.commit()

    dry = runner.invoke(args=["rescore", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 scores would change, 0 unchanged" in dry.output
    assert "t_score=60.0" in dry.output
    assert "t_score=61.2" in dry.output
    db.session.expire_all()
    assert db.session.scalar(select(Score)).t_score == 60.0

    applied = runner.invoke(args=["rescore"])
    assert "1 scores changed" in applied.output
    db.session.expire_all()
    repaired = db.session.scalar(select(Score))
    assert (repaired.id, repaired.t_score, repaired.scoring_version) == (
        stored.id,
        61.2,
        SCORING_VERSION,
    )
    again = rescore(db.session, deployment_registry(db.session), apply=False)
    assert (again.responses, len(again.changes), again.unchanged) == (1, 0, 1)


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def test_score_command_on_a_mixed_file(runner, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_csv(
        source,
        [
            ["id", "instrument", "Sleep109", "Sleep116", "Sleep20", "Sleep44"],
            ["1", "promis-sd-4a", "5", "5", "5", "5"],  # worst sleep: the table's top row
            ["2", "promis-sd-4a", "2", "", "1", "2"],  # reference/irt_examples.json
            ["3", "promis-sd-4a", "", "", "", "2"],
        ],
    )
    result = runner.invoke(args=["score", str(source), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    assert "scored 3 rows (1 none, 1 pattern, 1 table)" in result.output
    with (tmp_path / "out.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert (rows[0]["raw_score"], rows[0]["t_score"], rows[0]["se"]) == ("20", "73.3", "4.6")
    assert (rows[1]["t_score"], rows[1]["se"], rows[1]["method"]) == ("44.5", "3.7", "pattern")
    assert rows[2]["method"] == "none"
    assert rows[2]["error"]


def test_score_command_writes_to_standard_output(runner, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_csv(source, [["instrument", "NRS1"], ["pain-nrs", "7"]])
    result = runner.invoke(args=["score", str(source)])
    assert result.exit_code == 0
    assert list(csv.reader(io.StringIO(result.stdout)))[1][-6:] == ["7", "", "", "1", "sum", ""]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"", "the file is empty"),
        (b"id,NRS1\n1,2\n", "no 'instrument' column"),
        (b"instrument,NRS1\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_score_command_refuses_unreadable_files_with_exit_2(
    runner, tmp_path: Path, content: bytes | None, message: str
) -> None:
    source = tmp_path / "in.csv"
    if content is not None:
        source.write_bytes(content)
    output = tmp_path / "out.csv"
    result = runner.invoke(args=["score", str(source), "--output", str(output)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not output.exists()


def test_change_from_baseline_by_threshold_and_individual_criterion(world: World) -> None:
    """The reference README's example: PI 4a raw 16 (T 66.6) -> raw 12 (T 61.2)."""
    from proms.scoring.change import Classification

    enrollment = enroll_patient(
        db.session, world.patients_a[0], world.protocol_a, dt.date(2026, 3, 2)
    )
    instrument = snapshot(db.session, bundled_registry().get("promis-pi-4a"))
    registry = deployment_registry(db.session)
    for assessment, answers in (
        (enrollment.assessments[0], {"PAININ9": 4, "PAININ22": 4, "PAININ31": 4, "PAININ34": 4}),
        (enrollment.assessments[3], {"PAININ9": 3, "PAININ22": 3, "PAININ31": 3, "PAININ34": 3}),
        (enrollment.assessments[4], {"PAININ9": 4, "PAININ22": 4, "PAININ31": 4, "PAININ34": 5}),
    ):
        response = SurveyResponse(
            assessment=assessment,
            instrument=instrument,
            answers=answers,
            status=ResponseStatus.SUBMITTED,
            submitted_at=assessment.due_at,
        )
        db.session.add(response)
        db.session.flush()
        score_response(db.session, registry, response)
    month_3, month_6 = changes_from_baseline(db.session, registry, enrollment)
    assert month_3.score.timepoint_key == "month_3"
    assert month_3.change.improvement == pytest.approx(5.4)
    assert month_3.change.reliable_change_index == pytest.approx(-2.12, abs=0.005)
    assert month_3.change.by_threshold is Classification.IMPROVED
    assert month_3.change.by_individual is Classification.IMPROVED
    assert "Chen" in month_3.change.threshold.source
    # 66.6 -> 68.0: 1.4 T worse is below the 3-point threshold.
    assert month_6.change.by_threshold is Classification.NO_CHANGE
    # The same classification is stored on the score rows, for lists and reports.
    db.session.expire_all()
    for found in (month_3, month_6):
        stored = db.session.get(Score, found.score.id)
        assert stored is not None
        assert stored.improvement == pytest.approx(found.change.improvement)
        assert stored.reliable_change_index == pytest.approx(found.change.reliable_change_index)
        assert stored.change_by_threshold == found.change.by_threshold.value
        assert stored.change_by_individual == found.change.by_individual.value
    baseline_rows = db.session.scalars(
        select(Score).where(Score.enrollment_id == enrollment.id, Score.timepoint_key == "baseline")
    ).all()
    assert baseline_rows
    assert all(row.change_by_threshold is None for row in baseline_rows)
