"""`python -m tui` is the same as `tooldeck`."""

from tui.launch import run

run()
