-- Version 5: a proposal's candidate files, so any node can review and approve it.
--
-- The bytes go to approved_blobs (content-addressed; what may *serve* is only what approved_files
-- pins). A node without the candidate's folder writes it from here, each file checked against its
-- sha256, before it shows the diff.
CREATE TABLE IF NOT EXISTS proposal_files (
    proposal_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (proposal_id, name)
);
