"""The demo cohort's shape: the latent trajectory of each course and the answers drawn from it."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from proms.admin.models import Enrollment, Patient
from proms.instruments.model import InstrumentDefinition
from proms.scoring.types import Direction, Method, PromisForm, SummedForm

# Tuned so that the demo gives the reference study's figures (docs/demo.md): 20-46% of the
# patients who answer a follow-up meaningfully improved in pain, physical function and sleep,
# held to six months, nearly half in pain-related anxiety; response rates falling from about
# 95% at baseline to about half at six months; about 80% back for another course.


@dataclass(frozen=True, slots=True)
class DomainModel:
    """How one domain's scores behave in the demo cohort, in the instrument's own units.

    Baselines are drawn from a normal distribution clipped to [low, high]; an improving course
    moves by a draw from `effect` (a share of the baseline when `relative`), in the better
    direction; `noise` is the standard deviation of one answer around the trajectory.
    """

    baseline_mean: float
    baseline_sd: float
    low: float
    high: float
    effect: tuple[float, float]
    noise: float
    responds: float  # the chance that an improving course improves in this domain
    relative: bool = False
    also_stable: float = 0.0  # the chance that an otherwise stable course improves here
    higher_is_better: bool = False


# By instrument domain (the definition's `domain`), so another short form of the same domain
# (PROMIS pain interference 6a, say) follows the same patient. Pain interference is severe at
# baseline (T about 60-75: refractory chronic pain), function low, sleep disturbed.
DOMAINS: dict[str, DomainModel] = {
    "pain_interference": DomainModel(62.5, 3.0, 55.0, 74.0, (4.5, 10.0), 1.2, 0.80),
    "physical_function": DomainModel(
        36.0, 3.5, 25.0, 46.0, (3.0, 8.5), 0.8, 0.62, higher_is_better=True
    ),
    "sleep_disturbance": DomainModel(57.0, 5.0, 44.0, 72.0, (4.5, 9.0), 1.0, 0.72),
    "pain_anxiety": DomainModel(
        50.0, 15.0, 12.0, 92.0, (0.30, 0.55), 3.0, 0.96, relative=True, also_stable=0.15
    ),
    "pain": DomainModel(5.6, 0.9, 3.5, 8.5, (0.40, 0.65), 0.35, 0.80, relative=True),
}
# Pain intensity (PEG) goes with pain interference for most patients.
PAIN_FOLLOWS = ("pain", "pain_interference", 0.85)

# Kinds of course: improving, stable, worsening (the shares of first courses; a returning
# patient's next course is more often an improving one if the last one was).
COURSE_KINDS = (("improving", 0.42), ("stable", 0.52), ("worsening", 0.06))
RETURNING_KINDS = {
    "improving": (("improving", 0.55), ("stable", 0.40), ("worsening", 0.05)),
    "stable": (("improving", 0.30), ("stable", 0.64), ("worsening", 0.06)),
    "worsening": (("improving", 0.30), ("stable", 0.60), ("worsening", 0.10)),
}
# Share of the full effect by days after the course start: felt at the last infusion, full at
# a month, mostly held to six months (improving); a worsening grows.
IMPROVING_SHAPE = ((4, 0.8), (45, 1.0), (120, 0.9), (math.inf, 0.8))
WORSENING_SHAPE = ((4, 0.3), (45, 0.6), (120, 0.9), (math.inf, 1.0))
# The share of patients who answer, by days after the course start (baseline: the first
# time point), before each patient's own engagement shifts it.
RESPONSE_RATES = ((4, 0.86), (45, 0.76), (120, 0.65), (math.inf, 0.50))
BASELINE_RESPONSE_RATE = 0.955
ENGAGEMENT_SD = 0.9  # on the logit scale
# A few courses with a crisis: the worst pain answers at one time point (urgent alerts).
CRISIS_SHARE = 0.015
# One short form in twenty misses an item (pattern scoring where the form has calibrations).
INCOMPLETE_SHARE = 0.05
# Which of the messages brings the answer: the invitation, the first or second reminder.
PROMPTED_BY = (0.55, 0.25, 0.20)
# Patients who open a link and leave, or begin and stop, without completing.
OPENED_ONLY_SHARE = 0.10
ABANDONED_SHARE = 0.06
# SMS delivery reports: delivered, undelivered, none yet.
SMS_DELIVERY = (("delivered", 0.92), ("undelivered", 0.03), (None, 0.05))
# Returning patients: back for another course after the last one's follow-up ended.
RETURN_SHARE = {"improving": 0.90, "stable": 0.72, "worsening": 0.55}
RETURN_AFTER_DAYS = (196, 330)
# Alerts older than this were handled by the care team: most resolved, some only acknowledged
# (the rest, still open, are the ones a busy clinic lets slip).
ALERT_HANDLED_AFTER = dt.timedelta(days=28)
ALERT_HANDLING = (0.82, 0.10)  # resolved, acknowledged
ALERT_NOTES = (
    "Called the patient; plan reviewed at the next visit.",
    "Discussed with the patient by phone; no change to the plan.",
    "Seen in clinic; medication adjusted.",
    "Reviewed; the patient is booked for a follow-up visit.",
)
RESOLUTION_NOTES = (
    "Followed up; settled.",
    "Seen at the visit; plan adjusted.",
    "No further action needed.",
    "Referred back to the pain physician; done.",
)

# Side effects on the checklist after a course: chances of mild, moderate and severe per item
# (dissociation common and mild, hallucinations rare: the reference study's profile), and the
# term staff note on the infusion day for a moderate or severe one.
CHECKLIST_GRADES = {
    "hallucinations": ((0.10, 0.03, 0.004), "hallucinations"),
    "dissociation": ((0.30, 0.10, 0.008), "dissociation"),
    "nausea_vomiting": ((0.15, 0.05, 0.004), "nausea"),
    "dizziness": ((0.20, 0.06, 0.004), "dizziness"),
    "headache": ((0.15, 0.05, 0.003), "headache"),
    "other": ((0.05, 0.02, 0.002), None),
}
SEVERE = 3


@dataclass
class Course:
    """One treatment course of a demo patient, and the latent trajectory its answers follow."""

    patient: Patient
    enrollment: Enrollment
    number: int  # 1 for the first course
    rng: random.Random
    kind: str  # "improving", "stable" or "worsening"
    baselines: dict[str, float]  # by domain, in the instrument's units
    effects: dict[str, float]  # full improvement by domain (negative: worsening), same units
    fade: float  # the share of the effect an improving course loses by six months
    engagement: float  # the patient's shift of the response rate (logit scale)
    side_effects: dict[str, int]  # checklist item -> grade (0 none .. 3 severe)
    crisis_offset: int | None  # the time point (days from the start) of a crisis, if any
    withdrawn_at: dt.datetime | None = None


def new_course(
    rng: random.Random,
    patient: Patient,
    enrollment: Enrollment,
    number: int,
    previous: Course | None,
) -> Course:
    """The latent trajectory of a course: its kind, baselines, effects (draws in a fixed order)."""
    kinds = COURSE_KINDS if previous is None else RETURNING_KINDS[previous.kind]
    kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
    baselines: dict[str, float] = {}
    effects: dict[str, float] = {}
    for domain, model in DOMAINS.items():
        if previous is None:
            value = rng.gauss(model.baseline_mean, model.baseline_sd)
        else:
            # Back because the pain came back: near the last baseline, a little of the last
            # course's benefit kept.
            kept = previous.effects[domain] * rng.uniform(0.0, 0.4)
            value = previous.baselines[domain] + _sign(domain) * kept
            value += rng.gauss(0, model.noise)
        baselines[domain] = min(model.high, max(model.low, value))
        size = rng.uniform(*model.effect)
        if model.relative:
            size *= baselines[domain]
        effects[domain] = size
    responding = {domain: rng.random() < model.responds for domain, model in DOMAINS.items()}
    follower, leader, together = PAIN_FOLLOWS
    if rng.random() < together:
        responding[follower] = responding[leader]
    for domain, model in DOMAINS.items():
        if kind == "stable":
            responding[domain] = rng.random() < model.also_stable
        if not responding[domain]:
            effects[domain] = 0.0
        elif kind == "worsening":
            effects[domain] = -effects[domain]
    side_effects = {}
    for item, ((mild, moderate, severe), _term) in CHECKLIST_GRADES.items():
        draw = rng.random()
        grade = 0
        for level, bound in enumerate(
            (severe + moderate + mild, severe + moderate, severe), start=1
        ):
            if draw < bound:
                grade = level
        side_effects[item] = grade
    crisis = rng.choice((0, 30, 90, 180)) if rng.random() < CRISIS_SHARE else None
    return Course(
        patient=patient,
        enrollment=enrollment,
        number=number,
        rng=rng,
        kind=kind,
        baselines=baselines,
        effects=effects,
        fade=rng.uniform(0.0, 0.4),
        engagement=rng.gauss(0, ENGAGEMENT_SD),
        side_effects=side_effects,
        crisis_offset=crisis,
    )


def _sign(domain: str) -> int:
    """+1 where a higher score is better (physical function), -1 where it is worse."""
    return 1 if DOMAINS[domain].higher_is_better else -1


def draw_answers(
    course: Course, definition: InstrumentDefinition, offset: int, *, first: bool
) -> dict[str, int | None]:
    """One questionnaire's answers at a time point (days from the course start; `first`: the
    baseline), drawn so that its score follows the course's trajectory."""
    rng = course.rng
    form = definition.form()
    items = definition.items
    low = [min(item.values) for item in items]
    high = [max(item.values) for item in items]
    model = DOMAINS.get(definition.domain)
    if model is None:
        if not isinstance(form, PromisForm | SummedForm):  # a checklist: the side effects
            return {
                item.id: min(max(course.side_effects.get(item.id, 0), lo), hi)
                for item, lo, hi in zip(items, low, high, strict=True)
            }
        share = rng.uniform(0.3, 0.7)  # an instrument the demo has no model for
        total = round(sum(low) + share * (sum(high) - sum(low)))
        return dict(zip(definition.item_ids, _spread(rng, total, low, high), strict=True))
    target = _level(course, definition.domain, model, offset, first)
    crisis = course.crisis_offset is not None and abs(course.crisis_offset - offset) <= 1
    if crisis and definition.domain in ("pain_interference", "pain"):
        worse_up = definition.direction is Direction.HIGHER_IS_WORSE
        target = model.high + 10 if worse_up else model.low - 10
    if isinstance(form, PromisForm):
        total = min(form.table, key=lambda raw: (abs(form.table[raw][0] - target), raw))
    elif isinstance(form, SummedForm) and form.method is Method.MEAN:
        total = round(target * len(items))
    else:
        total = round(target)
    total = min(max(total, sum(low)), sum(high))
    answers: dict[str, int | None] = dict(
        zip(definition.item_ids, _spread(rng, total, low, high), strict=True)
    )
    calibrated = isinstance(form, PromisForm) and form.calibration is not None
    if calibrated and rng.random() < INCOMPLETE_SHARE:
        answers[rng.choice(definition.item_ids)] = None  # skipped: scored by pattern
    return answers


def _level(course: Course, domain: str, model: DomainModel, offset: int, first: bool) -> float:
    """The course's score in a domain at a time point, one answer's noise included."""
    effect = course.effects[domain]
    share = 0.0
    if not first and effect > 0:
        share = by_offset(IMPROVING_SHAPE, offset)
        if offset > 45:
            share *= 1 - course.fade * (0.5 if offset <= 120 else 1.0)
    elif not first and effect < 0:
        share = by_offset(WORSENING_SHAPE, offset)
    value = course.baselines[domain] + _sign(domain) * effect * share
    value += course.rng.gauss(0, model.noise)
    return value


def _spread(rng: random.Random, total: int, low: list[int], high: list[int]) -> list[int]:
    """Item values between their bounds that add up to `total`, unevenly as real answers are."""
    values = list(low)
    order = list(range(len(values)))
    remaining = total - sum(values)
    while remaining > 0:
        rng.shuffle(order)
        moved = False
        for index in order:
            if remaining and values[index] < high[index]:
                values[index] += 1
                remaining -= 1
                moved = True
        if not moved:
            break
    for _ in range(len(values)):  # move a point between two items, keeping the total
        i, j = rng.randrange(len(values)), rng.randrange(len(values))
        if i != j and values[i] < high[i] and values[j] > low[j]:
            values[i] += 1
            values[j] -= 1
    return values


def by_offset(table: Sequence[tuple[float, float]], offset: int) -> float:
    return next(value for limit, value in table if offset <= limit)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))
