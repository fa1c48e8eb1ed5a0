-- Every group commit, in any process on the database, counts itself here,
-- and a journaled batch logs the count it ran on: a replay drops a batch
-- that another process's commits came after, since such a batch never
-- committed (journal.go, replay).
ALTER TABLE kv_journal ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
