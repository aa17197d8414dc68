-- Version 6: each imported MCP server's status as the serving runtime that holds its connection sees it.
--
-- One row per (server, session, node): the runtime's identity as in `runtimes`. A row counts only while
-- that runtime is live (state.runtimes); `tooldeck mcp list` and the dashboard in other processes read it.
CREATE TABLE IF NOT EXISTS mcp_servers (
    server TEXT NOT NULL,
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    transport TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    tools BIGINT,
    error TEXT,
    pid BIGINT,
    server_info TEXT,
    protocol TEXT,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (server, session, node)
);
