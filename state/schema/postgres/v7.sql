-- Version 7: what evolution remembers (see the SQLite file of the same name).
ALTER TABLE proposals ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';
ALTER TABLE proposals ADD COLUMN diff TEXT;
ALTER TABLE proposals ADD COLUMN origin TEXT NOT NULL DEFAULT 'operator';  -- operator | auto_propose

-- Catalogs are compared per node, not per host (see the SQLite file).
DROP TABLE IF EXISTS catalog_manifests;
CREATE TABLE catalog_manifests (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    node TEXT NOT NULL,
    host TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tool_id, version, node)
);
