-- Failure tracking: the failure ledger, per-version health (score, negative tags, circuit),
-- the score history for trends, and a change counter other processes poll.
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    scenario TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL,          -- low | medium | high | critical
    error_class TEXT NOT NULL,       -- reported | bad_input | bad_output | timeout | exit_code | crash ...
    origin TEXT NOT NULL,            -- manual | runtime | resilient
    delta REAL NOT NULL DEFAULT 0,   -- how much the score was demoted by this failure
    score_after REAL,
    tags_added TEXT NOT NULL DEFAULT '[]',
    session TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS failures_tool ON failures(tool_id, version, ts);

-- One row per (tool, version) that has ever failed, recovered or been touched by an operator.
-- rev is the failure_seq value of the last change, so a process reloads only what moved.
CREATE TABLE IF NOT EXISTS tool_health (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    base REAL NOT NULL,              -- the manifest's quality_score when the row was made
    score REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    last_failure REAL,
    tags TEXT NOT NULL DEFAULT '[]', -- negative tags, e.g. ["not-for-json"]
    circuit TEXT NOT NULL DEFAULT 'closed',  -- closed | open | half_open
    opened_at REAL,
    forced INTEGER NOT NULL DEFAULT 0,       -- 1: held open by an operator
    circuit_reason TEXT,
    probes INTEGER NOT NULL DEFAULT 0,       -- probe calls admitted in this half-open period
    probe_ok INTEGER NOT NULL DEFAULT 0,
    probe_deadline REAL,
    rev INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (tool_id, version)
);
CREATE INDEX IF NOT EXISTS tool_health_rev ON tool_health(rev);

CREATE TABLE IF NOT EXISTS score_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    score REAL NOT NULL,
    delta REAL NOT NULL,
    reason TEXT NOT NULL             -- failure | recovery | reset
);
CREATE INDEX IF NOT EXISTS score_history_tool ON score_history(tool_id, version, id);

CREATE TABLE IF NOT EXISTS failure_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO failure_seq(id, seq) VALUES (1, 0);
