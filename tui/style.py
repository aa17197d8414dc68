"""Rich styles for cell contents, taken from the active Textual theme (so every theme works)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tools.visible import has_hidden, visible

BARS = "▁▂▃▄▅▆▇█"


def theme_colors(app: Any) -> dict[str, str]:
    """Colours for text, from the theme's `text-*` variables: readable on its background (light themes
    darken them, so orange values stay legible on white)."""
    theme = app.current_theme
    variables = app.theme_variables
    return {
        "ok": variables.get("text-success") or theme.success or "green",
        "error": variables.get("text-error") or theme.error or "red",
        "warn": variables.get("text-warning") or theme.warning or "yellow",
        "accent": variables.get("text-accent") or theme.accent or theme.primary,
        "primary": variables.get("text-primary") or theme.primary,
        "muted": "dim",
    }


def shown(value: Any, style: str = "", *, multiline: bool = True) -> Text:
    """Text a model, a tool or an MCP server wrote, for the screen: a `Text` (never markup) with its control,
    bidi and invisible characters spelled out by tools/visible.py."""
    return Text(visible(value, multiline=multiline), style=style)


def shown_text(text: Text) -> Text:
    """A `Text` a panel built around foreign text, made visible; rebuilt (keeping its base style) only when it
    holds a hidden character, so ordinary cells keep their spans."""
    if not has_hidden(text.plain):
        return text
    return Text(visible(text.plain), style=text.style, justify=text.justify, no_wrap=text.no_wrap, overflow=text.overflow)


def status_text(status: str, colors: dict[str, str]) -> Text:
    style = {"ready": colors["ok"], "error": colors["error"], "loading": colors["warn"], "pending": "dim",
             "closed": colors["ok"], "open": colors["error"], "half_open": colors["warn"], "half-open": colors["warn"],
             "disabled": colors["error"]}.get(status, "")
    return Text(status, style=style)


def score_text(score: float | None, colors: dict[str, str]) -> Text:
    if score is None:
        return Text("")
    style = colors["ok"] if score >= 0.8 else colors["warn"] if score >= 0.5 else colors["error"]
    return Text(f"{score:.2f}", style=style)


def sparkline(values: list[float], width: int = 12) -> str:
    if not values:
        return ""
    values = values[-width:]
    top = max(values) or 1.0
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1)))] if v > 0 else " " for v in values)


def bar(ratio: float, width: int = 10, colors: dict[str, str] | None = None) -> Text:
    ratio = max(0.0, min(1.0, ratio))
    filled = int(round(ratio * width))
    style = ""
    if colors:
        style = colors["ok"] if ratio < 0.7 else colors["warn"] if ratio < 0.95 else colors["error"]
    return Text("█" * filled + "░" * (width - filled), style=style)


def ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
