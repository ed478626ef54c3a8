"""Trend charts: the SVG is parsed back and every mark checked against the numbers drawn.

No app and no database: a chart is data in, SVG out. Positions are checked against the plot's
corners (the lowest value on the bottom edge, the highest on the top edge, a value halfway
exactly halfway), not against copies of the code's own arithmetic.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import combinations, pairwise

import pytest

from proms.care import charts
from proms.care.charts import Band, Infusion, Point, TrendChart

NS = {"svg": charts.SVG_NS}
SCRIPT = "<script>alert(1)</script>"


def pain_chart(**changes: object) -> TrendChart:
    """PROMIS pain interference: baseline 66.6, better after the course, worse at 3 months."""
    values: dict[str, object] = {
        "title": "Pain interference, course from 2026-08-21",
        "unit": "T",
        "points": (
            Point(-3, 66.6, "Baseline", "baseline"),
            Point(5, 61.2, "End of course", "improved"),
            Point(31, 66.0, "1 month", "no meaningful change"),
            Point(92, 75.6, "3 months", "worsened"),
        ),
        "y_range": (40.0, 80.0),
        "x_range": (-10, 190),
        "higher_is_better": False,
        "baseline": 66.6,
        "change_band": (63.6, 69.6),
        "severity_bands": (
            Band("within normal limits", None, 55.0),
            Band("mild", 55.0, 60.0),
            Band("moderate", 60.0, 70.0),
            Band("severe", 70.0, None),
        ),
        "infusions": tuple(Infusion(day, "missed" if day == 2 else "done") for day in range(5)),
    }
    values.update(changes)
    return TrendChart(**values)  # type: ignore[arg-type]


def parse(chart: TrendChart, compact: bool = False) -> ET.Element:
    rendered = str(charts.render(chart, chart_id="c1", compact=compact))
    return ET.fromstring(rendered)  # noqa: S314 - our own SVG, in a test


def plot_edges(svg: ET.Element) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the plot: the change band and severity bands span its width;
    the gridlines run from its top to its bottom."""
    band = svg.find(".//svg:rect[@class='change-band']", NS)
    assert band is not None
    left = float(band.get("x", "nan"))
    right = left + float(band.get("width", "nan"))
    grid = [
        float(line.get("y1", "nan"))
        for line in svg.findall(".//svg:g[@class='axes']/svg:line", NS)
        if line.get("x1") == band.get("x")
    ]
    return left, min(grid), right, max(grid)


@pytest.mark.parametrize("compact", [False, True], ids=["page", "summary"])
def test_points_sit_where_their_values_and_days_are(compact: bool) -> None:
    chart = pain_chart(
        points=(
            Point(-10, 40.0, "Lowest, first day", "baseline"),
            Point(90, 60.0, "Halfway", "improved"),
            Point(190, 80.0, "Highest, last day", "worsened"),
        ),
        baseline=40.0,
        change_band=(37.0, 43.0),
    )
    svg = parse(chart, compact=compact)
    left, top, right, bottom = plot_edges(svg)
    circles = svg.findall(".//svg:circle", NS)
    placed = {
        c.get("data-value"): (float(c.get("cx", "0")), float(c.get("cy", "0"))) for c in circles
    }
    assert placed["40"] == pytest.approx((left, bottom))
    assert placed["60"] == pytest.approx(((left + right) / 2, (top + bottom) / 2))
    assert placed["80"] == pytest.approx((right, top))
    line = svg.find(".//svg:polyline", NS)
    assert line is not None
    assert [tuple(map(float, p.split(","))) for p in line.get("points", "").split()] == [
        pytest.approx(placed[v]) for v in ("40", "60", "80")
    ]


def test_baseline_change_band_and_severity_bands_span_their_values() -> None:
    svg = parse(pain_chart())
    left, top, _right, bottom = plot_edges(svg)

    def y(value: float) -> float:  # 40 at the bottom, 80 at the top
        return bottom - (value - 40) / 40 * (bottom - top)

    baseline = svg.find(".//svg:line[@class='baseline']", NS)
    assert baseline is not None
    assert float(baseline.get("y1", "0")) == pytest.approx(y(66.6), abs=0.01)
    band = svg.find(".//svg:rect[@class='change-band']", NS)
    assert band is not None
    assert float(band.get("y", "0")) == pytest.approx(y(69.6), abs=0.01)
    assert float(band.get("height", "0")) == pytest.approx(y(63.6) - y(69.6), abs=0.02)

    bands = {r.get("data-label"): r for r in svg.findall(".//svg:rect[@class='severity-band']", NS)}
    assert list(bands) == ["within normal limits", "mild", "moderate", "severe"]
    expected = {  # open ends run to the edge of the plot
        "within normal limits": (y(55), bottom),
        "mild": (y(60), y(55)),
        "moderate": (y(70), y(60)),
        "severe": (top, y(70)),
    }
    for label, (band_top, band_bottom) in expected.items():
        rect = bands[label]
        assert float(rect.get("y", "0")) == pytest.approx(band_top, abs=0.01), label
        assert float(rect.get("y", "0")) + float(rect.get("height", "0")) == pytest.approx(
            band_bottom, abs=0.02
        ), label
        assert float(rect.get("x", "0")) == left
    labels = [t.text for t in svg.findall(".//svg:g[@class='severity-labels']/svg:text", NS)]
    assert labels == ["within normal limits", "mild", "moderate", "severe"]


def test_bands_outside_the_range_are_left_out() -> None:
    chart = pain_chart(
        y_range=(20.0, 60.0),
        severity_bands=(
            Band("severe", 70.0, None),
            Band("mild", 55.0, 60.0),
            Band("low", None, 10),
        ),
    )
    labels = [
        r.get("data-label") for r in parse(chart).findall(".//svg:rect[@class='severity-band']", NS)
    ]
    assert labels == ["mild"]


def test_points_are_labelled_with_their_values_and_labels_never_collide() -> None:
    """Baseline and end of course are eight days apart: a few pixels on a six-month axis."""
    svg = parse(pain_chart())
    texts = svg.findall(".//svg:text[@class='point-label']", NS)
    assert [t.text for t in texts] == ["66.6", "61.2", "66.0", "75.6"]
    size = float(texts[0].get("font-size", "0"))
    boxes = []
    for text in texts:
        width = len(text.text or "") * size * 0.6
        x, y = float(text.get("x", "0")), float(text.get("y", "0"))
        left = {"middle": x - width / 2, "start": x, "end": x - width}[text.get("text-anchor", "")]
        boxes.append((left, y - size * 0.8, left + width, y + size * 0.2))
    for (a0, b0, a1, b1), (c0, d0, c1, d1) in combinations(boxes, 2):
        assert a1 <= c0 or c1 <= a0 or b1 <= d0 or d1 <= b0, "two point labels overlap"


def test_points_are_coloured_by_their_change_and_infusion_days_marked() -> None:
    svg = parse(pain_chart())
    classes = [c.get("class") for c in svg.findall(".//svg:circle", NS)]
    assert classes == [
        "point point-baseline",
        "point point-improved",
        "point point-no-meaningful-change",
        "point point-worsened",
    ]
    marks = svg.findall(".//svg:g[@class='infusions']/svg:rect", NS)
    assert [(m.get("data-day"), m.get("class")) for m in marks] == [
        ("0", "infusion infusion-done"),
        ("1", "infusion infusion-done"),
        ("2", "infusion infusion-missed"),
        ("3", "infusion infusion-done"),
        ("4", "infusion infusion-done"),
    ]
    xs = [float(m.get("x", "0")) for m in marks]
    width = float(marks[0].get("width", "0"))
    assert all(b - a > width for a, b in pairwise(xs)), "marks overlap"


@pytest.mark.parametrize(("higher_is_better", "arrow"), [(True, "↑"), (False, "↓")])
def test_the_chart_says_which_way_is_better(higher_is_better: bool, arrow: str) -> None:
    better = parse(pain_chart(higher_is_better=higher_is_better)).find(
        ".//svg:text[@class='better']", NS
    )
    assert better is not None
    assert better.text == f"{arrow} better"


def test_the_chart_is_an_image_named_by_its_title_and_described_with_its_numbers() -> None:
    svg = parse(pain_chart())
    assert svg.get("role") == "img"
    title_id, desc_id = (svg.get("aria-labelledby") or "").split()
    title = svg.find(f"svg:title[@id='{title_id}']", NS)
    desc = svg.find(f"svg:desc[@id='{desc_id}']", NS)
    assert title is not None
    assert desc is not None
    assert title.text == "Pain interference, course from 2026-08-21"
    assert "Baseline (day -3): T 66.6" in (desc.text or "")
    assert "3 months (day 92): T 75.6" in (desc.text or "")
    assert "lower is better" in (desc.text or "")


def test_hostile_text_stays_text() -> None:
    """A patient's name in the title, a time point label or a band label from an imported file."""
    chart = pain_chart(
        title=f"Pain interference — {SCRIPT}",
        points=(Point(0, 60.0, SCRIPT, "baseline"),),
        severity_bands=(Band(f'"><img src=x onerror=alert(1)>{SCRIPT}', 50.0, None),),
    )
    raw = str(charts.render(chart, chart_id='c"1', compact=False))
    assert SCRIPT not in raw
    assert "<img" not in raw
    svg = ET.fromstring(raw)  # noqa: S314 - idem
    assert not svg.findall(".//script")
    assert not svg.findall(".//svg:script", NS)
    assert not svg.findall(".//svg:img", NS)
    title = svg.find("svg:title", NS)
    assert title is not None
    assert title.text == f"Pain interference — {SCRIPT}"
    assert SCRIPT in (svg.find("svg:desc", NS).text or "")  # type: ignore[union-attr]


def test_helpers() -> None:
    assert charts.nice_range(41.6, 75.6) == (40.0, 80.0)
    assert charts.nice_range(0, 10) == (0.0, 10.0)
    assert charts.change_band(7.0, 30.0, "percent") == pytest.approx((4.9, 9.1))
    assert charts.change_band(66.6, 3.0, "T") == pytest.approx((63.6, 69.6))
    assert charts.day_range([-14, 180]) == (-22, 188)
    assert charts.format_value(61.0, "T") == "61.0"
    assert charts.format_value(9.0) == "9"
    assert charts.format_value(-3) == "\N{MINUS SIGN}3"
