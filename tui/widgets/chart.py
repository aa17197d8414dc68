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

        chart_shown = chart

        def on_mount(self) -> None:
            super().on_mount()
            draw(self.plt, self.chart_shown, time.time())

        def show(self, new: Chart) -> None:
            """Draw `new` in place of the chart shown (a screen that follows its data)."""
            self.chart_shown = new
            draw(self.plt, new, time.time())
            self.refresh()

    return ChartView(**kwargs)


#: what a chart with no points in its window shows (every chart the same)
EMPTY = "no data in this window"


def draw(plt: Any, chart: Chart, now: float) -> None:
    """Every chart alike: a title, the x axis in seconds or minutes before now (labelled), the y axis labelled
    with its unit over a range that fits the data (from 0; a share 0-100), and one empty state."""
    plt.clear_figure()
    span = chart.window or ((now - min(chart.x)) if chart.x else 60.0)
    unit = chart.x_unit or ("min" if span > 300 else "s")
    scale = 60.0 if unit == "min" else 1.0
    xs = [(t - now) / scale for t in chart.x]
    plt.title(chart.title)
    plt.xlabel(f"{unit} before now")
    if chart.ylabel:
        plt.ylabel(chart.ylabel)
    values = [v for _, series in chart.series for v in series]
    if not xs or not values:
        plt.xlim(-span / scale, 0)
        plt.ylim(*(chart.yrange or (0.0, 1.0)))
        plt.text(EMPTY, -span / scale / 2, sum(chart.yrange or (0.0, 1.0)) / 2, alignment="center")
        return
    for label, series in chart.series:
        if chart.levels:
            sx, sy = _steps(xs, series, 0.0)
            plt.plot(sx, sy, label=label, marker="braille")
        else:
            plt.plot(xs, series, label=label, marker="braille")
    if chart.levels:
        plt.yticks(list(range(len(chart.levels))), list(chart.levels))
        plt.ylim(-0.2, len(chart.levels) - 0.8)
    elif chart.yrange is not None:
        plt.ylim(*chart.yrange)
    else:
        plt.ylim(0, max(values) * 1.1 or 1.0)
    for ts, _label in chart.marks:
        plt.vline((ts - now) / scale)
    plt.xlim(-span / scale if chart.window else min(xs), 0)


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
