"""MCP: tooldeck's catalog served to any MCP client (and, beside it later, MCP servers' tools imported).

Serving: `serve` (serve.py) is `tooldeck mcp serve`, over stdio (stdio.py) or Streamable HTTP
(http.py: bind rules, bearer token, Host/Origin checks). server.py is the SDK's low-level
Server wired to a serving runtime; listing.py decides what a client sees (expose, resolved
versions, circuits); schema.py turns a manifest into MCP's schemas, annotations and results;
sessions.py makes each client a tooldeck session with its own `runtimes` row; changes.py
notices when the list changes; progress.py keeps an MCP call's nested calls inside `expose` and
reports them as hops; signals.py stops a server cleanly at any moment; config.py reads
`[mcp.serve]`. The import side (MCP servers' tools in the catalog) belongs beside these, e.g.
client.py, using schema.py's rules in reverse.

Only server.py, stdio.py and http.py import the `mcp` SDK, and nothing imports them until a
server starts, so importing this package (or `tools`) stays light.
"""

from tools.mcp.config import ServeConfig, load_serve_config
from tools.mcp.schema import annotations, input_schema, output_schema
from tools.mcp.serve import serve

__all__ = ["ServeConfig", "annotations", "input_schema", "load_serve_config", "output_schema", "serve"]
