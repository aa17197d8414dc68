"""tooldeck.toml: every known setting is checked for its type when the file is read, once, by tools/settings.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.errors import UsageError
from tools.settings import DEFAULTS, load_settings


@pytest.mark.parametrize(("toml", "message"), [
    ('[resilient]\nmin_similarity = "x"\n', "[resilient] min_similarity must be a number, got 'x'"),
    ('[circuit]\ncooldown_seconds = "soon"\n', "[circuit] cooldown_seconds must be a number, got 'soon'"),
    ('[buffers]\nbackoff_base_seconds = true\n', "[buffers] backoff_base_seconds must be a number, got True"),
    ('[calls]\nmax_workers_per_tool = 2.5\n', "[calls] max_workers_per_tool must be a whole number, got 2.5"),
    ('[memory]\npersist = "off"\n', "[memory] persist must be true or false, got 'off'"),
    ('[evolution]\nauto_approve = false\n', "[evolution] auto_approve must be text (a quoted string), got False"),
    ('[mcp.serve]\nexpose = "*"\n', None),  # a table inside a section: its room checks it (tools/mcp/config.py)
])
def test_a_setting_of_the_wrong_type_names_the_file_and_the_key(workspace: Path, toml: str, message: str | None) -> None:
    (workspace / "tooldeck.toml").write_text(toml)
    if message is None:
        load_settings(workspace)
        return
    with pytest.raises(UsageError) as info:
        load_settings(workspace)
    assert str(info.value) == f"{workspace / 'tooldeck.toml'}: {message}"


def test_durations_and_sizes_take_any_number_and_the_defaults_pass_their_own_check(workspace: Path) -> None:
    (workspace / "tooldeck.toml").write_text("[model]\ntimeout_seconds = 1.5\n[retention]\nmax_db_mb = 0.5\ncalls_days = 2\n")
    settings = load_settings(workspace)
    assert settings.get("model", "timeout_seconds") == 1.5 and settings.get("retention", "max_db_mb") == 0.5
    lines = []
    for section, values in DEFAULTS.items():
        if section == "keymap":
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value!r}")
            elif isinstance(value, str):
                lines.append(f'{key} = "{value}"')
    (workspace / "tooldeck.toml").write_text("\n".join(lines) + "\n")
    assert load_settings(workspace).warnings == ()


def test_the_cli_stops_at_a_bad_setting_with_exit_2_before_doing_anything(workspace: Path) -> None:
    """It used to run: a bad `[circuit]` value surfaced as "semantic memory is not installed", a bad `[buffers]` one
    not at all until a buffer delivered."""
    (workspace / "tooldeck.toml").write_text('[circuit]\ncooldown_seconds = "soon"\n')
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(workspace), "resilient", "parse csv", "{}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip() == f"tooldeck: {workspace / 'tooldeck.toml'}: [circuit] cooldown_seconds must be a number, got 'soon'"
    assert out.stdout == ""
