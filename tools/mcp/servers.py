"""`[mcp.servers.NAME]` in tooldeck.toml: the MCP servers whose tools join the catalog.

```toml
[mcp.servers.files]           # a stdio server: a child of the runtime
command = "python"
args = ["-m", "my_mcp_server", "--root", "data"]
env = { API_TOKEN = "${FILES_TOKEN}" }
timeout_seconds = 30          # each call's timeout
connect_timeout_seconds = 60  # to start and initialize (default: the larger of timeout_seconds and 30)
max_output_bytes = 1048576    # one answer's bytes on the wire; default: [calls] max_output_bytes

[mcp.servers.search]          # a Streamable HTTP server
url = "http://127.0.0.1:9000/mcp"
headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
```

A server's configuration is checked here, once, into a frozen ServerConfig; a malformed one is a
one-line reason naming the key, and that server alone is in error. `${VAR}` in `env` and `headers`
is read from the environment when the server is connected, never stored: what it expands to is
registered as a secret, so the one redaction function masks it in the database, the logs, events,
the tool-list cache and prompts. An unset `${VAR}` is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tools.catalog import MAX_OUTPUT_BYTES_CEILING
from tools.errors import UsageError
from tools.ids import TOOL_ID_RE

KEYS = ("command", "args", "env", "url", "headers", "timeout_seconds", "connect_timeout_seconds", "max_output_bytes")
MAX_TIMEOUT = 3600.0
MAX_SERVER_NAME = 32
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,31}\Z")
#: header names whose literal values are credentials even without a `${VAR}`
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")


@dataclass(frozen=True)
class ServerConfig:
    """One `[mcp.servers.NAME]`, checked; `env` and `headers` still hold their `${VAR}` templates."""

    name: str  # as written in tooldeck.toml
    prefix: str  # the normalised name that starts its tools' ids
    transport: str  # stdio | http
    where: str  # "<path>: [mcp.servers.NAME]", for messages
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float | None = None
    #: starting the server and its initialize and first listing (a cold `npx` or Python start is slower than a call)
    connect_timeout_seconds: float | None = None
    #: the cap on one message from the server (a call's result as sent); `[calls] max_output_bytes` unless set here
    max_output_bytes: int = 16 << 20
    #: why this server cannot be used (a malformed section); it is listed in error with this reason
    problem: str | None = None

    @property
    def target(self) -> str:
        """What it connects to, for listings: the command line (without env) or the URL."""
        if self.transport == "http":
            return self.url or ""
        return " ".join([self.command or "", *self.args]).strip()

    def fingerprint(self) -> str:
        """Changes when what the server is changes; secrets (`env`, `headers` values) take no part."""
        shape = {"transport": self.transport, "command": self.command, "args": list(self.args), "url": self.url,
                 "env": sorted(k for k, _ in self.env), "headers": sorted(k.lower() for k, _ in self.headers)}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Resolved:
    """`env` / `headers` with every `${VAR}` read from the environment now."""

    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def normalise(name: str) -> str:
    """The id rule's form of a name: lowercase, anything outside [a-z0-9_] becomes `_`."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def long_import_id(prefix: str, tool: str) -> str:
    """`<server>_<tool>` normalised to the id rule; past 64 characters, cut and given a short hash of the whole.

    The form every imported id had before the server's name stopped being repeated (see `import_id`): still an
    alias of the id, and the id itself where the short form collides or approvals are keyed on this one."""
    return _fit(normalise(f"{prefix}_{tool}"), prefix, tool)


def import_id(prefix: str, tool: str) -> str:
    """The tool's id: `<server>_<tool>` under the id rule, except that a tool whose name already starts with the
    server's (`git_status` of server `git`) is not given it twice (`git_status`, not `git_git_status`)."""
    name = normalise(tool)
    if name.startswith(prefix + "_") and len(name) > len(prefix) + 1:
        return _fit(name, prefix, tool)
    return long_import_id(prefix, tool)


def _fit(raw: str, prefix: str, tool: str) -> str:
    if not raw[:1].isalpha():
        raw = "t" + raw
    if len(raw) <= 64:
        return raw
    digest = hashlib.sha256(f"{prefix}\0{tool}".encode()).hexdigest()[:8]
    return f"{raw[:55].rstrip('_')}_{digest}"


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise UsageError(f"{where} must be a list of strings, got {value!r}"[:200])
    return tuple(str(v) for v in value)


def _table(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
        raise UsageError(f"{where} must be a table of strings, e.g. {{ NAME = \"${{VAR}}\" }}")
    return tuple(value.items())


def _check(name: str, raw: Any, where: str, default_cap: int) -> ServerConfig:
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a table")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(KEYS)})")
    command, url = raw.get("command"), raw.get("url")
    if (command is None) == (url is None):
        raise UsageError(f"{where}: give either command (a stdio server) or url (a Streamable HTTP server)")
    timeout, connect_timeout = raw.get("timeout_seconds"), raw.get("connect_timeout_seconds")
    for key, value in (("timeout_seconds", timeout), ("connect_timeout_seconds", connect_timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT):
            raise UsageError(f"{where} {key} must be a number of seconds in (0, {MAX_TIMEOUT:.0f}], got {value!r}")
    cap = raw.get("max_output_bytes", default_cap)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 < cap <= MAX_OUTPUT_BYTES_CEILING:
        raise UsageError(f"{where} max_output_bytes must be a positive integer (bytes) up to {MAX_OUTPUT_BYTES_CEILING}, "
                         f"got {cap!r}")
    common: dict[str, Any] = {"name": name, "prefix": normalise(name), "where": where, "max_output_bytes": cap,
                              "timeout_seconds": float(timeout) if timeout is not None else None,
                              "connect_timeout_seconds": float(connect_timeout) if connect_timeout is not None else None}
    if command is not None:
        if "url" in raw or "headers" in raw:
            raise UsageError(f"{where}: headers apply to url servers only")
        if not isinstance(command, str) or not command.strip():
            raise UsageError(f"{where} command must be a non-empty string (the program; arguments go in args)")
        return ServerConfig(transport="stdio", command=command.strip(), args=_strings(f"{where} args", raw.get("args", [])),
                            env=_table(f"{where} env", raw.get("env", {})), **common)
    if "args" in raw or "env" in raw:
        raise UsageError(f"{where}: args and env apply to command servers only")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise UsageError(f"{where} url must be an http:// or https:// URL, got {url!r}"[:200])
    return ServerConfig(transport="http", url=url, headers=_table(f"{where} headers", raw.get("headers", {})), **common)


def load_server_configs(settings: Any) -> list[ServerConfig]:
    """Every `[mcp.servers.NAME]`, in tooldeck.toml order; a malformed one comes back with its `problem` set."""
    servers = (settings.data.get("mcp") or {}).get("servers") or {}
    path = settings.path or "tooldeck.toml"
    if not isinstance(servers, dict):
        raise UsageError(f"{path}: [mcp.servers] must be a table of servers, e.g. [mcp.servers.files]")
    from tools.invoke import default_output_cap

    default_cap = default_output_cap(settings)
    out: list[ServerConfig] = []
    prefixes: dict[str, str] = {}
    for name, raw in servers.items():
        where = f"{path}: [mcp.servers.{name}]"
        try:
            if not _SERVER_NAME.fullmatch(name):
                raise UsageError(f"{where}: a server name is a letter, then up to {MAX_SERVER_NAME - 1} letters, digits, "
                                 "'_' or '-'")
            config = _check(name, raw, where, default_cap)
            if config.prefix in prefixes:
                raise UsageError(f"{where}: its tool ids would start like those of [mcp.servers.{prefixes[config.prefix]}]")
            prefixes[config.prefix] = name
        except UsageError as exc:
            fallback = normalise(name) if TOOL_ID_RE.match(normalise(name) or "-") else "invalid"
            config = ServerConfig(name=name, prefix=fallback, transport="?", where=where, problem=exc.message)
        out.append(config)
    return out


def _expand(text: str, where: str, secrets: list[tuple[str, str]]) -> str:
    def value(match: re.Match[str]) -> str:
        from tools.secrets import secret

        name = match.group(1)
        found = secret(name)
        if found is None:
            raise UsageError(f"{where}: ${{{name}}} is not set in the environment")
        secrets.append((name, found))
        return found

    return _VAR.sub(value, text)


def resolve(config: ServerConfig) -> Resolved:
    """`env` and `headers` with `${VAR}` read now; every value read that way (and every credential header) becomes a
    registered secret, so redaction masks it wherever it could be written."""
    from tools.secrets import is_secret_name, register_secret

    out = Resolved()
    secrets: list[tuple[str, str]] = []
    for key, template in config.env:
        found: list[tuple[str, str]] = []
        out.env[key] = _expand(template, f"{config.where} env.{key}", found)
        secrets += found
        if found or is_secret_name(key):
            secrets.append((f"mcp.{config.name}.env.{key}", out.env[key]))
    for key, template in config.headers:
        found = []
        out.headers[key] = _expand(template, f"{config.where} headers.{key}", found)
        secrets += found
        if found or key.lower() in SECRET_HEADERS or is_secret_name(key):
            secrets.append((f"mcp.{config.name}.headers.{key}", out.headers[key]))
            _, _, credential = out.headers[key].partition(" ")  # "Bearer <token>": the token alone, too
            if credential:
                secrets.append((f"mcp.{config.name}.headers.{key}.credential", credential))
    for name, value in secrets:
        register_secret(name, value)
    return out
