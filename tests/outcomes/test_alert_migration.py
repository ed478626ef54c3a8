"""Migration a1e4c0f00a11 keeps existing alerts valid: tier from the kind, rule from the detail,
the time point from the assessment, no row lost (a duplicate keeps a key of its own); the new
rules hold; and the downgrade gives back what the earlier schema can hold."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic import command

from tests.helpers import ScratchDatabases
from tests.test_migrations import AT, PARENTS, alembic_config

BEFORE, AFTER = "5c0e1a7d2b11", "a1e4c0f00a11"
ASSESSMENT = (
    "INSERT INTO assessment (id, enrollment_id, timepoint_id, opens_at, due_at, closes_at, status,"
    " completed_at, created_at) VALUES (1, 1, 1, '2026-01-05 09:00:00+00:00',"
    " '2026-01-06 09:00:00+00:00', '2026-01-08 09:00:00+00:00', 'completed',"
    " '2026-01-06 10:00:00+00:00', :at)"
)
ALERT = (
    "INSERT INTO alert (id, patient_id, clinic_id, assessment_id, kind, status, detail, created_at,"
    " acknowledged_at) VALUES (:id, 1, 1, 1, :kind, :status, :detail, :at, :acknowledged_at)"
)
LEGACY = [
    {"id": 1, "kind": "side_effect", "detail": {"instrument": "infusion-side-effects"}},
    {"id": 2, "kind": "worsening", "detail": {"instrument": "promis-pi-4a", "scale": "total"}},
    {"id": 3, "kind": "worsening", "detail": {"instrument": "promis-pi-4a", "scale": "total"}},
]


def test_existing_alerts_get_their_tier_rule_and_time_point(
    scratch_databases: ScratchDatabases,
) -> None:
    url = scratch_databases.new_url()
    cfg = alembic_config(url)
    command.upgrade(cfg, BEFORE)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement, params in PARENTS:
                conn.execute(sa.text(statement), params)
            conn.execute(sa.text(ASSESSMENT), AT)
            for row in LEGACY:
                acknowledged = "2026-01-07 09:00:00+00:00" if row["id"] == 2 else None
                conn.execute(
                    sa.text(ALERT),
                    {
                        **AT,
                        **row,
                        "detail": json.dumps(row["detail"]),
                        "status": "acknowledged" if acknowledged else "open",
                        "acknowledged_at": acknowledged,
                    },
                )
        command.upgrade(cfg, AFTER)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, tier, rule, timepoint_key FROM alert ORDER BY id")
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, "urgent", "side_effect:infusion-side-effects", "baseline"),
            (2, "next_visit", "worsening:promis-pi-4a:total", "baseline"),
            (3, "next_visit", "worsening:promis-pi-4a:total#3", "baseline"),
        ]
        # The new rules: one alert per time point and rule; a resolved alert has its time.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO alert (id, patient_id, clinic_id, assessment_id, kind, tier, rule,"
                    " status, detail, created_at) VALUES (10, 1, 1, 1, 'severity', 'urgent',"
                    " 'side_effect:infusion-side-effects', 'open', '{}', :at)"
                ),
                AT,
            )
        with (
            pytest.raises(sa.exc.IntegrityError, match="ck_alert_resolved_has_timestamp"),
            engine.begin() as conn,
        ):
            conn.execute(sa.text("UPDATE alert SET status = 'resolved' WHERE id = 1"))
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE alert SET status = 'resolved', resolved_at = :at, resolution_note ="
                    " 'Seen' WHERE id = 1"
                ),
                AT,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO alert (id, patient_id, clinic_id, assessment_id, kind, tier, rule,"
                    " status, detail, created_at) VALUES (11, 1, 1, 1, 'severity', 'urgent',"
                    " 'severity:peg:total>=8', 'open', '{}', :at)"
                ),
                AT,
            )

        command.downgrade(cfg, BEFORE)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, kind, status, acknowledged_at IS NOT NULL FROM alert ORDER BY id"
                )
            ).all()
        # Severity alerts cannot exist before; a resolved one stays, as acknowledged.
        assert [tuple(row) for row in rows] == [
            (1, "side_effect", "acknowledged", True),
            (2, "worsening", "acknowledged", True),
            (3, "worsening", "open", False),
        ]
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
