-- Schema version 3: what the dashboard's sessions view and charts need.
--
-- What kind of process a runtime is (dashboard, serve, cli, mcp, library), beside its label.
ALTER TABLE runtimes ADD COLUMN kind TEXT;

-- A buffer's pending items over time, sampled by the dashboard's poller every SAMPLE_SECONDS
-- (ts is the start of the sample period, so several dashboards write one row), pruned with
-- the event log's retention ([retention] events_days).
CREATE TABLE IF NOT EXISTS buffer_samples (
    buffer_id TEXT NOT NULL,
    ts REAL NOT NULL,
    pending INTEGER NOT NULL,
    dead_items INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (buffer_id, ts)
);
CREATE INDEX IF NOT EXISTS buffer_samples_ts ON buffer_samples(ts);
