-- Version 7: what evolution remembers. `memory` (JSON) records the past fixes and rejected approaches
-- a proposal's prompt was offered, and a rejected proposal it repeats; `diff` keeps the reviewed diff
-- (capped), so later evolutions can be shown it after the candidate's files are gone.
ALTER TABLE proposals ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';
ALTER TABLE proposals ADD COLUMN diff TEXT;
