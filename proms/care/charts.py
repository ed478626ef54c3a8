"""Trend charts as inline SVG, drawn on the server: no script, no chart library, nothing fetched.

One chart shows one domain of one treatment course: the scores over days since the course
start, the baseline and the band of no meaningful change around it, the published severity
bands behind them, and the infusion days along the bottom. The numbers are the instrument's
own (T-scores for PROMIS, else the raw score), higher up, with an arrow that says which way is
better: a reader checks a value against the axis and the published bands, and the arrow
settles the direction.

The SVG is written as text with every text and attribute value escaped, so a name or label can
never become markup. Sizes are in user units of a viewBox about as wide as a phone's column,
so the text stays legible at 390 px and grows with the page on a desktop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

SVG_NS = "http://www.w3.org/2000/svg"

# Colours (AA contrast on white for the text ones), by the change class of a point.
POINT_COLOURS = {
    "baseline": "#1b1f24",
    "improved": "#1a7f37",
    "worsened": "#a4161a",
    "no meaningful change": "#4a5360",
    "not comparable": "#4a5360",
    "": "#4a5360",
}
INFUSION_COLOURS = {"done": "#0b5cad", "missed": "#a4161a", "planned": "#ffffff"}
CHANGE_BAND_FILL = "#cfe3f7"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

Box = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True, slots=True)
class Point:
    """One score: its day since the course start, its value and what kind of change it is."""

    day: int
    value: float
    label: str  # the time point, e.g. "Month 3"
    change: str = ""  # "baseline" or a Classification value ("" when there is none)


@dataclass(frozen=True, slots=True)
class Band:
    """A published severity band in score units; None is an open end."""

    label: str
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class Infusion:
    day: int  # days since the course start (the first infusion is day 0)
    status: str  # done, missed or planned


@dataclass(frozen=True, slots=True)
class TrendChart:
    """Everything one chart draws, in score units and days."""

    title: str  # the accessible name, e.g. "Pain interference, course from 2026-10-01"
    unit: str  # "T" or "" (raw scores)
    points: tuple[Point, ...]
    y_range: tuple[float, float]
    x_range: tuple[int, int]
    higher_is_better: bool
    baseline: float | None = None
    change_band: tuple[float, float] | None = None  # (low, high) around the baseline
    severity_bands: tuple[Band, ...] = ()
    infusions: tuple[Infusion, ...] = ()


@dataclass(frozen=True, slots=True)
class Frame:
    """Where the plot sits in the viewBox, how days and values map into it, and text sizes."""

    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float
    x_range: tuple[int, int]
    y_range: tuple[float, float]
    font: float = 11  # axis text, in user units
    label_font: float = 11  # point labels

    def x(self, day: float) -> float:
        first, last = self.x_range
        span = (last - first) or 1
        return round(self.left + (day - first) / span * (self.right - self.left), 2)

    def y(self, value: float) -> float:
        """Higher values higher up; values outside the range sit on its edge."""
        low, high = self.y_range
        value = min(max(value, low), high)
        return round(
            self.bottom - (value - low) / ((high - low) or 1) * (self.bottom - self.top), 2
        )


def frame(chart: TrendChart, *, compact: bool = False) -> Frame:
    """The geometry of a chart: 360 x 230 user units, about a phone's column at 1:1.

    A compact chart (the printed summary, three to a row) is shorter, with larger text, so that
    it still reads when printed about 6 cm wide.
    """
    if compact:
        return Frame(
            width=360,
            height=190,
            left=40,
            top=20,
            right=346,
            bottom=140,
            x_range=chart.x_range,
            y_range=chart.y_range,
            font=14,
            label_font=14,
        )
    return Frame(
        width=360,
        height=230,
        left=36,
        top=18,
        right=348,
        bottom=186,
        x_range=chart.x_range,
        y_range=chart.y_range,
    )


def nice_step(span: float) -> float:
    """A tick step giving four to six ticks: 1, 2, 5, 10, 20, 25 ..."""
    if span <= 0:
        return 1.0
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def nice_range(low: float, high: float) -> tuple[float, float]:
    """`low`..`high` widened to whole tick steps (T 41.6-75.6 -> 40-80)."""
    if high <= low:
        low, high = low - 1, high + 1
    step = nice_step(high - low)
    return float(math.floor(low / step) * step), float(math.ceil(high / step) * step)


def day_range(days: Sequence[int]) -> tuple[int, int]:
    """The x axis: every day given and day 0, with a little room on each side."""
    first, last = min(0, *days), max(0, *days)
    pad = max(2, round((last - first) * 0.04))
    return first - pad, last + pad


def change_band(baseline: float, value: float, unit: str) -> tuple[float, float]:
    """The values no more than the threshold away from baseline (a percent of it for percent
    thresholds): inside it a change is not meaningful."""
    half = abs(baseline) * value / 100 if unit == "percent" else value
    return baseline - half, baseline + half


def format_value(value: float, unit: str = "") -> str:
    """A score as people read it: one decimal for T-scores and fractions, none for whole sums."""
    text = f"{value:.0f}" if float(value).is_integer() and unit != "T" else f"{value:.1f}"
    return text.replace("-", "\N{MINUS SIGN}")


def _ticks(low: float, high: float) -> list[float]:
    step = nice_step(high - low)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    value = first * step
    while value <= high + 1e-9:
        ticks.append(round(value, 6))
        value += step
    return ticks


def _day_ticks(first: int, last: int) -> list[int]:
    span = last - first
    step = next((s for s in (1, 2, 7, 14, 30, 60, 90, 180) if span / s <= 7), 365)
    start = math.ceil(first / step) * step
    return list(range(start, last + 1, step))


_SPECIAL = re.compile("[&<>\"']")


def _text(value: object) -> str:
    """A value as element text or an attribute's value, escaped (markupsafe) where it has
    anything to escape: a name or label can never become markup."""
    text = value if isinstance(value, str) else str(value)
    return str(escape(text)) if _SPECIAL.search(text) else text


# Each part of the chart appends its elements to a list of strings: numbers are written as they
# are, every text through _text.
Parts = list[str]


def render(chart: TrendChart, *, chart_id: str, compact: bool = False) -> Markup:
    """The chart as an inline SVG element (role img, named by its title and description)."""
    f = frame(chart, compact=compact)
    name = _text(chart_id)
    svg: Parts = [
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {f.width:g} {f.height:g}" class="trend-chart"'
        f' role="img" aria-labelledby="{name}-title {name}-desc" font-family="{_text(FONT)}"'
        f' font-size="{f.font:g}">',
        f'<title id="{name}-title">{_text(chart.title)}</title>',
        f'<desc id="{name}-desc">{_text(describe(chart))}</desc>',
    ]
    _severity(svg, f, chart)
    _grid(svg, f, chart)
    _change_band(svg, f, chart)
    _severity_labels(svg, f, chart)
    _infusions(svg, f, chart)
    _series(svg, f, chart)
    _better(svg, f, chart)
    svg.append("</svg>")
    return Markup("".join(svg))  # noqa: S704 - every text escaped by _text


def describe(chart: TrendChart) -> str:
    """The chart in one sentence, for a screen reader (the table below has every number)."""
    unit = f"{chart.unit} " if chart.unit else ""
    parts = [
        f"{p.label} (day {p.day}): {unit}{format_value(p.value, chart.unit)}" for p in chart.points
    ]
    better = "higher" if chart.higher_is_better else "lower"
    text = f"Scores over days since the course start; {better} is better. " + "; ".join(parts)
    if chart.baseline is not None and chart.change_band is not None:
        low, high = chart.change_band
        text += (
            f". No meaningful change between {format_value(low, chart.unit)} and "
            f"{format_value(high, chart.unit)}"
        )
    return text + "."


def _visible_bands(chart: TrendChart) -> list[Band]:
    low, high = chart.y_range
    return [b for b in chart.severity_bands if _overlaps(b, low, high)]


def _band_edges(f: Frame, chart: TrendChart, band: Band) -> tuple[float, float]:
    low, high = chart.y_range
    top = f.y(high if band.upper is None else min(band.upper, high))
    bottom = f.y(low if band.lower is None else max(band.lower, low))
    return top, bottom


def _severity(svg: Parts, f: Frame, chart: TrendChart) -> None:
    bands = _visible_bands(chart)
    if not bands:
        return
    svg.append('<g class="severity-bands">')
    # Shades grow with the band's distance from "within normal limits", which the published
    # lists give first; the label names each band whatever its shade.
    width = round(f.right - f.left, 2)
    for index, band in enumerate(bands):
        top, bottom = _band_edges(f, chart, band)
        lower = "" if band.lower is None else f"{band.lower:g}"
        upper = "" if band.upper is None else f"{band.upper:g}"
        svg.append(
            f'<rect class="severity-band" x="{f.left}" y="{top}" width="{width}"'
            f' height="{round(bottom - top, 2)}" fill="#b35c00"'
            f' fill-opacity="{round(0.03 + 0.05 * index, 2)}" data-label="{_text(band.label)}"'
            f' data-lower="{lower}" data-upper="{upper}" />'
        )
    svg.append("</g>")


def _severity_labels(svg: Parts, f: Frame, chart: TrendChart) -> None:
    """Each band's name at its top right, over the change band (drawn after it)."""
    size = f.font * 0.82
    svg.append(f'<g class="severity-labels" font-size="{size:.1f}" fill="#7a3f00">')
    for band in _visible_bands(chart):
        top, bottom = _band_edges(f, chart, band)
        if bottom - top >= size + 1:
            svg.append(
                f'<text x="{f.right - 3}" y="{round(top + size, 2)}" text-anchor="end"'
                ' stroke="#ffffff" stroke-width="2.5" stroke-opacity="0.8"'
                f' paint-order="stroke">{_text(band.label)}</text>'
            )
    svg.append("</g>")


def _overlaps(band: Band, low: float, high: float) -> bool:
    above = band.lower is not None and band.lower >= high
    below = band.upper is not None and band.upper <= low
    return not (above or below)


def _grid(svg: Parts, f: Frame, chart: TrendChart) -> None:
    svg.append('<g class="axes" stroke="#c9ced6">')
    for value in _ticks(*chart.y_range):
        y = f.y(value)
        label = format_value(value) if float(value).is_integer() else f"{value:g}"
        svg.append(
            f'<line x1="{f.left}" x2="{f.right}" y1="{y}" y2="{y}" stroke-width="0.6" />'
            f'<text x="{f.left - 4}" y="{round(y + f.font * 0.35, 2)}" text-anchor="end"'
            f' fill="#4a5360" stroke="none">{label}</text>'
        )
    first, last = chart.x_range
    axis_y = f.bottom
    svg.append(
        f'<line x1="{f.left}" x2="{f.right}" y1="{axis_y}" y2="{axis_y}" stroke="#4a5360" />'
    )
    label_y = round(axis_y + 8 + f.font * 1.3, 2)
    for day in _day_ticks(first, last):
        x = f.x(day)
        svg.append(
            f'<line x1="{x}" x2="{x}" y1="{axis_y}" y2="{axis_y + 3}" stroke="#4a5360" />'
            f'<text x="{x}" y="{label_y}" text-anchor="middle" fill="#4a5360"'
            f' stroke="none">{format_value(day)}</text>'
        )
    svg.append(
        f'<text x="{round((f.left + f.right) / 2, 2)}" y="{f.height - 4}" text-anchor="middle"'
        ' fill="#4a5360" stroke="none">Days since the course start</text>'
    )
    if chart.unit:
        svg.append(
            f'<text x="4" y="{f.top - 6}" fill="#4a5360" stroke="none">{_text(chart.unit)}</text>'
        )
    svg.append("</g>")


def _change_band(svg: Parts, f: Frame, chart: TrendChart) -> None:
    if chart.baseline is None:
        return
    if chart.change_band is not None:
        low, high = chart.change_band
        top, bottom = f.y(high), f.y(low)
        svg.append(
            f'<rect class="change-band" x="{f.left}" y="{top}"'
            f' width="{round(f.right - f.left, 2)}" height="{round(bottom - top, 2)}"'
            f' fill="{CHANGE_BAND_FILL}" fill-opacity="0.7" />'
        )
    y = f.y(chart.baseline)
    svg.append(
        f'<line class="baseline" x1="{f.left}" x2="{f.right}" y1="{y}" y2="{y}"'
        ' stroke="#0b5cad" stroke-width="1.2" stroke-dasharray="5 3" />'
    )


def _infusions(svg: Parts, f: Frame, chart: TrendChart) -> None:
    """A mark per infusion day under the axis: filled if given, a red cross if missed, hollow
    if still planned. Days closer than a mark's width are set side by side from the first."""
    if not chart.infusions:
        return
    svg.append('<g class="infusions">')
    size = round(f.font * 0.5, 1)
    y = f.bottom + 4
    previous = -math.inf
    for infusion in sorted(chart.infusions, key=lambda i: i.day):
        x = max(f.x(infusion.day) - size / 2, previous + size + 2)
        previous = x
        missed = infusion.status == "missed"
        status = _text(infusion.status)
        fill = INFUSION_COLOURS.get(infusion.status, "#ffffff")
        svg.append(
            f'<rect class="infusion infusion-{status}" x="{round(x, 2)}" y="{y}" width="{size}"'
            f' height="{size}" fill="{fill}" stroke="{"#a4161a" if missed else "#0b5cad"}"'
            f' stroke-width="1" data-day="{infusion.day}" />'
        )
        if missed:
            svg.append(
                f'<path d="M{x:.2f} {y} l{size} {size} M{x + size:.2f} {y} l{-size} {size}"'
                ' stroke="#ffffff" stroke-width="1.2" />'
            )
    svg.append("</g>")


def _text_box(x: float, y: float, width: float, height: float, anchor: str) -> Box:
    left = {"middle": x - width / 2, "start": x, "end": x - width}[anchor]
    return (left, y - height * 0.8, left + width, y + height * 0.2)


def _overlap(box: Box, taken: Sequence[Box], f: Frame) -> float:
    """How badly a label would sit there: 0 when clear; outside the plot counts as taken."""
    x0, y0, x1, y1 = box
    outside = max(0.0, f.left - 4 - x0) + max(0.0, x1 - f.width + 1)
    outside += max(0.0, 1 - y0) + max(0.0, y1 - f.bottom + 1)
    covered = sum(
        max(0.0, min(x1, a1) - max(x0, a0)) * max(0.0, min(y1, b1) - max(y0, b0))
        for a0, b0, a1, b1 in taken
    )
    return covered + 1000 * outside


def _place(
    candidates: Sequence[tuple[float, float, str]],
    width: float,
    size: float,
    taken: Sequence[Box],
    f: Frame,
) -> tuple[float, float, str, Box]:
    """The first candidate place where a label overlaps nothing, else the least bad one."""
    best: tuple[float, float, str, Box] | None = None
    least = math.inf
    for x, y, anchor in candidates:
        box = _text_box(x, y, width, size, anchor)
        badness = _overlap(box, taken, f)
        if badness < least:
            best, least = (x, y, anchor, box), badness
            if badness == 0:
                break
    assert best is not None
    return best


def _series(svg: Parts, f: Frame, chart: TrendChart) -> None:
    points = sorted(chart.points, key=lambda p: (p.day, p.value))
    if not points:
        return
    svg.append('<g class="series">')
    centres = [(f.x(p.day), f.y(p.value)) for p in points]
    if len(points) > 1:
        line = " ".join(f"{x},{y}" for x, y in centres)
        svg.append(
            f'<polyline class="line" points="{line}" fill="none" stroke="#1b1f24"'
            ' stroke-width="1.5" />'
        )
    taken: list[Box] = [(x - 4, y - 4, x + 4, y + 4) for x, y in centres]
    size = f.label_font
    for point, (x, y) in zip(points, centres, strict=True):
        colour = POINT_COLOURS.get(point.change, POINT_COLOURS[""])
        kind = _text(point.change.replace(" ", "-") or "plain")
        svg.append(
            f'<circle class="point point-{kind}" cx="{x}" cy="{y}"'
            f' r="{"4.5" if point.change == "baseline" else "4"}" fill="{colour}"'
            f' stroke="#ffffff" stroke-width="1" data-day="{point.day}"'
            f' data-value="{point.value:g}" />'
        )
        # Above the point, else below, right or left of it: wherever no other label or
        # point is (the first place when all are taken).
        text = format_value(point.value, chart.unit)
        width = len(text) * size * 0.6
        up, down, side = y - size * 0.6, y + size * 1.25, y + size * 0.35
        candidates = [
            (x, up, "middle"),
            (x, down, "middle"),
            (x + 7, side, "start"),
            (x - 7, side, "end"),
            (x + 3, up, "start"),
            (x - 3, up, "end"),
            (x + 3, down, "start"),
            (x - 3, down, "end"),
            (x, up - size, "middle"),
            (x, down + size, "middle"),
        ]
        label_x, label_y, anchor, box = _place(candidates, width, size, taken, f)
        taken.append(box)
        svg.append(
            f'<text class="point-label" x="{round(label_x, 2)}" y="{round(label_y, 2)}"'
            f' text-anchor="{anchor}" fill="{colour}" font-weight="600" font-size="{size:g}"'
            f' stroke="#ffffff" stroke-width="3" paint-order="stroke">{text}</text>'
        )
    svg.append("</g>")


def _better(svg: Parts, f: Frame, chart: TrendChart) -> None:
    """Which way is better, beside the axis: the arrow on a chart follows the numbers."""
    arrow = "\N{UPWARDS ARROW}" if chart.higher_is_better else "\N{DOWNWARDS ARROW}"
    svg.append(
        f'<text class="better" x="{f.right}" y="{f.top - 6}" text-anchor="end" fill="#1a7f37"'
        f' font-weight="600">{arrow} better</text>'
    )
