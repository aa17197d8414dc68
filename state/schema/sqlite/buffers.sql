-- Durable buffers: one row per buffer (settings and live counters), the items,
-- the batches handed to a pass-through tool, per-second rates, and which
-- runtimes flush which buffer.
--
-- A write is one short transaction: bump the buffer row (counters and the next
-- item sequence number) and insert the item. Items are clustered by
-- (bkey, seq), so a batch is a contiguous seq range and needs no per-item update.
CREATE TABLE IF NOT EXISTS buffers (
    bkey INTEGER PRIMARY KEY,
    buffer_id TEXT NOT NULL UNIQUE,
    epoch TEXT NOT NULL,
    flush_strategy TEXT NOT NULL DEFAULT 'batched',
    max_size INTEGER NOT NULL DEFAULT 100,
    flush_interval_seconds REAL NOT NULL DEFAULT 5,
    pass_through_tool TEXT,
    pass_through_input TEXT NOT NULL DEFAULT '{}',
    max_pending INTEGER,
    when_full TEXT NOT NULL DEFAULT 'block',
    block_timeout_seconds REAL NOT NULL DEFAULT 30,
    config_version INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    claimed_seq INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    inflight INTEGER NOT NULL DEFAULT 0,
    oldest_ts REAL,
    dead_items INTEGER NOT NULL DEFAULT 0,
    writes_total INTEGER NOT NULL DEFAULT 0,
    flushed_total INTEGER NOT NULL DEFAULT 0,
    batches_total INTEGER NOT NULL DEFAULT 0,
    dropped_total INTEGER NOT NULL DEFAULT 0,
    retries_total INTEGER NOT NULL DEFAULT 0,
    dead_total INTEGER NOT NULL DEFAULT 0,
    last_flush_at REAL,
    last_flush_count INTEGER,
    last_flush_result TEXT,
    last_flush_error TEXT
);

-- seq is handed out by the buffers row, so it only grows (never reused, even after clear).
CREATE TABLE IF NOT EXISTS buffer_items (
    bkey INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (bkey, seq)
) WITHOUT ROWID;

-- state: claimed (a flusher holds the lease) | retry (waiting for next_attempt_at after a failed attempt)
--        | waiting (the pass-through tool refused it without running: circuit open, disabled; no attempt
--          spent; tried again at next_attempt_at) | dead
CREATE TABLE IF NOT EXISTS buffer_batches (
    batch_id TEXT PRIMARY KEY,
    bkey INTEGER NOT NULL,
    buffer_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    next_attempt_at REAL,
    created REAL NOT NULL,
    claimed_at REAL,
    dead_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS buffer_batches_bkey ON buffer_batches(bkey, state);

-- Per-second writes, items flushed and drops, kept for a few minutes (sparklines, rates).
CREATE TABLE IF NOT EXISTS buffer_rates (
    buffer_id TEXT NOT NULL,
    sec INTEGER NOT NULL,
    writes INTEGER NOT NULL DEFAULT 0,
    flushed INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (buffer_id, sec)
) WITHOUT ROWID;

-- A runtime that wrote to a buffer flushes it while it lives (joined with runtimes).
CREATE TABLE IF NOT EXISTS buffer_flushers (
    buffer_id TEXT NOT NULL,
    session TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (buffer_id, session, pid)
);
