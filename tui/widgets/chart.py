"""A time-series chart for the details screens, drawn by textual-plotext (imported when a chart opens).

The x axis is seconds (or minutes) before now, so a chart reads the same whatever the clock;
a step chart (`Chart.levels`) shows a state over time, e.g. a circuit closed / half-open / open.
"""

from __future__ import annotations

import time
from typing import Any

from tui.details import Chart


def chart_widget(chart: Chart, **kwargs: Any) -> Any:
    from textual_plotext import PlotextPlot

    class ChartView(PlotextPlot):
        DEFAULT_CSS = "ChartView { height: 12; width: 1fr; }"

        def on_mount(self) -> None:
            super().on_mount()
            draw(self.plt, chart, time.time())

    return ChartView(**kwargs)


def draw(plt: Any, chart: Chart, now: float) -> None:
    plt.clear_figure()
    span = (now - min(chart.x)) if chart.x else 60.0
    unit, scale = ("min", 60.0) if span > 300 else ("s", 1.0)
    xs = [(t - now) / scale for t in chart.x]
    plt.title(chart.title)
    plt.xlabel(f"{unit} before now")
    if chart.ylabel:
        plt.ylabel(chart.ylabel)
    if not xs:
        plt.text("no data in this window", 0, 0)
        return
    for label, values in chart.series:
        if chart.levels:
            sx, sy = _steps(xs, values, 0.0)
            plt.plot(sx, sy, label=label, marker="braille")
        else:
            plt.plot(xs, values, label=label, marker="braille")
    if chart.levels:
        plt.yticks(list(range(len(chart.levels))), list(chart.levels))
        plt.ylim(-0.2, len(chart.levels) - 0.8)
    for ts, _label in chart.marks:
        plt.vline((ts - now) / scale)
    plt.xlim(min(xs), 0)


def _steps(xs: list[float], ys: list[float], end: float) -> tuple[list[float], list[float]]:
    """A state held until the next change, drawn as horizontal runs joined by vertical steps."""
    sx: list[float] = []
    sy: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=False)):
        if i:
            sx.append(x)
            sy.append(sy[-1])
        sx.append(x)
        sy.append(y)
    if sx:
        sx.append(end)
        sy.append(sy[-1])
    return sx, sy
