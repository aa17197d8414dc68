-- The whole schema of version 4 on PostgreSQL: the tables of state/schema/sqlite/*.sql up to v4,
-- typed for PostgreSQL (REAL there is DOUBLE PRECISION here: a float4 would round epoch seconds
-- to minutes). Times are epoch seconds (UTC) as on SQLite, so the code reads both alike.

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    -- the writing transaction: the tail reads in (xid, id) order below the oldest running
    -- transaction, so a row that commits late is never skipped (state/postgres/events.py)
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ts DOUBLE PRECISION NOT NULL,
    pid BIGINT NOT NULL,
    session TEXT,
    kind TEXT NOT NULL,
    tool_id TEXT,
    version TEXT,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_kind ON events(kind, id);
CREATE INDEX events_xid ON events(xid, id);

-- the wake-up, never the carrier: one notification per committing transaction that wrote events
CREATE FUNCTION tooldeck_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tooldeck_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION tooldeck_events_notify();

CREATE TABLE calls (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    session TEXT,
    duration_ms DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    input TEXT,
    output TEXT,
    input_truncated BIGINT NOT NULL DEFAULT 0,
    output_truncated BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX calls_tool ON calls(tool_id, version, id);
CREATE INDEX calls_ts ON calls(ts);

CREATE TABLE tool_status (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    type TEXT,
    source TEXT,
    path TEXT,
    error TEXT,
    overrides TEXT,
    updated DOUBLE PRECISION NOT NULL,
    pid BIGINT,
    PRIMARY KEY (tool_id, version)
);

CREATE TABLE manifest_cache (
    path TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE runtimes (
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    serve BIGINT NOT NULL DEFAULT 0,
    label TEXT,
    kind TEXT,
    PRIMARY KEY (session, node)
);

CREATE TABLE promotions (
    tool_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    version TEXT NOT NULL,
    original_version TEXT,
    proposal_id BIGINT,
    reason TEXT,
    reviewer TEXT,
    promoted_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, scope)
);

CREATE TABLE tool_controls (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    reason TEXT,
    actor TEXT,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, version)
);

CREATE TABLE call_counters (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    last_ts DOUBLE PRECISION,
    PRIMARY KEY (tool_id, version)
);

CREATE TABLE buffers (
    bkey BIGSERIAL PRIMARY KEY,
    buffer_id TEXT NOT NULL UNIQUE,
    epoch TEXT NOT NULL,
    flush_strategy TEXT NOT NULL DEFAULT 'batched',
    max_size BIGINT NOT NULL DEFAULT 100,
    flush_interval_seconds DOUBLE PRECISION NOT NULL DEFAULT 5,
    pass_through_tool TEXT,
    pass_through_input TEXT NOT NULL DEFAULT '{}',
    max_pending BIGINT,
    when_full TEXT NOT NULL DEFAULT 'block',
    block_timeout_seconds DOUBLE PRECISION NOT NULL DEFAULT 30,
    config_version BIGINT NOT NULL DEFAULT 1,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0,
    claimed_seq BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    inflight BIGINT NOT NULL DEFAULT 0,
    oldest_ts DOUBLE PRECISION,
    dead_items BIGINT NOT NULL DEFAULT 0,
    writes_total BIGINT NOT NULL DEFAULT 0,
    flushed_total BIGINT NOT NULL DEFAULT 0,
    batches_total BIGINT NOT NULL DEFAULT 0,
    dropped_total BIGINT NOT NULL DEFAULT 0,
    retries_total BIGINT NOT NULL DEFAULT 0,
    dead_total BIGINT NOT NULL DEFAULT 0,
    last_flush_at DOUBLE PRECISION,
    last_flush_count BIGINT,
    last_flush_result TEXT,
    last_flush_error TEXT
);

CREATE TABLE buffer_items (
    bkey BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (bkey, seq)
);

CREATE TABLE buffer_batches (
    batch_id TEXT PRIMARY KEY,
    bkey BIGINT NOT NULL,
    buffer_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    count BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    next_attempt_at DOUBLE PRECISION,
    created DOUBLE PRECISION NOT NULL,
    claimed_at DOUBLE PRECISION,
    dead_at DOUBLE PRECISION,
    last_error TEXT
);
CREATE INDEX buffer_batches_bkey ON buffer_batches(bkey, state);

CREATE TABLE buffer_rates (
    buffer_id TEXT NOT NULL,
    sec BIGINT NOT NULL,
    writes BIGINT NOT NULL DEFAULT 0,
    flushed BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (buffer_id, sec)
);

CREATE TABLE buffer_flushers (
    buffer_id TEXT NOT NULL,
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (buffer_id, session, node)
);

CREATE TABLE failures (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    scenario TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL,
    error_class TEXT NOT NULL,
    origin TEXT NOT NULL,
    delta DOUBLE PRECISION NOT NULL DEFAULT 0,
    score_after DOUBLE PRECISION,
    tags_added TEXT NOT NULL DEFAULT '[]',
    session TEXT,
    pid BIGINT
);
CREATE INDEX failures_tool ON failures(tool_id, version, ts);

CREATE TABLE tool_health (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    base DOUBLE PRECISION NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    successes BIGINT NOT NULL DEFAULT 0,
    last_failure DOUBLE PRECISION,
    tags TEXT NOT NULL DEFAULT '[]',
    circuit TEXT NOT NULL DEFAULT 'closed',
    opened_at DOUBLE PRECISION,
    forced BIGINT NOT NULL DEFAULT 0,
    circuit_reason TEXT,
    probes BIGINT NOT NULL DEFAULT 0,
    probe_ok BIGINT NOT NULL DEFAULT 0,
    probe_deadline DOUBLE PRECISION,
    rev BIGINT NOT NULL DEFAULT 0,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, version)
);
CREATE INDEX tool_health_rev ON tool_health(rev);

CREATE TABLE score_history (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    delta DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX score_history_tool ON score_history(tool_id, version, id);

CREATE TABLE failure_seq (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO failure_seq(id, seq) VALUES (1, 0) ON CONFLICT DO NOTHING;

CREATE TABLE proposals (
    id BIGSERIAL PRIMARY KEY,
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    parent_version TEXT,
    parent_path TEXT,
    status TEXT NOT NULL,
    error_message TEXT,
    mutation_hint TEXT,
    dynamic_schema BIGINT NOT NULL DEFAULT 0,
    provider TEXT,
    model TEXT,
    prompt_sha256 TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    rounds BIGINT NOT NULL DEFAULT 0,
    path TEXT,
    explanation TEXT,
    stages TEXT NOT NULL DEFAULT '[]',
    protections TEXT NOT NULL DEFAULT '{}',
    diff_sha256 TEXT,
    failure TEXT,
    session TEXT,
    pid BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    reviewer TEXT,
    review_reason TEXT,
    reviewed_at DOUBLE PRECISION,
    approved_at DOUBLE PRECISION,
    scope TEXT,
    node TEXT,
    UNIQUE (tool_id, version)
);
CREATE INDEX proposals_status ON proposals(status, id);

CREATE TABLE promotion_history (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    tool_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    version TEXT,
    previous_version TEXT,
    proposal_id BIGINT,
    actor TEXT,
    reason TEXT
);
CREATE INDEX promotion_history_tool ON promotion_history(tool_id, id);

CREATE TABLE llm_usage (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    purpose TEXT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL
);
CREATE INDEX llm_usage_day ON llm_usage(day);

CREATE TABLE approved_files (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    proposal_id BIGINT,
    approved_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, version, name)
);

CREATE TABLE approved_blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL
);

CREATE TABLE catalog_manifests (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    host TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, version, host)
);

CREATE TABLE buffer_samples (
    buffer_id TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    pending BIGINT NOT NULL,
    dead_items BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (buffer_id, ts)
);
CREATE INDEX buffer_samples_ts ON buffer_samples(ts);
