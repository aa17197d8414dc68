"""MCP: tooldeck's catalog served to any MCP client, and MCP servers' tools imported into the catalog.

Serving: `serve` (serve.py) is `tooldeck mcp serve`, over stdio (stdio.py) or Streamable HTTP
(http.py: bind rules, bearer token, Host/Origin checks). server.py is the SDK's low-level
Server wired to a serving runtime, one per endpoint (`/mcp`, `/mcp/NAME`; endpoints.py runs a
process's endpoints together and watches their lists); listing.py decides what a client sees (expose, resolved
versions, circuits); schema.py turns a manifest into MCP's schemas, annotations and results;
sessions.py makes each client a tooldeck session with its own `runtimes` row; changes.py
notices when the list changes; progress.py keeps an MCP call's nested calls inside `expose` and
reports them as hops; signals.py stops a server cleanly at any moment; config.py reads
`[mcp.serve]` and its `[mcp.serve.endpoints.NAME]`.

Importing: servers.py reads `[mcp.servers.NAME]` (and `${VAR}`, registered as secrets);
imported.py turns a server's tool into a manifest of type `mcp` and its results into output
(schema.py's rules in reverse); client.py keeps one server's connection (stdio children started
by tools.invoke.spawn, or Streamable HTTP), reconnecting with a capped backoff; hub.py is the
runtime's extension (`runtime.extensions["mcp"]`; extension.py, named in tools.runtime,
imports it only when `[mcp.servers]` names a server): the links on one event loop thread, the
catalog's imported entries, the tool-list cache, and the calls the invoke room hands it.

Only server.py, stdio.py, http.py and client.py import the `mcp` SDK (client.py inside its
coroutines), and nothing imports them until a server starts or one connects, so importing this
package (or `tools`) stays light.
"""

from tools.mcp.config import ServeConfig, load_serve_config
from tools.mcp.schema import input_schema, output_schema, tool_annotations
from tools.mcp.serve import serve

__all__ = ["ServeConfig", "input_schema", "load_serve_config", "output_schema", "serve", "tool_annotations"]
