-- Sensitive entries (issue 12): the flag says the value object is encrypted
-- (AES-256-GCM) and the value is masked wherever it could leak. It travels
-- with every version, so the history reads an encrypted version back right.
ALTER TABLE kv_entries ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kv_versions ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;

-- 010's triggers, with the flag copied into each version (a tombstone keeps
-- the flag of what it deleted).
DROP TRIGGER kv_entries_history_insert;
DROP TRIGGER kv_entries_history_update;
DROP TRIGGER kv_entries_history_delete;

-- (NOT EXISTS rather than OR IGNORE or an upsert: the outer statement's
-- conflict policy would override a trigger's.)
CREATE TRIGGER kv_entries_history_insert AFTER INSERT ON kv_entries
BEGIN
	INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
		NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer, NEW.sensitive);
	INSERT INTO kv_change_seqs (namespace, seq) SELECT NEW.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = NEW.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = NEW.namespace;
	INSERT INTO kv_changes SELECT NEW.namespace, seq, NEW.key, 'SET', NEW.version, NEW.type, NEW.writer, NEW.updated_at
		FROM kv_change_seqs WHERE namespace = NEW.namespace;
END;
CREATE TRIGGER kv_entries_history_update AFTER UPDATE OF object ON kv_entries WHEN OLD.object <> NEW.object
BEGIN
	INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
		NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer, NEW.sensitive);
	INSERT INTO kv_change_seqs (namespace, seq) SELECT NEW.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = NEW.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = NEW.namespace;
	INSERT INTO kv_changes SELECT NEW.namespace, seq, NEW.key, 'SET', NEW.version, NEW.type, NEW.writer, NEW.updated_at
		FROM kv_change_seqs WHERE namespace = NEW.namespace;
END;
CREATE TRIGGER kv_entries_history_delete AFTER DELETE ON kv_entries
BEGIN
	INSERT INTO kv_versions SELECT OLD.namespace, OLD.key, OLD.version + 1,
		CASE WHEN expired THEN 'EXPIRE' ELSE 'DELETE' END, OLD.type, NULL, 0, '', '', OLD.created_at,
		COALESCE(OLD.deleted_at, now_us), NULL,
		CASE WHEN expired THEN 'expiry' ELSE COALESCE(OLD.deleted_by, 'purge') END, OLD.sensitive
		FROM (SELECT now_us, OLD.deleted_by IS NULL AND OLD.expires_at <= now_us AS expired
			FROM (SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) AS now_us));
	INSERT INTO kv_change_seqs (namespace, seq) SELECT OLD.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = OLD.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = OLD.namespace;
	INSERT INTO kv_changes SELECT v.namespace, c.seq, v.key, v.change, v.version, v.type, v.writer, v.updated_at
		FROM kv_versions v, kv_change_seqs c
		WHERE v.namespace = OLD.namespace AND v.key = OLD.key AND v.version = OLD.version + 1 AND c.namespace = OLD.namespace;
END;
