-- Version 7: what evolution remembers. `memory` (JSON) records the past fixes and rejected approaches
-- a proposal's prompt was offered, and a rejected proposal it repeats; `diff` keeps the reviewed diff
-- (capped), so later evolutions can be shown it after the candidate's files are gone; `origin` says who
-- started it (an auto-proposed version is never approved by policy).
ALTER TABLE proposals ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';
ALTER TABLE proposals ADD COLUMN diff TEXT;
ALTER TABLE proposals ADD COLUMN origin TEXT NOT NULL DEFAULT 'operator';  -- operator | auto_propose

-- Catalogs are compared per node, not per host (two runtimes on one host may load different folders):
-- the per-node manifest hashes are keyed by node. Every node records its hashes again as it loads.
DROP TABLE IF EXISTS catalog_manifests;
CREATE TABLE catalog_manifests (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    node TEXT NOT NULL,
    host TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tool_id, version, node)
);
