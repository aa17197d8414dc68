"""Rich styles for cell contents, taken from the active Textual theme (so every theme works)."""

from __future__ import annotations

import functools
from typing import Any

from rich.text import Text

from tools.visible import has_hidden, visible

BARS = "▁▂▃▄▅▆▇█"


#: WCAG AA for text: every colour the panels write text in reaches this contrast on the theme's backgrounds
MIN_CONTRAST = 4.5


def luminance(color: Any) -> float:
    """WCAG relative luminance of a textual Color."""
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Any, b: Any) -> float:
    """The WCAG contrast ratio of two textual Colors (1 to 21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@functools.lru_cache(maxsize=256)
def readable(value: str, backgrounds: tuple[str, ...]) -> str:
    """`value`, moved toward black on light backgrounds (toward white on dark ones) just far enough to reach
    MIN_CONTRAST against every one of `backgrounds`: a theme's hue kept, its text legible."""
    from textual.color import Color

    color, grounds = Color.parse(value), [Color.parse(b) for b in backgrounds]
    if all(contrast(color, g) >= MIN_CONTRAST for g in grounds):
        return value
    toward = Color(0, 0, 0) if sum(luminance(g) for g in grounds) / len(grounds) > 0.18 else Color(255, 255, 255)
    for step in range(1, 21):
        moved = color.blend(toward, step / 20)
        if all(contrast(moved, g) >= MIN_CONTRAST for g in grounds):
            return moved.hex
    return toward.hex


def theme_colors(app: Any) -> dict[str, str]:
    """Colours for text, from the theme's `text-*` variables, each made readable (>= 4.5:1) on the theme's
    background, surface and panel colours (textual-light's success and warning text fall to ~3:1 otherwise)."""
    theme = app.current_theme
    variables = app.theme_variables
    grounds = [v for v in (variables.get("background"), variables.get("surface"), variables.get("panel")) if v]
    raw = {
        "ok": variables.get("text-success") or theme.success or "green",
        "error": variables.get("text-error") or theme.error or "red",
        "warn": variables.get("text-warning") or theme.warning or "yellow",
        "accent": variables.get("text-accent") or theme.accent or theme.primary,
        "primary": variables.get("text-primary") or theme.primary,
    }
    colors = {k: readable(v, tuple(grounds)) if grounds else v for k, v in raw.items()}  # cached: theme_colors runs every tick
    colors["muted"] = "dim"
    return colors


def shown(value: Any, style: str = "", *, multiline: bool = True) -> Text:
    """Text a model, a tool or an MCP server wrote, for the screen: a `Text` (never markup) with its control,
    bidi and invisible characters spelled out by tools/visible.py. Build a styled cell of such text with this, never
    `Text(value)`: Rich's `Text` silently drops BEL, BS, VT, FF and CR (`rich.control.strip_control_codes`) before
    `one_line` or `shown_text` could spell them out."""
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
