"""`python -m tools` is the same as `tooldeck`."""

from tools.cli import run

run()
