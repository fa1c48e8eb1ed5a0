-- The position of the redo log (journal.go): the last batch committed and
-- the log's epoch at the last checkpoint.
CREATE TABLE kv_journal (lsn INTEGER NOT NULL, epoch INTEGER NOT NULL);
INSERT INTO kv_journal (lsn, epoch) VALUES (0, 0);

-- The triggers that stamp the time use kvflow_now_us() (a function of the
-- driver, sqldb/record.go) instead of julianday('now'): a batch replayed from
-- the journal stamps the time it first ran.
DROP TRIGGER kv_entries_history_delete;
CREATE TRIGGER kv_entries_history_delete AFTER DELETE ON kv_entries
BEGIN
	INSERT INTO kv_versions SELECT OLD.namespace, OLD.key, OLD.version + 1,
		CASE WHEN expired THEN 'EXPIRE' ELSE 'DELETE' END, OLD.type, NULL, 0, '', '', OLD.created_at,
		COALESCE(OLD.deleted_at, now_us), NULL,
		CASE WHEN expired THEN 'expiry' ELSE COALESCE(OLD.deleted_by, 'purge') END, OLD.sensitive
		FROM (SELECT now_us, OLD.deleted_by IS NULL AND OLD.expires_at <= now_us AS expired
			FROM (SELECT kvflow_now_us() AS now_us));
	INSERT INTO kv_change_seqs (namespace, seq) SELECT OLD.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = OLD.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = OLD.namespace;
	INSERT INTO kv_changes SELECT v.namespace, c.seq, v.key, v.change, v.version, v.type, v.writer, v.updated_at
		FROM kv_versions v, kv_change_seqs c
		WHERE v.namespace = OLD.namespace AND v.key = OLD.key AND v.version = OLD.version + 1 AND c.namespace = OLD.namespace;
END;
DROP TRIGGER kv_versions_purged;
CREATE TRIGGER kv_versions_purged AFTER DELETE ON kv_versions WHEN OLD.object IS NOT NULL
BEGIN
	INSERT INTO kv_garbage (object, queued_at)
	SELECT OLD.object, kvflow_now_us()
	WHERE NOT EXISTS (SELECT 1 FROM kv_garbage WHERE object = OLD.object);
END;
