-- Version 4: identity across machines, and approved code kept in the database.
--
-- A runtime is (session, node), node being `host:pid:start-token`: a session id and a pid alone
-- collide across containers (every container's first process is pid 1).
CREATE TABLE runtimes_v4 (
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    serve INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    kind TEXT,
    PRIMARY KEY (session, node)
);
INSERT INTO runtimes_v4(session, node, pid, host, started, heartbeat, serve, label, kind)
    SELECT session, host || ':' || pid, pid, host, started, heartbeat, serve, label, kind FROM runtimes;
DROP TABLE runtimes;
ALTER TABLE runtimes_v4 RENAME TO runtimes;

CREATE TABLE buffer_flushers_v4 (
    buffer_id TEXT NOT NULL,
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (buffer_id, session, node)
);
INSERT INTO buffer_flushers_v4(buffer_id, session, node, pid, host, since)
    SELECT buffer_id, session, host || ':' || pid, pid, host, since FROM buffer_flushers;
DROP TABLE buffer_flushers;
ALTER TABLE buffer_flushers_v4 RENAME TO buffer_flushers;

-- the runtime (node) running an evolution, so a proposal is reaped only when that node is gone
ALTER TABLE proposals ADD COLUMN node TEXT;

-- Approved files' contents, content-addressed: every node materialises an approved version
-- from here into its own .tooldeck/evolved/ (verified against approved_files' sha256).
CREATE TABLE IF NOT EXISTS approved_blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);

-- Each node's catalog manifests by hash: the same (id, version) with other files on another
-- live node is shown as an error for that tool.
CREATE TABLE IF NOT EXISTS catalog_manifests (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    host TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tool_id, version, host)
);
