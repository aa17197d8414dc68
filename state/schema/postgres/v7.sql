-- Version 7: what evolution remembers (see the SQLite file of the same name).
ALTER TABLE proposals ADD COLUMN memory TEXT NOT NULL DEFAULT '{}';
ALTER TABLE proposals ADD COLUMN diff TEXT;
ALTER TABLE proposals ADD COLUMN origin TEXT NOT NULL DEFAULT 'operator';  -- operator | auto_propose
