"""Child processes get the caller's environment minus every secret."""

from __future__ import annotations

import os

from state.redact import MASK, is_secret_name, redact, secret_values

__all__ = ["MASK", "clean_env", "is_secret_name", "redact", "secret_values"]


def clean_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a tool runs with: no secrets, even if a manifest asks for one."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not is_secret_name(k)}
    for key, value in (extra or {}).items():
        if not is_secret_name(key):
            env[key] = str(value)
    return env
