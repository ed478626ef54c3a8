"""Alert rules, as the instrument definitions state them, and filing each alert once.

Three kinds, each stored as itself with its tier and a stable rule key:

- a severe side effect: an item rule of the instrument (`alerts`), "side_effect:<code>";
- a severe level: a severity rule (`severity_rules`, e.g. PEG >= 8), at any time point, the
  baseline included, "severity:<code>:<scale><op><value>";
- a meaningful worsening from baseline by the individual criterion
  (`scoring.change.is_meaningful_worsening`), "worsening:<code>:<scale>", for the next visit.

`file_alerts` inserts with ON CONFLICT DO NOTHING on (assessment, rule), so one time point never
gets the same alert twice, whoever files it (a submit, a rescore, two of them at once).
Services: flush, never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from proms.instruments.model import InstrumentDefinition
from proms.outcomes.models import Alert, AlertKind, AlertTier
from proms.scoring.change import ChangeResult, is_meaningful_worsening
from proms.scoring.types import Answer

# The tier of a meaningful worsening: worth raising at the next visit. A worsening to a severe
# level is also caught by the severity rules, whose tiers say when it is urgent.
WORSENING_TIER = AlertTier.NEXT_VISIT


@dataclass(frozen=True, slots=True)
class DueAlert:
    """An alert a time point's answers call for (filed or not yet)."""

    kind: AlertKind
    tier: AlertTier
    rule: str
    detail: dict[str, Any] = field(hash=False)
    score_id: int | None = None


def side_effect_alerts(
    definition: InstrumentDefinition, answers: Mapping[str, Answer]
) -> list[DueAlert]:
    """One alert per item rule that any answer meets, naming every item that met it."""
    due = []
    for rule in definition.alerts:
        scope = rule.items or definition.item_ids
        hits = [
            item_id
            for item_id in definition.item_ids
            if item_id in scope and _is_value(answers.get(item_id), rule.when_any_item_value)
        ]
        if hits:
            due.append(
                DueAlert(
                    AlertKind.SIDE_EFFECT,
                    AlertTier(rule.tier),
                    f"{rule.key}:{definition.code}",
                    {"instrument": definition.code, "items": hits},
                )
            )
    return due


def _is_value(answer: Answer | None, value: int) -> bool:
    return answer is not None and not isinstance(answer, bool) and answer == value


def severity_facts(
    definition: InstrumentDefinition,
    scale: str,
    t_score: float | None,
    raw_score: float | None,
) -> dict[str, dict[str, Any]]:
    """Every severity rule of a scale, by key, with the score it compares and whether it is met."""
    facts = {}
    for rule in definition.severity_rules:
        if rule.scale != scale:
            continue
        value = t_score if rule.unit == "T" else raw_score
        facts[rule.key(definition.code)] = {
            "instrument": definition.code,
            "scale": scale,
            "value": None if value is None else float(value),
            "unit": rule.unit,
            "operator": rule.operator,
            "cut": rule.value,
            "label": rule.label,
            "source": rule.source,
            "tier": rule.tier,
            "met": rule.met_by(value),
        }
    return facts


def severity_alerts(
    definition: InstrumentDefinition,
    scale: str,
    t_score: float | None,
    raw_score: float | None,
    score_id: int | None = None,
) -> list[DueAlert]:
    """The severity rules a scale's score meets, as alerts."""
    due = []
    for key, facts in severity_facts(definition, scale, t_score, raw_score).items():
        if facts["met"]:
            detail = {name: value for name, value in facts.items() if name not in ("met", "tier")}
            due.append(
                DueAlert(AlertKind.SEVERITY, AlertTier(facts["tier"]), key, detail, score_id)
            )
    return due


def worsening_key(code: str, scale: str) -> str:
    return f"worsening:{code}:{scale}"


def worsening_detail(change: ChangeResult) -> dict[str, Any]:
    """How a score compares with its baseline: the facts a worsening alert records."""
    return {
        "instrument": change.current.instrument_code,
        "scale": change.current.scale,
        "baseline": None if change.baseline is None else change.baseline.value,
        "current": change.current.value,
        "improvement": change.improvement,
        "reliable_change_index": change.reliable_change_index,
        "threshold": change.threshold.value,
        "threshold_unit": change.threshold.unit,
        "threshold_source": change.threshold.source,
    }


def worsening_alert(change: ChangeResult, score_id: int | None = None) -> DueAlert | None:
    """A meaningful worsening from baseline (the individual criterion), or None."""
    if not is_meaningful_worsening(change):
        return None
    current = change.current
    return DueAlert(
        AlertKind.WORSENING,
        WORSENING_TIER,
        worsening_key(current.instrument_code, current.scale),
        worsening_detail(change),
        score_id,
    )


def file_alerts(session: Session, rows: Iterable[Mapping[str, object]]) -> list[Alert]:
    """Insert alert rows in one statement, skipping any (assessment, rule) already filed.

    Returns the alerts inserted now. ON CONFLICT DO NOTHING on the unique (assessment_id,
    rule) index: on PostgreSQL a concurrent insert of the same alert waits for the other
    transaction, then skips; SQLite runs one writer at a time. Either way, never two.
    """
    unique: dict[tuple[object, object], Mapping[str, object]] = {}
    for row in rows:
        unique.setdefault((row["assessment_id"], row["rule"]), row)
    if not unique:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Alert)
        .on_conflict_do_nothing(index_elements=["assessment_id", "rule"])
        .returning(Alert)
        .execution_options(render_nulls=True)
    )
    return list(session.scalars(statement, [dict(row) for row in unique.values()]))


def alert_row(
    due: DueAlert,
    *,
    patient_id: int,
    clinic_id: int,
    assessment_id: int,
    timepoint_key: str,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, object]:
    """The columns of one alert to file."""
    return {
        "patient_id": patient_id,
        "clinic_id": clinic_id,
        "assessment_id": assessment_id,
        "score_id": due.score_id,
        "kind": due.kind,
        "tier": due.tier,
        "rule": due.rule,
        "timepoint_key": timepoint_key,
        "detail": dict(due.detail if detail is None else detail),
    }
