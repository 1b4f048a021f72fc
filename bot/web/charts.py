"""The geometry of the dashboard's charts, drawn as SVG by templates/dashboard_charts.html.

Pure functions from figures to coordinates: no markup here (the template writes it, escaped), no
script, no style attribute (the strict CSP forbids inline style; colours and dashes come from
admin.css by class), so the charts render on the server and read the same in every browser. Each
series has a class per channel (`dash-s-widget`, `dash-s-wechat`) and lines differ in dash pattern
too, not by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 640
HEIGHT = 240
# Room for the axis labels: left for values, bottom for categories.
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 36
BAR_LABEL = 150  # the left margin of a horizontal bar chart, for its category names
ROW = 26  # the height of one horizontal bar's row
MAX_TICKS = 5


@dataclass(frozen=True)
class Tick:
    """A value on the value axis and where it is drawn."""

    at: float
    label: str


@dataclass(frozen=True)
class Label:
    """A category's name and where it is drawn."""

    at: float
    text: str


@dataclass(frozen=True)
class Point:
    """One value of a line."""

    x: float
    y: float
    value: int
    label: str


@dataclass(frozen=True)
class Line:
    """One series of a line chart."""

    name: str
    css: str
    points: list[Point]

    @property
    def path(self) -> str:
        """The polyline's points attribute."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Segment:
    """One series' part of a stacked bar."""

    x: float
    y: float
    width: float
    height: float
    value: int
    name: str
    css: str


@dataclass(frozen=True)
class Bar:
    """A category's stacked bar and the text written at its end."""

    label: str
    segments: list[Segment]
    total: int
    text_x: float
    text_y: float
    text: str


@dataclass(frozen=True)
class Chart:
    """What the template draws: a line chart (lines) or a bar chart (bars), with axes."""

    kind: str  # "line", "bars" (vertical) or "hbars" (horizontal)
    width: int
    height: int
    ticks: list[Tick] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    plot: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, top, right, bottom


Series = tuple[str, str, Sequence[int]]  # (name for people, css suffix, values per category)


def nice_step(maximum: float, ticks: int = MAX_TICKS) -> int:
    """A round step (1, 2 or 5 times a power of ten) that divides 0..maximum into at most `ticks` parts."""
    if maximum <= ticks:
        return 1
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _scale_top(maximum: int) -> tuple[int, int]:
    """(the value axis' top, its step): the smallest multiple of a round step at or above `maximum`."""
    step = nice_step(max(maximum, 1))
    return max(step, math.ceil(max(maximum, 1) / step) * step), step


def _every(count: int, room: float, width: float) -> int:
    """Show every n-th category label so that labels of `width` fit into `room`."""
    return max(1, math.ceil(count * width / max(room, 1.0)))


def line_chart(categories: Sequence[str], series: Sequence[Series], short: Sequence[str] | None = None,
               width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """Lines over categories (days). `short`: the category labels written under the axis."""
    top_value, step = _scale_top(max((v for _, _, values in series for v in values), default=0))
    left, top, right, bottom = LEFT, TOP, width - RIGHT, height - BOTTOM
    n = len(categories)

    def x(i: int) -> float:
        return left + (right - left) * (i / (n - 1) if n > 1 else 0.5)

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / top_value

    lines = [Line(name, f"dash-s-{css}", [Point(x(i), y(v), int(v), categories[i]) for i, v in enumerate(values)])
             for name, css, values in series]
    texts = list(short or categories)
    every = _every(n, right - left, 44)
    labels = [Label(x(i), texts[i]) for i in range(n) if i % every == 0]
    ticks = [Tick(y(v), str(v)) for v in range(0, top_value + 1, step)]
    return Chart("line", width, height, ticks, labels, lines=lines, plot=(left, top, right, bottom))


def bar_chart(categories: Sequence[str], series: Sequence[Series], width: int = WIDTH,
              height: int = HEIGHT) -> Chart:
    """Vertical stacked bars, one per category (hours of the day)."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(categories))]
    top_value, step = _scale_top(max(totals, default=0))
    left, top, right, bottom = LEFT, TOP, width - RIGHT, height - BOTTOM
    n = max(len(categories), 1)
    slot = (right - left) / n
    bar_width = slot * 0.7
    bars = []
    for i, category in enumerate(categories):
        base = bottom
        segments = []
        for name, css, values in series:
            h = (bottom - top) * values[i] / top_value
            segments.append(Segment(left + slot * i + (slot - bar_width) / 2, base - h, bar_width, h, int(values[i]),
                                    name, f"dash-s-{css}"))
            base -= h
        bars.append(Bar(category, segments, totals[i], left + slot * (i + 0.5), base - 3,
                        str(totals[i]) if totals[i] else ""))
    every = _every(n, right - left, 22)
    labels = [Label(left + slot * (i + 0.5), c) for i, c in enumerate(categories) if i % every == 0]
    ticks = [Tick(bottom - (bottom - top) * v / top_value, str(v)) for v in range(0, top_value + 1, step)]
    return Chart("bars", width, height, ticks, labels, bars=bars, plot=(left, top, right, bottom))


def hbar_chart(categories: Sequence[str], series: Sequence[Series], texts: Sequence[str] | None = None,
               width: int = WIDTH) -> Chart:
    """Horizontal stacked bars, one row per category; `texts` are written after each bar (default its total)."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(categories))]
    top_value = max(max(totals, default=0), 1)
    left, right = BAR_LABEL, width - 90  # room after the longest bar for its text
    height = TOP + ROW * len(categories) + 8
    bars = []
    for i, category in enumerate(categories):
        y = TOP + ROW * i + 4
        x = float(left)
        segments = []
        for name, css, values in series:
            w = (right - left) * values[i] / top_value
            segments.append(Segment(x, y, w, ROW - 8, int(values[i]), name, f"dash-s-{css}"))
            x += w
        text = texts[i] if texts is not None else str(totals[i])
        bars.append(Bar(category, segments, totals[i], x + 6, y + (ROW - 8) / 2 + 5, text))
    labels = [Label(TOP + ROW * i + ROW / 2 + 4, c) for i, c in enumerate(categories)]
    return Chart("hbars", width, height, labels=labels, bars=bars, plot=(left, TOP, right, height - 8))
