"""Child processes get the caller's environment minus every secret.

The redaction function and the secret registry live in `state.redact` (state
writes through them); this is the runtime's face of the same names.
"""

from __future__ import annotations

import os

from state.redact import MASK, adopt_environ, holds_secret, is_secret_name, redact, register_secret, secret, secret_values

__all__ = ["MASK", "adopt_environ", "clean_env", "holds_secret", "is_secret_name", "redact", "register_secret", "secret",
           "secret_values"]


def clean_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a tool runs with: no secrets, even if a manifest asks for one.

    A variable is dropped when its name says secret, and also when its value holds a
    secret under an innocent name (`FOO: <the API key>` in a manifest's environment).
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not is_secret_name(k) and not holds_secret(v)}
    for key, value in (extra or {}).items():
        if not is_secret_name(key) and not holds_secret(str(value)):
            env[key] = str(value)
    return env
