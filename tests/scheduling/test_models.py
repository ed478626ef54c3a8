"""Assessment model behaviour that needs no database."""

from __future__ import annotations

import datetime as dt

import proms.models  # noqa: F401 - every mapper, so that Assessment can be configured
from proms.scheduling.models import Assessment, AssessmentStatus

UTC = dt.UTC


def test_assessment_state_reads_the_clock() -> None:
    opens = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assessment = Assessment(
        opens_at=opens,
        due_at=opens + dt.timedelta(days=1),
        closes_at=opens + dt.timedelta(days=2),
        status=AssessmentStatus.SCHEDULED,
    )
    assert assessment.state_at(opens - dt.timedelta(seconds=1)) == "upcoming"
    assert assessment.state_at(opens) == "open now"
    assert assessment.state_at(opens + dt.timedelta(days=2)) == "missed"  # sweep not run yet
    assessment.status = AssessmentStatus.IN_PROGRESS
    assert assessment.state_at(opens) == "in progress"
    assessment.status = AssessmentStatus.EXPIRED
    assert assessment.state_at(opens) == "missed"
    assessment.status = AssessmentStatus.COMPLETED
    assert assessment.state_at(opens) == "completed"
