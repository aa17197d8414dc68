-- Core tables: events, calls, tool load status, manifest cache, runtimes, promotions.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    pid INTEGER NOT NULL,
    session TEXT,
    kind TEXT NOT NULL,
    tool_id TEXT,
    version TEXT,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id);

CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    session TEXT,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,          -- ok | bad_input | bad_output | timeout | exit_code | crash | ...
    input TEXT,                     -- JSON, truncated to the size cap (then input_truncated=1)
    output TEXT,
    input_truncated INTEGER NOT NULL DEFAULT 0,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS calls_tool ON calls(tool_id, version, id);
CREATE INDEX IF NOT EXISTS calls_ts ON calls(ts);

CREATE TABLE IF NOT EXISTS tool_status (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,           -- pending | loading | ready | error
    type TEXT,
    source TEXT,                    -- builtin | workspace | demo | evolved
    path TEXT,
    error TEXT,
    overrides TEXT,                 -- path of the built-in this workspace tool overrides
    updated REAL NOT NULL,
    pid INTEGER,
    PRIMARY KEY (tool_id, version)
);

CREATE TABLE IF NOT EXISTS manifest_cache (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runtimes (
    session TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    serve INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    PRIMARY KEY (session, pid)
);

-- Which version answers a call: scope 'global' or a session id.
CREATE TABLE IF NOT EXISTS promotions (
    tool_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    version TEXT NOT NULL,
    original_version TEXT,
    proposal_id INTEGER,
    reason TEXT,
    reviewer TEXT,
    promoted_at REAL NOT NULL,
    PRIMARY KEY (tool_id, scope)
);

CREATE TABLE IF NOT EXISTS tool_controls (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    actor TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (tool_id, version)
);

-- Running totals per (tool, version), updated with each batch of call records.
CREATE TABLE IF NOT EXISTS call_counters (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_ts REAL,
    PRIMARY KEY (tool_id, version)
);
