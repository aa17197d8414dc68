-- Evolution: proposals (one row per candidate version), promotion history, model token use.
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    parent_version TEXT,            -- NULL for a tool generated from a spec
    parent_path TEXT,               -- the parent's manifest, for the diff
    status TEXT NOT NULL,           -- generating | validating | awaiting_review | failed_validation | approved | rejected | rolled_back | cancelled
    error_message TEXT,
    mutation_hint TEXT,
    dynamic_schema INTEGER NOT NULL DEFAULT 0,
    provider TEXT,
    model TEXT,
    prompt_sha256 TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    rounds INTEGER NOT NULL DEFAULT 0,
    path TEXT,                      -- the candidate manifest
    explanation TEXT,
    stages TEXT NOT NULL DEFAULT '[]',
    protections TEXT NOT NULL DEFAULT '{}',
    diff_sha256 TEXT,
    failure TEXT,                   -- why generation or validation stopped
    session TEXT,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    reviewer TEXT,
    review_reason TEXT,
    reviewed_at REAL,
    approved_at REAL,
    scope TEXT,
    UNIQUE (tool_id, version)
);
CREATE INDEX IF NOT EXISTS proposals_status ON proposals(status, id);

CREATE TABLE IF NOT EXISTS promotion_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    tool_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,           -- approved | rolled_back
    version TEXT,                   -- what serves afterwards (NULL: the base version)
    previous_version TEXT,
    proposal_id INTEGER,
    actor TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS promotion_history_tool ON promotion_history(tool_id, id);

CREATE TABLE IF NOT EXISTS llm_usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    day TEXT NOT NULL,              -- UTC date, for the daily token budget
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    purpose TEXT,                   -- evolution proposal id, or the llm tool called
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_usage_day ON llm_usage(day);
