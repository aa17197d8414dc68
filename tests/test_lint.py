"""The code base stays ruff-clean (the configuration is in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    out = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.slow  # ~30-60 s: `pytest --all` and CI
def test_mypy_strict_over_tools_and_state() -> None:
    """The typed seam holds: mypy --strict (pyproject [tool.mypy]) over tools/ and state/."""
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.fail("mypy is not installed (pip install -e '.[test]')")
    out = subprocess.run([str(mypy)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-4000:]
