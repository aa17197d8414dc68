"""Tool manifests: YAML, validated by pydantic, compatible with the original fields.

An invalid manifest becomes one line naming the file, the field and what is
wrong; the loader marks that tool `error` and carries on with the rest.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tools.errors import ManifestError
from tools.ids import TOOL_ID_RE, VERSION_RE

try:  # libyaml is ~8x faster than the pure-Python loader
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - wheels ship libyaml on every platform we run on
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_STR_TAG = "tag:yaml.org,2002:str"


class _Loader(_SafeLoader):
    """The safe loader, taking a string scalar as it is: no constructor lookup and call for the
    most common node (~18% of a manifest's parse). Aliases still share what they point to."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag == _STR_TAG and type(node) is yaml.ScalarNode:
            return node.value
        return super().construct_object(node, deep)

ToolType = Literal["executable", "python", "builtin", "llm", "mcp"]
MAX_MANIFEST_BYTES = 1 << 20
#: YAML nodes a manifest may expand to, aliases followed each time (a hand-written one has hundreds)
MAX_MANIFEST_NODES = 100_000
#: the most a manifest may raise its own output cap to
MAX_OUTPUT_BYTES_CEILING = 1 << 30
#: the most warm workers a python tool may ask for (each is a process holding the tool's imports)
MAX_WORKERS_CEILING = 64

_FLAT_TYPES = {
    "str": "string", "string": "string", "text": "string",
    "int": "integer", "integer": "integer",
    "float": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
    "list": "array", "array": "array",
    "dict": "object", "object": "object",
    "null": "null",
}


class ExecutableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str] | None = None  # required for type executable; a python tool may set only limits
    args: list[str] = Field(default_factory=list)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    memory_limit_mb: int | None = Field(default=None, gt=0)
    #: per call and stream; unset: `[calls] max_output_bytes` of tooldeck.toml (16 MiB by default)
    max_output_bytes: int | None = Field(default=None, gt=0, le=MAX_OUTPUT_BYTES_CEILING)
    #: a python tool's warm workers at most (1: a tool with module-level state, its calls one at a
    #: time); unset: `[calls] max_workers_per_tool` of tooldeck.toml (4 by default)
    max_workers: int | None = Field(default=None, gt=0, le=MAX_WORKERS_CEILING)
    working_dir: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
            raise ValueError("must not be empty")
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    def argv(self) -> list[str]:
        head = [self.command] if isinstance(self.command, str) else list(self.command or [])
        return head + list(self.args)


class McpRef(BaseModel):
    """Where an `mcp` tool lives: a server named in tooldeck.toml `[mcp.servers.NAME]`, and the tool's name there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    #: the server wraps non-object output as `{"result": ...}` (as tooldeck's own server does): unwrap it
    result_wrapped: bool = False


class ToolTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    input: Any = None
    expect: Any = None
    expect_contains: Any = None
    expect_error: str | bool | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> ToolTest:
        given = [k for k in ("expect", "expect_contains", "expect_error") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of expect, expect_contains, expect_error (got {', '.join(given)})")
        return self


def normalise_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Turn the original flat `param: {type, required, ...}` map into JSON Schema."""
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise ValueError("must be a mapping")
    if "properties" in schema or "$schema" in schema or isinstance(schema.get("type"), str) or not schema:
        return schema
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param, spec in schema.items():
        if not isinstance(spec, dict):
            raise ValueError(f"parameter {param!r} must be a mapping like {{type: string}}")
        prop: dict[str, Any] = {}
        kind = spec.get("type")
        if kind is not None and kind != "any":
            if str(kind) not in _FLAT_TYPES:
                raise ValueError(f"parameter {param!r}: unknown type {kind!r}")
            prop["type"] = _FLAT_TYPES[str(kind)]
        for key in ("description", "default", "enum", "items", "minimum", "maximum"):
            if key in spec:
                prop[key] = spec[key]
        if spec.get("required"):
            required.append(str(param))
        properties[str(param)] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    name: str
    type: ToolType = "executable"
    description: str = ""
    version: str = "1.0.0"
    tags: list[str] = Field(default_factory=list)
    executable: ExecutableSpec | None = None
    entry: str | None = None
    prompt: str | None = None
    model: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    examples: list[Any] = Field(default_factory=list)
    tests: list[ToolTest] = Field(default_factory=list)
    track_usage: bool = True
    quality_score: float = Field(default=1.0, ge=0.0, le=1.0)
    priority: int = 0
    cost_tier: str | int | None = None
    speed_tier: str | int | None = None
    quality_tier: str | int | None = None
    lineage: dict[str, Any] | None = None
    timeout_seconds: float | None = Field(default=None, alias="timeout", gt=0, le=3600)
    mcp: McpRef | None = None  # type mcp: the imported tool's server and name there
    read_only: bool | None = None  # hints for MCP clients (readOnlyHint, destructiveHint, idempotentHint)
    destructive: bool | None = None
    idempotent: bool | None = None

    @field_validator("name")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not TOOL_ID_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid tool id (^[a-z][a-z0-9_]{{0,63}}$)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> str:
        text = str(value)
        if text.count(".") == 1:
            text += ".0"
        if not VERSION_RE.fullmatch(text):
            raise ValueError(f"{value!r} is not a semantic version like 1.0.0")
        return text

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("input_schema", "output_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        return normalise_schema(value)

    @field_validator("examples", "tests", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _kind_fields(self) -> Manifest:
        if self.type == "executable" and (self.executable is None or self.executable.command is None):
            raise ValueError("executable.command: required for type executable")
        if self.type == "python":
            if not self.entry or ":" not in self.entry or not self.entry.split(":", 1)[0].endswith(".py"):
                raise ValueError("entry: type python needs entry 'file.py:function'")
            if ".." in Path(self.entry.split(":", 1)[0]).parts or self.entry.startswith("/"):
                raise ValueError("entry: the file must be inside the tool's folder")
        if self.type != "python" and self.executable is not None and self.executable.max_workers is not None:
            raise ValueError("executable.max_workers: only a python tool has warm workers (an executable runs a"
                             " process per call)")
        if self.type == "builtin" and (not self.entry or ":" not in self.entry):
            raise ValueError("entry: type builtin needs entry 'module:function'")
        if self.type == "llm" and not self.prompt:
            raise ValueError("prompt: required for type llm")
        if self.type == "mcp" and self.mcp is None:
            raise ValueError("mcp: type mcp needs mcp: {server, tool} (a server of [mcp.servers] in tooldeck.toml)")
        schema = self.input_schema
        if self.type == "builtin" and schema and schema.get("type") == "object" and "additionalProperties" not in schema:
            # a builtin knows every field it reads: an unknown one (a typo) is refused, naming it, not ignored
            object.__setattr__(self, "input_schema", {**schema, "additionalProperties": False})
        return self

    @property
    def unknown_fields(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())

    def call_timeout(self, default: float = 30.0) -> float:
        """Top-level `timeout`, else `executable.timeout`, else the configured default."""
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        if self.executable is not None:
            return self.executable.timeout
        return default


def _loc(error: Any) -> str:
    return ".".join(str(p) for p in error.get("loc", ())) or "manifest"


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    loc = _loc(first)
    if msg.split(":", 1)[0] in {"executable.command", "executable.max_workers", "entry", "prompt", "mcp"}:
        loc, msg = msg.split(":", 1)[0], msg.split(":", 1)[1].strip()
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    got = first.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float, bool)) and len(repr(got)) <= 60 and repr(got) not in msg else ""
    return f"field '{loc}': {msg}{shown}{more}"


def count_nodes(data: Any, limit: int = MAX_MANIFEST_NODES) -> int:
    """Nodes in parsed YAML, each counted every time it is reached, stopping once past `limit`.

    PyYAML shares an aliased object instead of copying it, so a 1 KB file of nested aliases
    ("billion laughs") parses into a few objects that expand into billions when anything walks
    or serialises them (the manifest cache, JSON-encoding the examples). Counting the expansion,
    without building it, refuses such a file in constant memory; a cycle counts past any limit.
    """
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend(node)
    return count


def _read_capped(path: Path) -> bytes:
    """At most MAX_MANIFEST_BYTES of a regular file: a 600 MB file is refused, not read first; a FIFO
    or a device is refused without blocking on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{path}: not a regular file")
        if st.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: manifest is {st.st_size} bytes; the limit is {MAX_MANIFEST_BYTES}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_MANIFEST_BYTES:  # it grew after the fstat
        raise ManifestError(f"{path}: manifest is over {MAX_MANIFEST_BYTES} bytes; the limit is {MAX_MANIFEST_BYTES}")
    return raw


def parse_manifest_text(text: str, where: str | Path) -> dict[str, Any]:
    """YAML-parse a manifest's text and bound what it expands to; every problem is a one-line
    ManifestError naming `where` (a file, or what the text came from)."""
    if not text.strip():
        raise ManifestError(f"{where}: empty manifest")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - CSafeLoader is the safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{where}{line}: invalid YAML: {problem}") from exc
    except RecursionError as exc:  # the pure-Python loader on deep nesting (libyaml stops at depth 1000)
        raise ManifestError(f"{where}: invalid YAML: nested too deeply") from exc
    if count_nodes(data) > MAX_MANIFEST_NODES:
        raise ManifestError(
            f"{where}: manifest expands to more than {MAX_MANIFEST_NODES} YAML nodes (nested aliases?); refused"
        )
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: a manifest must be a mapping, got {type(data).__name__}")
    return data


def read_manifest_data(path: Path) -> dict[str, Any]:
    """Read and YAML-parse one manifest file; every problem is a ManifestError naming the file."""
    return manifest_data_from_bytes(_read_capped(path), path)


def manifest_data_from_bytes(raw: bytes, path: Path) -> dict[str, Any]:
    """A manifest file's bytes, already read (the candidate a reviewer approves is read once), decoded and
    YAML-parsed as `read_manifest_data` does: UTF-8 (a BOM allowed), nothing else."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: manifest is {len(raw)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    if b"\0" in raw:
        raise ManifestError(f"{path}: binary file, not a YAML manifest")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 (byte {exc.start})") from exc
    return parse_manifest_text(text, path)


def validate_manifest(data: dict[str, Any], path: Path, *, expected_id: str | None = None,
                      expected_version: str | None = None) -> Manifest:
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{path}: {_one_line(exc)}", tool_id=expected_id) from exc
    if expected_id is not None and manifest.name != expected_id:
        raise ManifestError(
            f"{path}: field 'name': {manifest.name!r} must match the file name {expected_id!r}",
            tool_id=expected_id,
        )
    if expected_version is not None and manifest.version != expected_version:
        raise ManifestError(
            f"{path}: field 'version': {manifest.version!r} must match its folder {expected_version!r}",
            tool_id=expected_id,
        )
    return manifest



def code_problem(manifest: Manifest, tool_dir: Path) -> str | None:
    """Why a valid manifest cannot run from `tool_dir`, when its files say so before any call: a python tool's
    entry file missing, or an executable's program given as a path in its folder missing or not executable.
    A program found on PATH, or placed by `{workspace}`, is judged at its call."""
    if manifest.type == "python" and manifest.entry:
        file = manifest.entry.split(":", 1)[0]
        if not (tool_dir / file).is_file():
            return f"entry: {file} is not a file in {tool_dir}"
    spec = manifest.executable
    if manifest.type == "executable" and spec is not None and spec.command and not spec.working_dir:
        head = spec.argv()[0].replace("{tool_dir}", str(tool_dir))
        if "/" in head and "{" not in head:
            program = Path(head) if head.startswith("/") else tool_dir / head
            if not program.is_file():
                return f"executable.command: {head} is not a file"
            if not os.access(program, os.X_OK):
                return f"executable.command: {head} is not executable (chmod +x {program.name})"
    return None

def code_file(manifest: Manifest | None, tool_dir: Path) -> Path | None:
    """The code file a manifest runs: a python entry's file, or the script an executable's args name
    (`{tool_dir}/...`, else an arg that is a file in the tool's folder). Evolution diffs and pins it;
    the catalog publishes its hash beside the manifest's (tools.catalog.nodes)."""
    if manifest is None:
        return None
    if manifest.type == "python" and manifest.entry:
        return tool_dir / manifest.entry.split(":", 1)[0]
    if manifest.type == "executable" and manifest.executable is not None:
        for part in manifest.executable.argv():
            if part.startswith("{tool_dir}/"):
                return tool_dir / part.removeprefix("{tool_dir}/")
        for part in manifest.executable.argv()[1:]:
            if (tool_dir / part).is_file():
                return tool_dir / part
    return None


def load_manifest(path: Path, *, expected_id: str | None = None, expected_version: str | None = None) -> Manifest:
    return validate_manifest(read_manifest_data(path), path, expected_id=expected_id, expected_version=expected_version)
