"""`python -m tools` is the same as `tooldeck` (the application entry point, so it may open the dashboard)."""

from tui.launch import run

run()
