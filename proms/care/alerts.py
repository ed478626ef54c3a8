"""The alerts inbox and what the care team does with an alert: acknowledge it, resolve it.

The inbox lists a clinic's alerts most pressing first: urgent, then next visit, then
information, the oldest first within each tier, so the alert that has waited longest for an
urgent call is on top. Its page runs a fixed number of statements whatever the number of alerts
(one count, one select with the patient, time point and staff joined in).

Acknowledging and resolving are compare-and-set updates: two clinicians acting at once never
overwrite each other's name, time or note; the second is told who was first. Services: flush,
never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, case, select, update
from sqlalchemy.orm import Session, joinedload

from proms.admin.models import Patient
from proms.auth.models import StaffUser
from proms.instruments.model import InstrumentDefinition
from proms.instruments.registry import bundled_registry
from proms.outcomes.models import (
    TIER_LABELS,
    TIER_ORDER,
    Alert,
    AlertKind,
    AlertStatus,
    AlertTier,
)
from proms.scheduling.models import Assessment

NOTE_MAX_LENGTH = 1000  # the columns' length

KIND_LABELS = {
    AlertKind.WORSENING: "Worse than baseline",
    AlertKind.SEVERITY: "Severe level",
    AlertKind.SIDE_EFFECT: "Severe side effect",
}
TIER_FILTERS = {tier.value: TIER_LABELS[tier] for tier in TIER_ORDER}
# The status filter: not resolved (the default, "open alerts" everywhere), or one status.
STATUS_FILTERS = {
    "": "Not resolved",
    "open": "New",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "all": "All",
}
KIND_FILTERS = {kind.value: label for kind, label in KIND_LABELS.items()}
# Audited on every action: the fields an acknowledgement or a resolution changes.
AUDIT_FIELDS = (
    "status",
    "acknowledged_at",
    "acknowledged_by_id",
    "acknowledgement_note",
    "resolved_at",
    "resolved_by_id",
    "resolution_note",
)

_TIER_RANK = case({tier: rank for rank, tier in enumerate(TIER_ORDER)}, value=Alert.tier)


class AlertActionRefused(Exception):
    """The alert is not in a state that allows the action (someone else got there first)."""


def _with_context(query: Select[tuple[Alert]]) -> Select[tuple[Alert]]:
    """What a row shows, joined in: the patient and clinic, time point, who acted."""
    return query.options(
        joinedload(Alert.patient).joinedload(Patient.clinic),
        joinedload(Alert.assessment).joinedload(Assessment.timepoint),
        joinedload(Alert.acknowledged_by),
        joinedload(Alert.resolved_by),
    )


def inbox(
    clinic_ids: Collection[int],
    *,
    tier: str = "",
    status: str = "",
    kind: str = "",
) -> Select[tuple[Alert]]:
    """A clinic's alerts, most pressing first, filtered by tier, status and kind ("" = any).

    Status "" means not resolved (open or acknowledged), "all" every status.
    """
    query = select(Alert).where(Alert.clinic_id.in_(list(clinic_ids)))
    if tier:
        query = query.where(Alert.tier == AlertTier(tier))
    if status == "":
        query = query.where(Alert.status != AlertStatus.RESOLVED)
    elif status != "all":
        query = query.where(Alert.status == AlertStatus(status))
    if kind:
        query = query.where(Alert.kind == AlertKind(kind))
    return _with_context(query).order_by(_TIER_RANK, Alert.created_at, Alert.id)


def patient_alerts(session: Session, patient: Patient) -> list[Alert]:
    """A patient's alerts, newest first, with who acted on them (for the patient page).

    Their patient is `patient`, and their questionnaires are the page's, loaded before this:
    found in the session rather than joined in again for every alert.
    """
    query = (
        select(Alert)
        .where(Alert.patient_id == patient.id)
        .options(joinedload(Alert.acknowledged_by), joinedload(Alert.resolved_by))
    )
    return list(session.scalars(query.order_by(Alert.created_at.desc(), Alert.id.desc())))


def acknowledge(
    session: Session, alert: Alert, by: StaffUser, note: str | None, *, now: dt.datetime
) -> None:
    """Someone has seen the alert and is on it. Only an open alert can be acknowledged."""
    done = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == AlertStatus.OPEN)
        .values(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by_id=by.id,
            acknowledgement_note=note or None,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(alert)
    if done.rowcount != 1:
        raise AlertActionRefused(_already(alert))


def resolve(
    session: Session, alert: Alert, by: StaffUser, note: str | None, *, now: dt.datetime
) -> None:
    """The alert is dealt with. An open or acknowledged alert can be resolved, once."""
    done = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status != AlertStatus.RESOLVED)
        .values(
            status=AlertStatus.RESOLVED,
            resolved_at=now,
            resolved_by_id=by.id,
            resolution_note=note or None,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(alert)
    if done.rowcount != 1:
        raise AlertActionRefused(_already(alert))


def _already(alert: Alert) -> str:
    if alert.status is AlertStatus.RESOLVED:
        who = alert.resolved_by.full_name if alert.resolved_by else "someone"
        return f"This alert was already resolved by {who}."
    who = alert.acknowledged_by.full_name if alert.acknowledged_by else "someone"
    return f"This alert was already acknowledged by {who}."


# In words ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertWords:
    """An alert as the inbox and the patient page say it."""

    kind: str  # "Severe level"
    headline: str  # what it is: "Severe pain interference", "Worse than baseline"
    facts: str  # the numbers or answers behind it: "T 75.6 (alert at T ≥ 70)"
    instrument: str  # the questionnaire's title
    superseded: str | None  # what a rescore found, when the rule is no longer met

    @property
    def rule(self) -> str:
        """The rule in words, in one line."""
        return f"{self.headline}: {self.facts}"


def _definition(code: str) -> InstrumentDefinition | None:
    try:
        return bundled_registry().get(code)
    except KeyError:
        return None  # an imported instrument with no bundled definition


def _number(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.1f}".removesuffix(".0")
    return "no score"


def words(alert: Alert) -> AlertWords:
    """The alert's rule in words, from what it recorded when raised."""
    detail = alert.detail or {}
    code = str(detail.get("instrument", ""))
    definition = _definition(code)
    title = definition.title if definition else code or "a questionnaire"
    scale = detail.get("scale")
    of_scale = f" ({str(scale).replace('_', ' ')})" if scale and scale != "total" else ""
    kind = KIND_LABELS.get(alert.kind, alert.kind.value)
    if alert.kind is AlertKind.SEVERITY:
        sign = "\u2265" if detail.get("operator") == ">=" else "\u2264"
        unit = "T" if detail.get("unit") == "T" else "score"
        label = str(detail.get("label") or "severe level")
        headline = f"{label[:1].upper()}{label[1:]}{of_scale}"
        facts = (
            f"{unit} {_number(detail.get('value'))} "
            f"(alert at {unit} {sign} {_number(detail.get('cut'))})"
        )
    elif alert.kind is AlertKind.WORSENING:
        unit = "T " if detail.get("threshold_unit") == "T" else ""
        threshold_unit = {"T": " T", "percent": "%"}.get(str(detail.get("threshold_unit")), "")
        headline = f"{kind}{of_scale}"
        facts = (
            f"{unit}{_number(detail.get('baseline'))} \u2192 {unit}{_number(detail.get('current'))}"
            f" (meaningful change: {_number(detail.get('threshold'))}{threshold_unit})"
        )
    else:
        texts = []
        for item_id in (str(item) for item in detail.get("items", [])):
            try:
                texts.append(definition.item(item_id).text if definition else item_id)
            except KeyError:
                texts.append(item_id.replace("_", " "))
        headline, facts = kind, "; ".join(texts) or "an answer of the highest severity"
    return AlertWords(
        kind=kind,
        headline=headline,
        facts=facts,
        instrument=title,
        superseded=_superseded(alert),
    )


def _superseded(alert: Alert) -> str | None:
    mark = alert.superseded
    if mark is None:
        return None
    after = mark.get("after")
    if alert.kind is AlertKind.SEVERITY:
        now = f"now {_number(after.get('value'))}" if isinstance(after, dict) else "no score now"
    elif alert.kind is AlertKind.WORSENING:
        now = f"now {after.get('change')}" if isinstance(after, dict) else "no score now"
    else:
        now = "no severe answer now"
    version = mark.get("scoring_version", "")
    return f"No longer met after rescoring ({version}): {now}."
