"""patient list indexes

The staff patient list reads one clinic's patients in name order, then id (its pages' order):
the (clinic_id, family_name, given_name) index of patient gains id, so that a page, and the rows a
deep page skips, come from the index alone and no page sorts the clinic. Patients with an open
alert (a filter, and the counts beside each patient) come from a partial index of the unresolved
alerts. Each patient's latest score per scale and domain (the list, its worsened and improved
filters) comes from a (patient_id, scale, domain, observed_at, id) index of score, which replaces
(patient_id, domain, observed_at) and on PostgreSQL carries the change classes, so those filters
read no score row.

Revision ID: d4e5f6071823
Revises: f0a0d1700b12
Create Date: 2026-11-30 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4e5f6071823"
down_revision: str | None = "f0a0d1700b12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The predicate of the partial index, as queries repeat it (proms.care.services.alert_is_open).
OPEN = "status <> 'resolved'"


def upgrade() -> None:
    op.drop_index(op.f("ix_patient_clinic_id_family_name_given_name"), table_name="patient")
    op.create_index(
        op.f("ix_patient_clinic_id_family_name_given_name_id"),
        "patient",
        ["clinic_id", "family_name", "given_name", "id"],
    )
    op.create_index(
        "ix_alert_patient_id_open",
        "alert",
        ["patient_id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.drop_index(op.f("ix_score_patient_id_domain_observed_at"), table_name="score")
    op.create_index(
        op.f("ix_score_patient_id_scale_domain_observed_at_id"),
        "score",
        ["patient_id", "scale", "domain", "observed_at", "id"],
        postgresql_include=["change_by_individual", "change_by_threshold"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_score_patient_id_scale_domain_observed_at_id"), table_name="score")
    op.create_index(
        op.f("ix_score_patient_id_domain_observed_at"),
        "score",
        ["patient_id", "domain", "observed_at"],
    )
    op.drop_index("ix_alert_patient_id_open", table_name="alert")
    op.drop_index(op.f("ix_patient_clinic_id_family_name_given_name_id"), table_name="patient")
    op.create_index(
        op.f("ix_patient_clinic_id_family_name_given_name"),
        "patient",
        ["clinic_id", "family_name", "given_name"],
    )
