-- Version 2: approved files pinned by sha256 (a file changed after approval is not served), and
-- the manifest cache forgets rows written before manifests holding a secret were kept out of it.
CREATE TABLE IF NOT EXISTS approved_files (
    tool_id TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,             -- the file's path inside the version's folder
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    proposal_id INTEGER,
    approved_at REAL NOT NULL,
    PRIMARY KEY (tool_id, version, name)
);
DELETE FROM manifest_cache;
